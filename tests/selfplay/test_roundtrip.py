"""Every puzzle survives every format: store -> JSONL -> store and store -> P3 -> store give
back each puzzle under the same canonical hash, with its docstring and its solutions, and the
solutions still verify. Over the shipped seeds, and over the real P3 data when it sits beside
the checkout (../shared/data/p3)."""

import ast
import warnings
from pathlib import Path

import pytest

from puzzles.format import content_hash, string_literal
from puzzles.p3 import read_p3, write_p3
from puzzles.records import read_jsonl, write_jsonl
from puzzles.seeds import load_seeds
from puzzles.store import Store
from selfplay.cli import main
from selfplay.corpus.importing import add_records

P3 = Path(__file__).resolve().parents[3] / "shared" / "data" / "p3"
needs_p3 = pytest.mark.skipif(not (P3 / "puzzles.json").exists(),
                              reason="P3 data not present beside the checkout")
FORMATS = {"jsonl": (write_jsonl, read_jsonl), "p3": (write_p3, read_p3)}


def written(records, path) -> Store:
    """A store holding `records` as `puzzles add` writes them, without verifying: for P3's
    1,715 puzzles, whose solutions the sandbox's P3 test verifies. A solution that comes back
    as the same canonical source verifies as it did."""
    store = Store(path)
    with store.transaction():
        for r in records:
            pid, _ = store.add_puzzle(r.puzzle, "imported")
            for source in r.solutions:
                store.add_solution(pid, source, content_hash(source), "imported")
    return store


def through(fmt: str, store: Store, tmp_path: Path) -> list:
    """The store's records written in `fmt` and read back; nothing may be rejected."""
    write, read = FORMATS[fmt]
    path = tmp_path / f"out.{fmt}"
    write(store.records(), path)
    records, rejected = read(path)
    assert [str(r) for r in rejected] == []
    return records


def content(store: Store, fmt: str) -> dict:
    """hash -> what the format carries of the puzzle: P3 has no family, split or difficulty
    (its family is the name's class part) but every format keeps name, docstring, solutions."""
    out = {}
    for r in store.records():
        p = r.puzzle
        meta = (p.name, p.family, p.split, p.difficulty, p.tags) if fmt == "jsonl" else (p.name,)
        out[p.hash] = (meta, p.answer_type, p.extra_args, p.docstring, sorted(r.solutions))
    return out


@pytest.fixture(scope="module")
def seed_store(verifier, tmp_path_factory):
    """The seeds, added as `puzzles add` adds them (every solution verified)."""
    seeds = load_seeds()
    with Store(tmp_path_factory.mktemp("seeds") / "seeds.db") as store:
        report = add_records(store, seeds, verifier)
        assert report.rejected == [] and report.added == len(seeds)
        yield store, report


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_seed_survives_the_format_and_still_verifies(fmt, seed_store, verifier, tmp_path):
    first, report = seed_store
    with Store(tmp_path / "again.db") as second:
        again = add_records(second, through(fmt, first, tmp_path), verifier)
        assert [str(r) for r in again.rejected] == []
        assert (again.added, again.solutions) == (report.added, report.solutions)
        assert content(second, fmt) == content(first, fmt)


def hostile(doc: str) -> bool:
    """A docstring that pasting between triple quotes gets wrong: stripped first, as the old
    JSONL writer did (BinaryStrXOR's then ends in a quote), or as it is."""
    for text in (doc.strip(), doc):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # P3's invalid escapes (`\i`) only warn
                if ast.literal_eval(f'"""{text}"""') != text:
                    return True
        except (SyntaxError, ValueError):
            return True
    return False


@pytest.fixture(scope="module")
def p3_store(tmp_path_factory):
    records, rejected = read_p3(P3 / "puzzles.json")
    assert rejected == []
    with written(records, tmp_path_factory.mktemp("p3") / "p3.db") as store:
        yield store


@pytest.fixture(scope="module", params=list(FORMATS))
def p3_back(request, p3_store, tmp_path_factory):
    """(format, P3's records written in it from the store and read back), once per format."""
    fmt = request.param
    return fmt, through(fmt, p3_store, tmp_path_factory.mktemp(fmt))


@needs_p3
def test_every_p3_puzzle_survives_the_format(p3_back, p3_store, tmp_path):
    fmt, back = p3_back
    with written(back, tmp_path / "again.db") as again:
        before, after = content(p3_store, fmt), content(again, fmt)
    assert len(before) == 1715
    same = [h for h in before if after.get(h) == before[h]]
    assert len(same) == 1715, [before[h][0] for h in before if h not in same][:10]


@needs_p3
def test_p3_puzzles_with_hostile_docstrings_still_verify_after_the_format(
        p3_back, verifier, tmp_path):
    back = [r for r in p3_back[1] if hostile(r.puzzle.docstring)]
    # BinaryStrXOR, MostUnique, PalindromeContaining...: the 90 that the old JSONL writer broke.
    assert len(back) >= 90
    with Store(tmp_path / "again.db") as again:
        report = add_records(again, back, verifier)
    assert [str(r) for r in report.rejected] == []
    assert report.added == len(back)
    assert report.solutions == sum(len(r.solutions) for r in back)


@needs_p3
@pytest.mark.slow
def test_p3_round_trip_through_the_cli_keeps_1715_of_1715(tmp_path, capsys):
    # What a new user does: add P3 to a store, export it, add the export to a fresh store.
    # A generous timeout: Mastermind takes 1 to 2.5 s and the cores may be shared.
    add = ["--timeout", "60"]
    first = tmp_path / "first.db"
    assert main(["puzzles", "add", str(P3 / "puzzles.json"), "--store", str(first), *add]) == 0
    # One export format through the CLI: both formats' round trips of every P3 puzzle are
    # checked without the sandbox above (test_every_p3_puzzle_survives_the_format), and each
    # add here verifies all 1,715 solutions again (about 37 s on 2 cores).
    for fmt in ("jsonl",):
        second, out = tmp_path / f"again-{fmt}.db", tmp_path / f"out.{fmt}"
        assert main(["puzzles", "export", "--store", str(first), "--format", fmt,
                     "--out", str(out)]) == 0
        capsys.readouterr()
        assert main(["puzzles", "add", str(out), "--store", str(second), *add]) == 0
        report = capsys.readouterr().out
        assert report.startswith("added 1715 puzzles"), report[-2000:]
        assert "; 0 rejected" in report.splitlines()[0], report[-2000:]
        with Store(first) as a, Store(second) as b:
            before, after = content(a, fmt), content(b, fmt)
        assert len(before) == 1715
        assert sum(after.get(h) == c for h, c in before.items()) == 1715, fmt


def test_what_the_loop_writes_parses_back_to_the_same_hashes(hostile_texts, tmp_path):
    # Training data (`selfplay export`) and the report's sample puzzles show stored sources:
    # generated puzzles and solutions whose string constants and docstrings are hostile text.
    import json

    from puzzles.format import parse_puzzle, parse_solution
    from selfplay.config import preset
    from selfplay.loop import export
    from selfplay.reports.report import sample_puzzles
    from selfplay.rundir import init_run

    run = init_run(tmp_path / "run", preset("tiny"))
    texts = hostile_texts(60, seed=5, surrogates=True)
    with Store(run.store_file) as store, store.transaction():
        examples = []
        for i, (a, b) in enumerate(zip(texts, texts[1:])):
            puzzle = parse_puzzle(f"def f(x: str, a={a!r}, k={i}):\n    {string_literal(b)}\n"
                                  f"    return x == a + {string_literal(b)}\n")
            solution = parse_solution(f"def g(a={a!r}, k={i}):\n    return a + {b!r}\n", puzzle)
            pid, _ = store.add_puzzle(puzzle, "generated", round=1)
            store.add_solution(pid, solution.source, solution.hash, "generated", round=1)
            sid = store.solutions(pid)[0].id
            examples.append((pid, sid, "synthetic"))
        store.set_train_examples(1, examples)
        store.mark_stage_done(1, "select", {})
    assert export(run.path, tmp_path / "train.jsonl") == len(examples)
    lines = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    for line in lines:
        p = parse_puzzle(line["puzzle"])
        assert p.hash == line["puzzle_hash"]
        assert parse_solution(line["solution"], p).hash == line["solution_hash"]
    with Store(run.store_file) as store:
        samples = sample_puzzles(store, 1)
    assert samples
    for s in samples:
        p = parse_puzzle(s["puzzle"])
        assert parse_solution(s["solution"], p).source == s["solution"]
