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

from selfplay.cli.fields import add_fields, given


def register(sub) -> None:
    from selfplay.config import PRESETS
    from selfplay.learnbench import ARMS, DEFAULT_ARMS, BenchSettings

    p = sub.add_parser("learn", help="the learning benchmark: self-play against a control arm",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("dir", help="the benchmark directory (created, or continued)")
    # The benchmark's scalar settings, generated from BenchSettings (its docstrings are the
    # help); `--humaneval/--no-humaneval` and `--heldout/--no-heldout` come from its booleans.
    p.set_defaults(bench_fields=add_fields(p, BenchSettings, choices={"preset": tuple(PRESETS)}))
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                   help=f"comma-separated arms: {', '.join(ARMS)}")
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

    given_settings = {**given(args, args.bench_fields),
                      "arms": tuple(a.strip() for a in args.arms.split(",") if a.strip()),
                      "settings": tuple(args.set)}
    settings = (quick_settings(**given_settings) if args.quick
                else BenchSettings(**given_settings))
    report = run_bench(args.dir, settings, echo=True, progress=args.progress)
    print()
    print(pass_at_k_table(report))
    print(rounds_table(report))
    print(f"report: {Path(args.dir) / 'report' / 'learning.md'} (and .json, .png)")
    return 0
