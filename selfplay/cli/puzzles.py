"""`selfplay puzzles add|generate|list|export`: manage the puzzles in a store (or the shipped
seeds)."""

from __future__ import annotations

import json
import sys
from collections import Counter

from puzzles.errors import SelfplayError
from sandbox.config import VerifierConfig


TIMEOUT_HELP = f"seconds per check (default: the sandbox's, {VerifierConfig.timeout:g})"
WORKERS_HELP = "verifier worker processes (default: one per core)"


def register(sub) -> None:
    parser = sub.add_parser("puzzles", help="add, list and export puzzles")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    add = verbs.add_parser("add", help="validate, verify and store puzzles from a P3 JSON or "
                                       "JSONL file")
    add.add_argument("file", help="a P3 puzzles.json or a JSONL file of puzzles")
    add.add_argument("--store", required=True, help="the store file (created if missing)")
    add.add_argument("--split-file", help="P3 split.json (default: split.json beside FILE)")
    add.add_argument("--timeout", type=float,
                     help=TIMEOUT_HELP + "; a reference solution that runs over it is run again "
                          "with --reference-timeout-factor times as long, counted in CPU time")
    add.add_argument("--reference-timeout-factor", type=float,
                     help="how many times --timeout a reference solution that ran over it gets "
                          "in its second run (default 6; 1: no second run)")
    add.add_argument("--workers", type=int, help=WORKERS_HELP)
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
    gen.add_argument("--timeout", type=float, help=TIMEOUT_HELP)
    gen.add_argument("--workers", type=int, help=WORKERS_HELP)
    gen.set_defaults(func=cmd_generate)

    ls = verbs.add_parser("list", help="list puzzles (the shipped seeds without --store)")
    ls.add_argument("--store", help="the store file; without it, the shipped seed corpus")
    ls.add_argument("--split", choices=("train", "heldout", "none"),
                    help="only puzzles of this split (default: every split)")
    ls.add_argument("--family", help="only puzzles of this family (default: every family)")
    ls.add_argument("--json", action="store_true", help="print a JSON array, one object a puzzle")
    ls.set_defaults(func=cmd_list)

    ex = verbs.add_parser("export", help="write puzzles and their solutions to a file")
    ex.add_argument("--store", help="the store file; without it, the shipped seed corpus")
    ex.add_argument("--format", choices=("p3", "jsonl"), default="jsonl",
                    help="jsonl: one puzzle record a line; p3: a P3 puzzles.json, with its "
                         "split.json written beside it")
    ex.add_argument("--out", required=True, help="the file to write")
    ex.add_argument("--split", choices=("train", "heldout", "none"),
                    help="only puzzles of this split (default: every split)")
    ex.add_argument("--family", help="only puzzles of this family (default: every family)")
    ex.set_defaults(func=cmd_export)


def _open_store(path: str, must_exist: bool = True):
    from pathlib import Path

    from puzzles.store import Store
    if must_exist and not Path(path).exists():
        raise SelfplayError(f"no store at {path}")
    return Store(path)


def cmd_add(args) -> int:
    from sandbox import Verifier, VerifierConfig
    from selfplay.corpus.importing import add_records, read_puzzle_file
    from selfplay.config.toml import override
    config = override(VerifierConfig(), timeout=args.timeout, workers=args.workers,
                      reference_timeout_factor=args.reference_timeout_factor)
    # The file is read (and refused) before the store is opened, so that bad input does not
    # leave an empty store file behind.
    records, rejected = read_puzzle_file(args.file, args.split_file)
    if not records and not rejected:
        raise SelfplayError(f"{args.file} holds no puzzles")
    with _open_store(args.store, must_exist=False) as store, Verifier(config) as verifier:
        report = add_records(store, records, verifier, rejected=rejected,
                             progress=sys.stderr.isatty())
    print("\n".join(report.lines()))
    if not report.added and not report.duplicates:
        print(f"selfplay: error: every record of {args.file} was rejected; nothing was added",
              file=sys.stderr)
        return 1
    return 0


def cmd_generate(args) -> int:
    from puzzles.generators import generators
    from sandbox import Verifier, VerifierConfig
    from selfplay.corpus.generating import generate_into
    from selfplay.config.toml import override
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
    from puzzles.records import write_jsonl
    if args.store:
        with _open_store(args.store) as store:
            records = store.records(split=args.split, family=args.family)
    else:
        from puzzles.seeds import load_seeds
        records = [r for r in load_seeds(args.split) if args.family in (None, r.puzzle.family)]
    if args.format == "p3":
        split_file = _write_p3(records, args.out)
        print(f"wrote {len(records)} puzzles to {args.out} and their splits to {split_file}")
    else:
        write_jsonl(records, args.out)
        print(f"wrote {len(records)} puzzles to {args.out}")
    return 0


def _write_p3(records, out: str):
    """P3's pair of files: puzzles.json at `out`, split.json beside it. P3 splits whole
    classes (families), so split.json lists each family under the side its puzzles are on, and
    `puzzles add` reads back the family and split of each puzzle."""
    from pathlib import Path

    from puzzles.p3 import P3_SPLIT_NAMES, write_p3
    from puzzles.records import atomic_write
    side_of = {ours: side for side, ours in P3_SPLIT_NAMES.items()}
    sides: dict[str, set[str]] = {}
    for r in records:
        p = r.puzzle
        if p.split in side_of:
            family = p.family or (p.name or p.hash).split(":", 1)[0]
            sides.setdefault(family, set()).add(side_of[p.split])
    split = {"train": [], "test": []}
    for family, in_sides in sides.items():
        if len(in_sides) > 1:
            raise SelfplayError(f"family {family!r} has puzzles in both train and heldout, "
                                "which P3's split.json (whole families) cannot say: export "
                                "each with --split, or use --format jsonl")
        split[in_sides.pop()].append(family)
    write_p3(records, out)
    split_file = Path(out).parent / "split.json"
    atomic_write(split_file, json.dumps({k: sorted(v) for k, v in split.items()}, indent=1)
                 + "\n")
    return split_file
