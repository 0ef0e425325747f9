"""One self-play round, stage by stage, under a baseline and a candidate config, from one snapshot.

    python bench/round.py RUN_DIR --candidate train.mixed_precision=bf16 \\
        --baseline train.mixed_precision=no          # round 1 of RUN_DIR, twice
    python bench/round.py RUN_DIR --round 2 --repeats 2 --candidate generation.batch_size=32
    python bench/round.py --quick                    # the tiny preset, its own snapshot (a test)

RUN_DIR is a run directory whose rounds before `--round` are done (after `selfplay run --rounds
0` for round 1: the seeds stored and the base model measured). It is the fixed snapshot: each
arm copies it, applies its settings (dotted `KEY=VALUE`, as `selfplay run --set` and
`bench/learn.py --set` take them) on top of its config, and runs the round's stages (propose,
filter, dedup, solve, verify, select, train; not eval or card) in the copy, timing each. The
snapshot itself is never written. Arms run in this process, interleaved (baseline, candidate,
baseline, candidate with `--repeats 2`), each with its own model, sampler and sandboxes; the
machine is shared, so compare arms of one run only, and say which CPU ran it.

Printed per arm: seconds per stage and in all, and what the round produced (puzzles proposed
and novel, solve attempts, passing verdicts, puzzles solved, new verified pairs, train tokens/s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The stages of a round that make its data and adapter (the loop's, less eval and card).
from selfplay.stages import STAGES as ROUND_STAGES  # noqa: E402


def run_round(snapshot: Path, settings: list[str], round_: int, work: Path,
              stages: tuple[str, ...] = ROUND_STAGES, prepare=None) -> dict:
    """Copy `snapshot` under `work`, apply `settings`, run round `round_`'s `stages` there
    (after `prepare(store)`, which may store what earlier stages would have: bench/refilter.py);
    returns {"seconds": {stage: s}, "summaries": {stage: dict}}."""
    from puzzles.errors import SelfplayError
    from puzzles.store import Store
    from selfplay.config import with_settings
    from selfplay.context import Resources, RoundContext
    from selfplay.loop import _stage_module
    from selfplay.rundir import RunDir, close_logger, run_logger
    from selfplay.stages.dedup import decontamination_sources
    from selfplay.reports.summaries import summary_to_dict

    run_dir = RunDir(work)
    shutil.copytree(snapshot, work)
    config = with_settings(run_dir.load_config(), settings)
    log = run_logger(run_dir)
    resources = Resources(config)
    seconds, summaries = {}, {}
    try:
        with Store(run_dir.store_file) as store:
            for r in range(round_):
                if store.stage_summary(r, "seed" if r == 0 else "train") is None:
                    raise SelfplayError(f"{snapshot}: round {r} is not done; bench a round "
                                        "whose earlier rounds are")
            if any(store.stage_summary(round_, s) is not None for s in ROUND_STAGES):
                raise SelfplayError(f"{snapshot}: round {round_} has already started: pass a "
                                    "snapshot taken before it")
            if prepare is not None:
                prepare(store)
            decontamination_sources(store, config.eval)
            ctx = RoundContext(round_, config, store, run_dir, resources, log, False)
            for stage in stages:
                started = time.monotonic()
                summary = _stage_module(stage).run(ctx)
                seconds[stage] = time.monotonic() - started
                summaries[stage] = summary_to_dict(summary)
                with store.transaction():
                    store.mark_stage_done(round_, stage, summaries[stage])
    finally:
        resources.close()
        close_logger(log)
    return {"seconds": seconds, "summaries": summaries}


def output(result: dict) -> dict:
    """What a round produced, from its stage summaries."""
    s = result["summaries"]
    train = s["train"]
    return {
        "proposed": s["propose"].get("proposed", 0),
        "novel": s["dedup"].get("novel", 0),
        "attempts": s["solve"].get("attempts", 0),
        "passed": s["verify"].get("verdicts", {}).get("pass", 0),
        "solved": s["select"].get("solved", 0),
        "new_pairs": s["select"].get("new_pairs", 0),
        "train_tok_s": train.get("tokens", 0) / max(train.get("seconds", 0) or 1e-9, 1e-9),
    }


def make_snapshot(path: Path, preset_name: str) -> Path:
    """A run directory of `preset_name` after round 0's seed stage (its eval skipped: a round
    does not read it)."""
    from puzzles.store import Store
    from selfplay.config import preset
    from selfplay.context import Resources, RoundContext
    from selfplay.loop import _stage_module
    from selfplay.rundir import close_logger, init_run, run_logger
    from selfplay.reports.summaries import summary_to_dict

    config = preset(preset_name)
    run_dir = init_run(path, config)
    log = run_logger(run_dir)
    resources = Resources(config)
    try:
        with Store(run_dir.store_file) as store:
            ctx = RoundContext(0, config, store, run_dir, resources, log, False)
            summary = summary_to_dict(_stage_module("seed").run(ctx))
            with store.transaction():
                store.mark_stage_done(0, "seed", summary)
    finally:
        resources.close()
        close_logger(log)
    return path


def bench(snapshot: Path, arms: dict[str, list[str]], round_: int, repeats: int,
          say=print) -> list[dict]:
    """Run every arm `repeats` times, interleaved; print a table and return the runs."""
    from bench.sample import cpu_name

    say(f"round {round_} of {snapshot}, {len(arms)} arms x {repeats}, "
        f"{cpu_name()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}")
    for name, settings in arms.items():
        say(f"  {name}: {' '.join(settings) or '(the snapshot config)'}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="round-bench-") as tmp:
        for rep in range(repeats):
            for name, settings in arms.items():
                result = run_round(snapshot, settings, round_, Path(tmp) / f"{name}-{rep}")
                runs.append({"arm": name, "repeat": rep + 1, **result, "output": output(result)})
    stages = "".join(f"{s:>9}" for s in ROUND_STAGES)
    say(f"{'arm':<12}{'rep':>4}{stages}{'total':>9} | {'proposed':>8}{'novel':>6}"
        f"{'attempts':>9}{'passed':>7}{'solved':>7}{'new pairs':>10}{'train tok/s':>12}")
    for run in runs:
        sec = run["seconds"]
        o = run["output"]
        say(f"{run['arm']:<12}{run['repeat']:>4}"
            + "".join(f"{sec[s]:>9.1f}" for s in ROUND_STAGES)
            + f"{sum(sec.values()):>9.1f} | {o['proposed']:>8}{o['novel']:>6}{o['attempts']:>9}"
              f"{o['passed']:>7}{o['solved']:>7}{o['new_pairs']:>10}{o['train_tok_s']:>12.0f}")
    if len(arms) == 2:
        (a, _), (b, _) = arms.items()
        total = {arm: sum(sum(r["seconds"].values()) for r in runs if r["arm"] == arm)
                 for arm in (a, b)}
        say(f"{b} / {a} wall time: {total[b] / total[a]:.2f}")
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", nargs="?", type=Path,
                        help="run directory whose rounds before --round are done")
    parser.add_argument("--round", type=int, default=1, dest="round_")
    parser.add_argument("--baseline", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--candidate", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="build a snapshot of --preset (round 0 seeded) and bench round 1")
    parser.add_argument("--preset", default="tiny", help="for --quick")
    parser.add_argument("--json", type=Path, help="also write the runs here")
    args = parser.parse_args(argv)
    from puzzles.errors import SelfplayError

    try:
        with tempfile.TemporaryDirectory(prefix="round-snapshot-") as tmp:
            snapshot = args.snapshot
            if args.quick:
                snapshot = make_snapshot(Path(tmp) / "snapshot", args.preset)
            elif snapshot is None:
                parser.error("give a run directory, or --quick")
            arms = {"baseline": args.baseline, "candidate": args.candidate}
            runs = bench(snapshot, arms, 1 if args.quick else args.round_, args.repeats)
    except SelfplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(
            [{k: v for k, v in r.items() if k != "summaries"} for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
