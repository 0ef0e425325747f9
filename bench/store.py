"""Store write rates: what the driver of a large round spends keeping the SQLite store.

    python bench/store.py                 # 100,000 attempts, chunks of 512
    python bench/store.py --attempts 20000

Rows (all measured in this run, into fresh files in one temporary folder):
- `store.add_attempts`: solve attempts written as the solve stage writes them (a transaction
  per chunk);
- `store.set_verdict`: the verify stage's verdicts by attempt id (a transaction per chunk);
- `store.attempts(verdict=pending)`: reading back the pending attempts;
- baseline: the same rows through sqlite3's executemany into a bare table with the same
  columns and no indexes, one transaction per chunk, with the store's journal (WAL,
  synchronous NORMAL): the bound for a SQLite writer.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sample import cpu_name  # noqa: E402
from puzzles.store import Attempt, Store  # noqa: E402

COMPLETION = "def g(n=17):\n    return [i * i for i in range(n) if i % 3 == 1]\n"


def attempts(n: int) -> list[Attempt]:
    # Realistic sizes: a 2-3 line completion, a provenance dict like the solve stage's.
    return [Attempt(round=1, stage="solve", puzzle_hash=f"{i // 100:016x}", attempt=i % 100,
                    completion=COMPLETION, solution_hash=f"{i:016x}", verdict="pending",
                    provenance={"model": "smollm2-135m", "adapter": "r0", "seed": i,
                                "temperature": 0.8}, solution=COMPLETION)
            for i in range(n)]


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def bench_store(folder: Path, rows: list[Attempt], chunk: int) -> dict[str, float]:
    rates = {}
    with Store(folder / "store.sqlite") as store:
        t = time.perf_counter()
        for part in chunks(rows, chunk):
            with store.transaction():
                store.add_attempts(part)
        rates["store.add_attempts"] = len(rows) / (time.perf_counter() - t)
        t = time.perf_counter()
        pending = store.attempts(1, "solve", verdict="pending")
        rates["store.attempts(verdict=pending)"] = len(pending) / (time.perf_counter() - t)
        t = time.perf_counter()
        for part in chunks(pending, chunk):
            with store.transaction():
                for a in part:
                    store.set_verdict(a.id, "fail", "wrong answer", 0.001)
        rates["store.set_verdict"] = len(pending) / (time.perf_counter() - t)
    return rates


def bench_baseline(folder: Path, rows: list[Attempt], chunk: int) -> float:
    db = sqlite3.connect(folder / "bare.sqlite", isolation_level=None)
    # The store's own durability settings, so the bound differs from it only in the work done.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE attempts (round, stage, puzzle_hash, attempt, completion, "
               "solution_hash, verdict, detail, seconds, provenance, solution)")
    t = time.perf_counter()
    for part in chunks(rows, chunk):
        db.execute("BEGIN")
        db.executemany("INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       [(a.round, a.stage, a.puzzle_hash, a.attempt, a.completion,
                         a.solution_hash, a.verdict, a.detail, a.seconds,
                         json.dumps(a.provenance), a.solution) for a in part])
        db.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - t)
    db.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=512, help="rows per transaction")
    parser.add_argument("--reps", type=int, default=3, help="runs; each figure is the median")
    args = parser.parse_args(argv)
    rows = attempts(args.attempts)
    baselines, runs = [], []
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            baselines.append(bench_baseline(Path(tmp), rows, args.chunk))
            runs.append(bench_store(Path(tmp), rows, args.chunk))
    baseline = statistics.median(baselines)
    rates = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    print(f"{args.attempts:,} attempts, {args.chunk} per transaction, medians of {args.reps} "
          f"runs; {cpu_name()}, sqlite {sqlite3.sqlite_version}")
    print("| operation | rows/s | share of the bare executemany insert |")
    print("| --- | --- | --- |")
    print(f"| bare executemany insert (baseline) | {baseline:,.0f} | 1.00 |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / baseline:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
