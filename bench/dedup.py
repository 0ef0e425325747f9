"""Near-duplicate search at scale: MinHash LSH candidates with an exact check (`LSHIndex`, what
the dedup stage uses past `dedup.lsh_above` stored puzzles) against the exact inverted index
(`ShingleIndex`, the baseline), on the same synthetic store and proposals.

    python bench/dedup.py [--sizes 1000,10000,100000,1000000] [--queries 1000]
                          [--exact-queries 200] [--exact-max 100000] [--threshold 0.85]

Stored puzzles are variants of the train seeds: every argument of `f` renamed (to a fresh name
or kept), a constant changed, the clauses of the return reordered, one added or dropped; so
puzzles of one seed spread over a range of similarities. Half the proposals are one light edit
of a stored puzzle (most at or near the threshold), half fresh variants of a seed. Tokens as
the dedup stage shingles them (3-grams, constants blanked).

Recall = share of the proposals the exact answer calls near-duplicates (best Jaccard >= the
threshold) that LSH calls near-duplicates too. The exact answer is `ShingleIndex` up to
--exact-max stored puzzles and, past it (where its Python postings of common shingles take GBs
and seconds per query), the same algorithm over numpy arrays (`ArrayPostings`, the same
Jaccard; its build time leaves out tokenizing). Either answers the first --exact-queries
proposals only, from 10,000 stored up; the table says how many. Times are wall seconds on this
machine as it is (the load average is printed); LSH and `ShingleIndex` build times include
tokenizing, about 0.2 ms a puzzle.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from puzzles.seeds import load_seeds  # noqa: E402
import numpy as np  # noqa: E402

from puzzles.lsh import LSHIndex, shingle_hashes  # noqa: E402
from puzzles.similarity import ShingleIndex  # noqa: E402

NAME = re.compile(r"[A-Za-z_]\w*")


def _arg_names(source: str) -> list[str]:
    header = source.split("\n", 1)[0]
    inside = header[header.find("(") + 1:header.rfind(")")]
    return [m.group(0) for part in inside.split(",")
            if (m := NAME.match(part.strip().split(":")[0].split("=")[0].strip()))]


def _clauses(expr: str) -> list[str]:
    """Top-level `and` clauses of an expression (outside brackets)."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and expr.startswith(" and ", i):
            out.append(expr[start:i])
            start = i = i + 5
            continue
        i += 1
    out.append(expr[start:])
    return out


def _fresh_name(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 4)))


def mutate(source: str, rng: random.Random, edits: int) -> str:
    """`source` with `edits` random edits: rename an argument, change a constant, reorder,
    add or drop a return clause."""
    for _ in range(edits):
        kind = rng.choice(("rename", "constant", "reorder", "add", "drop"))
        names = _arg_names(source)
        if kind == "rename" and names:
            old = rng.choice(names)
            source = re.sub(rf"\b{old}\b", _fresh_name(rng), source)
        elif kind == "constant":
            source = re.sub(r"\b\d+\b", lambda m: str(rng.randint(0, 999)), source, count=1)
        else:
            head, sep, expr = source.rstrip("\n").rpartition("return ")
            if not sep:
                continue
            clauses = _clauses(expr)
            if kind == "reorder":
                rng.shuffle(clauses)
            elif kind == "add" and names:
                clauses.append(f"{rng.choice(names)} != {rng.randint(0, 999)}")
            elif kind == "drop" and len(clauses) > 2:
                clauses.pop(rng.randrange(len(clauses)))
            source = head + sep + " and ".join(clauses) + "\n"
    return source


def stored_variant(seed: str, rng: random.Random) -> str:
    """A seed with its arguments renamed (each with probability 1/2) and 1 to 3 edits."""
    for old in _arg_names(seed):
        if rng.random() < 0.5:
            seed = re.sub(rf"\b{old}\b", _fresh_name(rng), seed)
    return mutate(seed, rng, rng.randint(1, 3))


def workload(n_stored: int, n_queries: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    seeds = [r.puzzle.source for r in load_seeds("train")]
    stored = [stored_variant(rng.choice(seeds), rng) for _ in range(n_stored)]
    queries = [mutate(rng.choice(stored), rng, 1) if i % 2 == 0
               else stored_variant(rng.choice(seeds), rng) for i in range(n_queries)]
    return stored, queries


class ArrayPostings:
    """The exact inverted index (`ShingleIndex`'s algorithm: count the shingles every stored
    item shares with the query through each shingle's postings) over numpy arrays, for stores
    where `ShingleIndex`'s Python postings would take GBs. Built from the LSH index's own
    shingle hashes, so its build time leaves out tokenizing."""

    def __init__(self, lsh: LSHIndex):
        flat, offsets = lsh.stored_hashes()
        self.lengths = np.diff(offsets)
        order = np.argsort(flat, kind="stable")
        self.hashes = flat[order]
        self.items = np.repeat(np.arange(len(self.lengths), dtype=np.int32), self.lengths)[order]

    def most_similar(self, source: str) -> tuple[str, float]:
        query = shingle_hashes(source, 3, literals=False)
        lo = np.searchsorted(self.hashes, query, "left")
        hi = np.searchsorted(self.hashes, query, "right")
        items = np.concatenate([self.items[a:b] for a, b in zip(lo, hi)])
        shared = np.bincount(items, minlength=len(self.lengths))
        scores = shared / (len(query) + self.lengths - shared)
        best = int(np.argmax(scores))
        return (str(best), float(scores[best])) if shared[best] else ("", 0.0)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _rss_gib() -> float:
    """Peak resident memory of this process so far."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def measure(n: int, args) -> list[str]:
    stored, queries = workload(n, args.queries)
    t = time.perf_counter()
    lsh = LSHIndex(args.threshold, 3, literals=False)
    for i, source in enumerate(stored):
        lsh.add(str(i), source)
    lsh_build = time.perf_counter() - t
    t = time.perf_counter()
    got = [lsh.most_similar(q) for q in queries]
    lsh_query = time.perf_counter() - t

    n_exact = len(queries) if n < 10_000 else min(len(queries), args.exact_queries)
    if n <= args.exact_max:
        baseline = "ShingleIndex"
        t = time.perf_counter()
        exact_index = ShingleIndex(3, literals=False)
        for i, source in enumerate(stored):
            exact_index.add(str(i), source)
        exact_build = f"{time.perf_counter() - t:.1f}"
        t = time.perf_counter()
        exact = [exact_index.most_similar(q) for q in queries[:n_exact]]
        exact_query = time.perf_counter() - t
        del exact_index
    else:
        baseline = "numpy postings"
        t = time.perf_counter()
        exact_index = ArrayPostings(lsh)
        exact_build = f"{time.perf_counter() - t:.1f}"
        t = time.perf_counter()
        exact = [exact_index.most_similar(q) for q in queries[:n_exact]]
        exact_query = time.perf_counter() - t
        del exact_index

    positives = [i for i, (_, score) in enumerate(exact) if score >= args.threshold]
    found = sum(got[i][1] >= args.threshold for i in positives)
    false = sum(got[i][1] >= args.threshold and exact[i][1] < args.threshold
                for i in range(n_exact))
    recall = f"{found / len(positives):.3f}" if positives else "-"
    per_lsh, per_exact = lsh_query / len(queries), exact_query / max(n_exact, 1)
    return [f"{n:,}", f"{lsh_build:.1f}", f"{per_lsh * 1e3:.2f}", f"{1 / per_lsh:,.0f}",
            baseline, exact_build, f"{per_exact * 1e3:.1f}", f"{1 / per_exact:,.0f}",
            f"{per_exact / per_lsh:.0f}x", f"{n_exact:,}", f"{found}/{len(positives)}", recall,
            str(false), f"{_rss_gib():.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000",
                        help="stored puzzles, comma-separated")
    parser.add_argument("--queries", type=int, default=1000, help="proposals per size")
    parser.add_argument("--exact-queries", type=int, default=200,
                        help="proposals the exact baseline answers from 10,000 stored up")
    parser.add_argument("--exact-max", type=int, default=100_000,
                        help="largest store the exact ShingleIndex is built for")
    parser.add_argument("--threshold", type=float, default=0.85,
                        help="near-duplicate Jaccard (dedup.near_duplicate)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    header = ["stored", "LSH build s", "LSH ms/query", "LSH queries/s", "exact baseline",
              "exact build s", "exact ms/query", "exact queries/s", "speedup",
              "exact queries", "near-dups found", "recall", "false near-dups",
              "peak RSS GiB so far"]
    rows = []
    for n in sizes:
        rows.append(measure(n, args))
        print("  done:", " | ".join(rows[-1]), file=sys.stderr, flush=True)
    lsh = LSHIndex(args.threshold)
    print(f"near-duplicate threshold {args.threshold} (3-grams, constants blanked); LSH "
          f"{lsh.bands} bands x {lsh.rows} rows of {lsh.num_perm} permutations; "
          f"{args.queries:,} proposals per size; 1 process on {os.cpu_count()} cores "
          f"({_cpu_name()}); load average {os.getloadavg()[0]:.1f}")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
