"""What proposals are worth, per format: one round's propose -> select on the same seeded store.

    python bench/propose.py DIR [--formats checker,pair] [--preset cpu] [--set KEY=VALUE ...]

For each proposal format (`propose.format`) it makes DIR/<format>, a run directory of the preset
with that format (the `--set` settings on top, the same for every format), seeds its store
(round 0 without evaluation: one held-out problem, one sample), then runs round 1's propose,
filter, dedup, solve and verify stages and select, with the solver aimed at the round's new
puzzles only (`solve.unsolved_train = 0`, `solve.solved_train = 0`), and no training.

It prints one table: per format, the counts and the same counts per 1,000 proposals (valid,
novel, solved by the proposer's own `g`, solved by the solver without it, solved either way,
learnable), the rejection reasons, and seconds per stage. Rerunning continues each directory
(its stages resume like any run's). The CPU is named in the output: compare formats within one
run only.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sample import cpu_name  # noqa: E402
from puzzles.errors import SelfplayError  # noqa: E402
from puzzles.store import Store  # noqa: E402
from selfplay.config import PROPOSAL_FORMATS, preset, with_settings  # noqa: E402
from selfplay.context import Resources, RoundContext  # noqa: E402
from selfplay.loop import run  # noqa: E402
from selfplay.reports.summaries import summary_to_dict  # noqa: E402
from selfplay.rundir import RunDir, init_run, run_logger  # noqa: E402

STAGES = ("propose", "filter", "dedup", "solve", "verify", "select")


def probe_config(preset_name: str, fmt: str, settings: list[str]):
    config = with_settings(preset(preset_name), [f'propose.format="{fmt}"', *settings])
    return dataclasses.replace(
        config, rounds=1,
        solve=dataclasses.replace(config.solve, unsolved_train=0, solved_train=0),
        eval=dataclasses.replace(config.eval, sets=("heldout",), k=(1,), samples=1,
                                 max_problems=1))


def probe(path: Path, preset_name: str, fmt: str, settings: list[str]) -> dict:
    """Round 1's stages up to select for one format; returns its counts and stage seconds."""
    run_dir = RunDir(path)
    if not run_dir.config_file.exists():
        init_run(path, probe_config(preset_name, fmt, settings))
    run(path, rounds=0)  # seed the store (and the one-sample round-0 eval)
    config = run_dir.load_config()
    resources = Resources(config)
    log = run_logger(run_dir)
    seconds = {}
    try:
        with Store(run_dir.store_file) as store:
            ctx = RoundContext(1, config, store, run_dir, resources, log, False)
            for stage in STAGES:
                done = store.stage_summary(1, stage)
                if done is None:
                    started = time.monotonic()
                    module = __import__(f"selfplay.stages.{stage}", fromlist=["run"])
                    summary = summary_to_dict(module.run(ctx))
                    done = {**summary, "seconds": round(time.monotonic() - started, 1)}
                    with store.transaction():
                        store.mark_stage_done(1, stage, done)
                seconds[stage] = done["seconds"]
            return {"format": fmt, "seconds": seconds, **counts(store)}
    finally:
        resources.close()


def counts(store: Store) -> dict:
    proposals = store.proposals(1)
    status = Counter(p.status for p in proposals)
    reasons = Counter(f"{p.status}:{p.reason}" if p.status == "invalid" else p.status
                      for p in proposals if p.status not in ("valid", "novel"))
    new = store.puzzles(origin="generated", round=1)
    by_puzzle: dict[str, dict[str, bool]] = {sp.hash: {} for sp in new}
    for stage in ("propose", "solve"):
        for a in store.attempts(1, stage):
            if a.puzzle_hash in by_puzzle:
                entry = by_puzzle[a.puzzle_hash]
                entry[stage] = entry.get(stage, False) or a.verdict == "pass"
    select = store.stage_summary(1, "select") or {}
    valid = len(proposals) - sum(v for k, v in status.items()
                                 if k not in ("valid", "novel", "duplicate", "near_duplicate",
                                              "contaminated"))
    return {
        "proposed": len(proposals), "valid": valid, "novel": len(new),
        "by_proposer": sum(e.get("propose", False) for e in by_puzzle.values()),
        "by_solver": sum(e.get("solve", False) for e in by_puzzle.values()),
        "solved": sum(any(e.values()) for e in by_puzzle.values()),
        "learnable": select.get("selected", 0),
        "rejected": dict(reasons.most_common()),
    }


def table(rows: list[dict]) -> str:
    keys = ("proposed", "valid", "novel", "by_proposer", "by_solver", "solved", "learnable")
    lines = ["| format | " + " | ".join(keys) + " | seconds (propose/filter/dedup/solve/verify) |",
             "|---" * (len(keys) + 2) + "|"]
    for r in rows:
        per = 1000 / r["proposed"] if r["proposed"] else 0
        cells = [f"{r[k]} ({r[k] * per:.0f})" if k != "proposed" else str(r[k]) for k in keys]
        secs = "/".join(f"{r['seconds'][s]:.0f}" for s in STAGES[:-1])
        lines.append(f"| {r['format']} | " + " | ".join(cells) + f" | {secs} |")
    lines.append("")
    lines.append("(in brackets: per 1,000 proposals)")
    for r in rows:
        lines.append(f"{r['format']} rejections: {r['rejected']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", help="the probe directory (created, or continued)")
    parser.add_argument("--formats", default=",".join(PROPOSAL_FORMATS),
                        help="comma-separated proposal formats (default %(default)s)")
    parser.add_argument("--preset", default="cpu", help="run preset (default %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a run setting on top of the preset, for every format")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    try:
        unknown = [f for f in formats if f not in PROPOSAL_FORMATS]
        if unknown or not formats:
            raise SelfplayError(f"--formats: {unknown[0] if unknown else '(none)'!r} is not "
                                f"one of {', '.join(PROPOSAL_FORMATS)}")
        rows = [probe(Path(args.dir) / fmt, args.preset, fmt, args.set) for fmt in formats]
    except SelfplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"# proposals per format: preset {args.preset}, settings {args.set or 'none'}, "
          f"{cpu_name()}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
