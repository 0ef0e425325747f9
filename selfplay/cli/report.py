"""`selfplay report DIR`: write the run's HTML report (DIR/report/index.html) and its plots."""

from __future__ import annotations

from selfplay.reports.report import write_report


def register(sub) -> None:
    report = sub.add_parser("report", help="write an HTML report of a run: pass@k, funnel, "
                                           "diversity, data cards, sample puzzles, config")
    report.add_argument("dir", help="the run directory")
    report.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    print(write_report(args.dir))
    return 0
