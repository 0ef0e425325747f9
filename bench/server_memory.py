"""The verifier server's peak memory against honest checks with large answers: k samples of
puzzles whose answers are `--answer-mb` MB strings, in one batch. Without a bound the server
holds every g answer until its f stage runs (batch x answer size); with one it holds at most
VerifierConfig.held_answer_bytes, plus one answer per lane past it, plus the lines being read.

    python bench/server_memory.py [--pairs 48] [--answer-mb 10] [--held-mb 64] [--workers 2]

Prints the server's peak RSS (VmHWM from /proc) before and after the batch, the documented
bound on its growth, and the batch's wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Pair, Verifier, VerifierConfig  # noqa: E402


def peak_rss(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--answer-mb", type=int, default=10)
    parser.add_argument("--held-mb", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    size = args.answer_mb * 1_000_000
    puzzle = f"def f(s: str):\n    return len(s) == {size}\n"
    pairs = [Pair(puzzle, f"def g():\n    return 'abcdefgh'[{i} % 8] * {size}\n")
             for i in range(args.pairs)]
    limits = {"held_answer_bytes": args.held_mb << 20}  # (absent before the bound existed)
    limits = {k: v for k, v in limits.items() if k in VerifierConfig.__dataclass_fields__}
    config = VerifierConfig(timeout=30.0, workers=args.workers,
                            max_answer_bytes=max(size + 1024, 1 << 20), **limits)
    with Verifier(config) as v:
        v.verify(Pair("def f(x: int):\n    return x == 1\n", "def g():\n    return 1\n"))
        before = peak_rss(v._proc.pid)
        start = time.perf_counter()
        verdicts = v.verify_many(pairs)
        seconds = time.perf_counter() - start
        after = peak_rss(v._proc.pid)
    passed = sum(x.passed for x in verdicts)
    unbounded = args.pairs * size
    held = getattr(config, "held_answer_bytes", unbounded)
    bound = held + args.workers * size + args.workers * 2 * (size + 64)
    mib = 1 << 20
    print(f"{args.pairs} checks, {args.answer_mb} MB answers, {args.workers} workers, "
          f"held_answer_bytes {args.held_mb} MiB: {passed} passed in {seconds:.1f} s")
    print(f"server peak RSS {before / mib:.0f} MiB -> {after / mib:.0f} MiB "
          f"(+{(after - before) / mib:.0f} MiB; bound +{bound / mib:.0f} MiB; "
          f"all answers at once would be {unbounded / mib:.0f} MiB)")


if __name__ == "__main__":
    main()
