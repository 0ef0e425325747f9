"""Host peak memory for parsing and compiling untrusted source, against adversarial inputs at
the source-size limit (puzzles.format.MAX_SOURCE_CHARS).

    python bench/compile_memory.py [--unbounded]

Each case runs in a fresh interpreter that imports the project, then parses the source as the
verifier does (puzzles.format) and compiles it (sandbox.policy.compile_check); it reports its
peak RSS (getrusage's ru_maxrss) against the same interpreter's after the imports. The bound:
an accepted source adds its syntax tree plus at most MAX_FOLDED_BYTES of folded constants; a
refused one adds its syntax tree. `--unbounded` also compiles one folding input with plain
`compile()` (what the host did before the bound), in a child capped at 2 GiB of address space.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from puzzles.format import MAX_FOLDED_BYTES, MAX_NESTING, MAX_SOURCE_CHARS  # noqa: E402

TERM = "'a' * 4096"


def _fill(make, limit: int = MAX_SOURCE_CHARS) -> str:
    """The largest source `make(n)` under `limit` characters (n found by doubling, then
    bisection)."""
    lo, hi = 1, 2
    while len(make(hi)) <= limit:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if len(make(mid)) <= limit else (lo, mid)
    return make(lo)


def _balanced(n: int) -> str:
    """n folded terms as a balanced tree of `+`: shallow, so only the fold bound stops it."""
    parts = [TERM] * n
    while len(parts) > 1:
        parts = [f"({a} + {b})" if b else a
                 for a, b in zip(parts[0::2], parts[1::2] + [""] * (len(parts) % 2))]
    return f"def g():\n    return {parts[0]}\n"


def _chains(n: int) -> str:
    """Statements each a chain of 900 folded terms (under MAX_NESTING): ~1.6 GB apiece when
    CPython folds it."""
    chain = " + ".join([TERM] * min(900, MAX_NESTING - 50))
    body = "".join(f"    x{i} = {chain}\n" for i in range(n))
    return f"def g():\n{body}    return 1\n"


def _just_under(n: int) -> str:
    """A chain whose fold the model puts just under MAX_FOLDED_BYTES: accepted, compiled."""
    return "def g():\n    return " + " + ".join([TERM] * n) + "\n"


def _deep(n: int) -> str:
    return "def g():\n    return " + " + ".join(["1"] * n) + "\n"


CHILD = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from puzzles.errors import PuzzleError
from puzzles.format import solution_tree
from sandbox.policy import compile_check
source = sys.stdin.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = "compiled"
try:
    if sys.argv[2] == "unbounded":
        import resource as r
        r.setrlimit(r.RLIMIT_AS, (2 << 30, 2 << 30))
        compile(source, "<g>", "exec")
    else:
        compile_check(solution_tree(source), "g")
except PuzzleError as e:
    outcome = f"refused ({e.reason})"
except MemoryError:
    outcome = "MemoryError at the 2 GiB cap"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "before_kib": before, "peak_kib": after}))
"""


def run_case(source: str, mode: str = "bounded") -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), mode], input=source,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unbounded", action="store_true")
    args = parser.parse_args()
    n_under = 1
    while True:  # the largest chain the fold bound accepts
        try:
            from puzzles.format import solution_tree
            solution_tree(_just_under(n_under + 1))
            n_under += 1
        except Exception:
            break
    cases = {
        "honest 400-term sum": _deep(400),
        f"balanced tree of {TERM!r} at the size limit": _fill(_balanced),
        "900-term folding chains at the size limit": _fill(_chains),
        f"folding chain just under the bound ({n_under} terms)": _just_under(n_under),
        "a sum at the size limit (too deep)": _fill(_deep),
    }
    print(f"MAX_SOURCE_CHARS {MAX_SOURCE_CHARS:,}, MAX_FOLDED_BYTES {MAX_FOLDED_BYTES >> 20} MiB,"
          f" MAX_NESTING {MAX_NESTING:,}")
    for name, source in cases.items():
        r = run_case(source)
        print(f"{name:55s} {len(source):>7,} chars  {r['outcome']:22s} peak RSS "
              f"{r['peak_kib'] / 1024:6.1f} MiB (+{(r['peak_kib'] - r['before_kib']) / 1024:.1f}"
              f" over the imports)")
    if args.unbounded:
        source = _just_under(450)
        r = run_case(source, "unbounded")
        print(f"{'plain compile(), a 450-term folding chain':55s} {len(source):>7,} chars  "
              f"{r['outcome']:22s} peak RSS {r['peak_kib'] / 1024:6.1f} MiB "
              f"(+{(r['peak_kib'] - r['before_kib']) / 1024:.1f} over the imports)")


if __name__ == "__main__":
    main()
