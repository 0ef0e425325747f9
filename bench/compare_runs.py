"""Two runs' evaluations side by side: `after` minus `before` with paired intervals over problems.

    python bench/compare_runs.py BEFORE_RUN AFTER_RUN [--json OUT]

For an A/B of one lever across two benchmarks (each arm a run directory) that measured the same
eval sets from the same round 0: e.g. run F's self-play arm (program proposals) against run E's
(pair proposals). Rows are every (eval set, round) both runs measured; the interval is the
paired bootstrap `bench/learn.py` uses (90%, 2,000 resamples), over the problems both measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from puzzles.errors import SelfplayError  # noqa: E402
from selfplay.learnbench import KS, compare_runs, read_arm  # noqa: E402


def table(rows: list[dict], before: str, after: str) -> str:
    head = ["set", "round", "problems"]
    for k in KS:
        head += [f"pass@{k} before", f"pass@{k} after", f"after - before ({k}, 90% CI)"]
    lines = [f"before: {before}", f"after:  {after}", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["set"], str(row["round"]), str(row["problems"])]
        for k in KS:
            i = row["change"][str(k)]
            cells += [f"{row['before'][str(k)]:.3f}", f"{row['after'][str(k)]:.3f}",
                      f"{i['estimate']:+.3f} [{i['low']:+.3f}, {i['high']:+.3f}]"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="a run directory (the baseline)")
    parser.add_argument("after", type=Path, help="a run directory (the candidate)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    try:
        rows = compare_runs(read_arm(args.before), read_arm(args.after))
    except SelfplayError as e:
        print(f"compare_runs: error: {e}", file=sys.stderr)
        return 1
    if not rows:
        print(f"compare_runs: error: {args.before} and {args.after} share no measured eval set "
              "and round", file=sys.stderr)
        return 1
    print(table(rows, str(args.before), str(args.after)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
