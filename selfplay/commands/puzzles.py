"""`selfplay puzzles add|generate|list|export`: manage the puzzles in a store (or the shipped
seeds)."""

from __future__ import annotations

import json
import sys
from collections import Counter

from puzzles.errors import SelfplayError


def register(sub) -> None:
    parser = sub.add_parser("puzzles", help="add, list and export puzzles")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    add = verbs.add_parser("add", help="validate, verify and store puzzles from a P3 JSON or "
                                       "JSONL file")
    add.add_argument("file", help="a P3 puzzles.json or a JSONL file of puzzles")
    add.add_argument("--store", required=True, help="the store file (created if missing)")
    add.add_argument("--split-file", help="P3 split.json (default: split.json beside FILE)")
    add.add_argument("--timeout", type=float,
                     help="seconds per check (default 5); a reference solution that runs over "
                          "it is run again with --reference-timeout-factor times as long, "
                          "counted in CPU time")
    add.add_argument("--reference-timeout-factor", type=float,
                     help="how many times --timeout a reference solution that ran over it gets "
                          "in its second run (default 6; 1: no second run)")
    add.add_argument("--workers", type=int, help="verifier worker processes")
    add.set_defaults(func=cmd_add)

    gen = verbs.add_parser("generate", help="draw instances of the rule-based generators, "
                                             "verify and store them (origin generator)")
    gen.add_argument("--n", type=int, required=True, help="how many distinct instances to draw")
    gen.add_argument("--seed", type=int, default=0, help="the seed the instances are drawn with")
    gen.add_argument("--family", help="only this family's generators (default: every family)")
    gen.add_argument("--withhold", type=int, default=0,
                     help="store this many of the instances without their (verified) reference "
                          "solution: train puzzles the model must solve itself")
    gen.add_argument("--store", required=True, help="the store file (created if missing)")
    gen.add_argument("--timeout", type=float, help="seconds per check")
    gen.add_argument("--workers", type=int, help="verifier worker processes")
    gen.set_defaults(func=cmd_generate)

    ls = verbs.add_parser("list", help="list puzzles (the shipped seeds without --store)")
    ls.add_argument("--store", help="the store file; without it, the shipped seed corpus")
    ls.add_argument("--split", choices=("train", "heldout", "none"))
    ls.add_argument("--family")
    ls.add_argument("--json", action="store_true", help="print a JSON array, one object a puzzle")
    ls.set_defaults(func=cmd_list)

    ex = verbs.add_parser("export", help="write puzzles and their solutions to a file")
    ex.add_argument("--store", help="the store file; without it, the shipped seed corpus")
    ex.add_argument("--format", choices=("p3", "jsonl"), default="jsonl")
    ex.add_argument("--out", required=True, help="the file to write")
    ex.add_argument("--split", choices=("train", "heldout", "none"))
    ex.set_defaults(func=cmd_export)


def _open_store(path: str, must_exist: bool = True):
    from pathlib import Path

    from puzzles.store import Store
    if must_exist and not Path(path).exists():
        raise SelfplayError(f"no store at {path}")
    return Store(path)


def cmd_add(args) -> int:
    from sandbox import Verifier, VerifierConfig
    from selfplay.importing import add_file
    from selfplay.tomlconfig import override
    config = override(VerifierConfig(), timeout=args.timeout, workers=args.workers,
                      reference_timeout_factor=args.reference_timeout_factor)
    with _open_store(args.store, must_exist=False) as store, Verifier(config) as verifier:
        report = add_file(store, args.file, verifier, split_file=args.split_file,
                          progress=sys.stderr.isatty())
    print("\n".join(report.lines()))
    if report.all_rejected:
        raise SelfplayError(f"{args.file}: every puzzle in it was rejected (see above); "
                            f"nothing added")
    return 0


def cmd_generate(args) -> int:
    from puzzles.generators import generators
    from sandbox import Verifier, VerifierConfig
    from selfplay.generating import generate_into
    from selfplay.tomlconfig import override
    # Bad input fails here, before a store file is created or a sandbox started.
    if args.n < 1:
        raise SelfplayError(f"--n must be at least 1, not {args.n}")
    if not 0 <= args.withhold <= args.n:
        raise SelfplayError(f"--withhold must be between 0 and --n = {args.n}, "
                            f"not {args.withhold}")
    generators(args.family)
    config = override(VerifierConfig(), timeout=args.timeout, workers=args.workers)
    with _open_store(args.store, must_exist=False) as store, Verifier(config) as verifier:
        report = generate_into(store, verifier, args.n, args.seed, args.family,
                               withhold=args.withhold, progress=sys.stderr.isatty())
    print("\n".join(report.lines()))
    return 0


def _rows(args) -> list[dict]:
    if args.store:
        with _open_store(args.store) as store:
            items = [(sp.puzzle, sp.origin, sp.n_solutions) for sp in
                     store.puzzles(split=args.split, family=args.family)]
    else:
        from puzzles.seeds import load_seeds
        items = [(r.puzzle, "seed", len(r.solutions)) for r in load_seeds(args.split)
                 if args.family in (None, r.puzzle.family)]
    return [{"hash": p.hash, "name": p.name, "family": p.family, "split": p.split,
             "origin": origin, "n_solutions": n, "difficulty": p.difficulty,
             "answer_type": p.answer_type} for p, origin, n in items]


def cmd_list(args) -> int:
    rows = _rows(args)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['hash']}  {r['split']:<7}  {r['origin']:<9}  {r['n_solutions']:>2} sol  "
              f"{r['answer_type']:<16} {r['name']}")
    by_split = Counter(r["split"] for r in rows)
    print(f"{len(rows)} puzzles in {len({r['family'] for r in rows})} families "
          f"({', '.join(f'{n} {s}' for s, n in sorted(by_split.items()))}); "
          f"{sum(1 for r in rows if r['n_solutions'])} solved")
    return 0


def cmd_export(args) -> int:
    from puzzles.p3 import write_p3
    from puzzles.records import write_jsonl
    if args.store:
        with _open_store(args.store) as store:
            records = store.records(split=args.split)
    else:
        from puzzles.seeds import load_seeds
        records = load_seeds(args.split)
    (write_p3 if args.format == "p3" else write_jsonl)(records, args.out)
    print(f"wrote {len(records)} puzzles to {args.out}")
    return 0
