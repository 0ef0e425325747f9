"""A round's stored proposals filtered, deduplicated and verified again under this checkout's
code: a parser or filter lever A/B'd on the very same completions, without sampling them again.

    python bench/refilter.py SNAPSHOT FROM_RUN --round 1 [--set KEY=VALUE ...] [--json]

SNAPSHOT is a run directory whose rounds before `--round` are done and which has not started
that round (as bench/round.py takes it); FROM_RUN is a run that proposed round `--round` from
it. The snapshot is copied to a scratch directory, FROM_RUN's proposals of that round are
stored there as freshly proposed, and the filter, dedup and verify stages run on them (verify
then checks the proposers' own solutions, since no solve stage ran). Run it from two
checkouts (e.g. a worktree at the baseline commit holding a copy of this script) for an A/B:
the completions are the same, so any difference is the code's. Printed: the funnel of the
round's proposals, the rejections by reason, and how many novel puzzles the proposer's own
solution solved.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("filter", "dedup", "verify")


def refilter(snapshot: Path, source: Path, round_: int, work: Path,
             settings: list[str]) -> dict:
    """Re-run STAGES on `source`'s round-`round_` proposals over a copy of `snapshot` in
    `work` (bench/round.py's run_round); returns {"seconds", "summaries", "own_solved",
    "statuses"}."""
    from bench.round import run_round
    from puzzles.errors import SelfplayError
    from puzzles.store import Proposal, Store
    from selfplay.rundir import RunDir

    with Store(RunDir(source).store_file) as store:
        proposals = store.proposals(round_)
        proposed = store.stage_summary(round_, "propose")
    if not proposals or proposed is None:
        raise SelfplayError(f"{source}: round {round_} has no finished propose stage")

    def store_proposals(store) -> None:
        with store.transaction():
            store.add_proposals(Proposal(round_, p.prompt, p.sample, p.completion,
                                         provenance=p.provenance) for p in proposals)
            store.mark_stage_done(round_, "propose", proposed)

    result = run_round(snapshot, settings, round_, work, STAGES, store_proposals)
    with Store(RunDir(work).store_file) as store:
        novel = {p.puzzle_hash for p in store.proposals(round_, status="novel")}
        own = {a.puzzle_hash for a in store.attempts(round_, "propose")
               if a.verdict == "pass" and a.puzzle_hash in novel}
        statuses = Counter(p.status if p.status != "invalid" else f"invalid:{p.reason}"
                           for p in store.proposals(round_))
    return {**result, "own_solved": len(own), "statuses": dict(statuses.most_common())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("snapshot", type=Path)
    ap.add_argument("source", type=Path, help="the run that proposed the round")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--set", dest="settings", action="append", default=[],
                    metavar="KEY=VALUE", help="a run setting on top of the snapshot's config")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from bench.sample import cpu_name

    with tempfile.TemporaryDirectory() as tmp:
        result = refilter(args.snapshot, args.source, args.round, Path(tmp) / "run",
                          args.settings)
    result["cpu"], result["commit"] = cpu_name(), _commit()
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    s = result["summaries"]
    print(f"# bench/refilter.py at {result['commit']}, {result['cpu']}, "
          f"{os.cpu_count()} cores; {args.source} round {args.round}")
    print("| proposed | valid | novel | solved by the proposer's own solution | seconds "
          "(filter/dedup/verify) |")
    print("|---|---|---|---|---|")
    print(f"| {s['filter']['checked']} | {s['filter']['valid']} | {s['dedup']['novel']} | "
          f"{result['own_solved']} | "
          + "/".join(f"{result['seconds'][k]:.0f}" for k in STAGES) + " |")
    print("statuses:", result["statuses"])
    return 0


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
