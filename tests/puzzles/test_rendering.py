"""Rendering puzzle source for files: any docstring and any string constant parses back to the
same value, and the puzzle to the same hash."""

import ast
import json
import warnings

import pytest

from puzzles.errors import PuzzleError
from puzzles.format import parse_puzzle, source_with_docstring, string_literal
from puzzles.p3 import read_p3, to_p3
from puzzles.records import PuzzleRecord, read_jsonl, write_jsonl


def test_string_literal_value_is_exactly_the_text(hostile_texts):
    for text in hostile_texts(2000, seed=1, surrogates=True):
        literal = string_literal(text)
        assert ast.literal_eval(literal) == text, literal
        # What it gives must be writable as UTF-8 source: no NUL (refused in source), no CR
        # (read back as LF), no lone surrogate (cannot be encoded).
        assert "\x00" not in literal and "\r" not in literal
        literal.encode("utf-8")


def test_string_literal_escapes_only_what_it_must():
    # Readable: newlines, single quotes inside, non-ASCII stay as they are.
    assert string_literal('Find x.\n    "a" => \'b\' é') == '"""Find x.\n    "a" => \'b\' é"""'
    assert string_literal('ends "') == '"""ends \\""""'
    assert string_literal('a """ b') == '"""a \\"\\"" b"""'
    assert string_literal("back\\slash\x00") == '"""back\\\\slash\\x00"""'


def plain_puzzle(i: int = 0, head: str = "") -> str:
    return f"{head}def f(x: int, i={i}):\n    return x == i + 1\n"


def test_docstrings_render_into_source_that_parses_to_the_same_puzzle(hostile_texts):
    for i, text in enumerate(hostile_texts(1000, seed=2, surrogates=True)):
        p = parse_puzzle(plain_puzzle(i), docstring=text)
        rendered = source_with_docstring(p)
        again = parse_puzzle(rendered)
        assert again == p and again.hash == p.hash, rendered
        # The docstring is the text itself; a lone surrogate is kept as its escape (no file or
        # store can hold the character).
        assert p.docstring == text.encode("utf-8", "backslashreplace").decode("utf-8")


def test_docstring_goes_into_f_even_below_imports():
    # The docstring went after the first line of the source, which is an import here.
    p = parse_puzzle(plain_puzzle(head="import math\nfrom typing import List\n"),
                     docstring="Find x.")
    rendered = source_with_docstring(p)
    assert '    """Find x."""' in rendered
    assert parse_puzzle(rendered) == p
    # Not canonical (body on the header line): still a docstring of f that parses back.
    odd = p.with_meta(source="def f(x: int, i=0): return x == i + 1\n")
    assert parse_puzzle(source_with_docstring(odd)).docstring == "Find x."


def string_constants(source: str) -> list[str]:
    """Every str constant in the source but the docstrings, in order (f-string parts too)."""
    tree = ast.parse(source)
    docs = {id(fn.body[0].value) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
            and ast.get_docstring(fn, clean=False) is not None}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docs]


def spellings(value: str) -> list[str]:
    """Ways to write `value` in source: repr, our triple quotes, raw triple quotes where a raw
    string can hold it, and an implicit concatenation."""
    out = [repr(value), string_literal(value), f"{value[:1]!r} {value[1:]!r}"]
    for raw in (f'r"""{value}"""', f"r'''{value}'''"):
        try:
            # A quote run in `value` can end the raw string early, and what follows may hold
            # invalid escapes: that spelling is wrong (checked below), its warning is noise.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if ast.literal_eval(raw) == value:
                    out.append(raw)
        except (SyntaxError, ValueError):
            pass
    return out


def hostile_puzzles(hostile_texts, n: int, seed: int) -> list[tuple[str, str]]:
    """(puzzle source, solution source) pairs whose string constants (defaults, body, f-string
    parts, a bytes constant) and docstrings are hostile text in every spelling."""
    texts = hostile_texts(n, seed=seed, surrogates=True)
    out = []
    for i, (a, b) in enumerate(zip(texts, texts[1:] + texts[:1])):
        for j, (sa, sb) in enumerate(zip(spellings(a), spellings(b))):
            fstring = ast.unparse(ast.JoinedStr([
                ast.Constant(a), ast.FormattedValue(ast.Name("x", ast.Load()), -1, None),
                ast.Constant(b)]))
            data = a.encode("utf-8", "replace")  # a bytes constant too
            puzzle = (f"def f(x: str, a={sa}, k={i * 10 + j}):\n"
                      f"    {string_literal(b)}\n"
                      f"    c = {sb}\n"
                      f"    return x == a + c + {fstring} + str({data!r})\n")
            solution = f"def g(a={sa}, k={i * 10 + j}):\n    {sa}\n    return a + {sb}\n"
            out.append((puzzle, solution))
    return out


def test_string_constants_keep_their_values_through_canonical_form(hostile_texts):
    for puzzle, _ in hostile_puzzles(hostile_texts, 300, seed=3):
        p = parse_puzzle(puzzle)
        assert string_constants(p.source) == string_constants(puzzle), puzzle
        # The canonical form is its own canonical form.
        assert parse_puzzle(p.source) == p.with_meta(docstring="")


def test_hostile_puzzles_survive_jsonl_and_p3_files(hostile_texts, tmp_path):
    records = []
    for i, (puzzle, solution) in enumerate(hostile_puzzles(hostile_texts, 100, seed=4)):
        p = parse_puzzle(puzzle, name=f"hostile:{i}")
        records.append(PuzzleRecord(p, [solution]))
    write_jsonl(records, tmp_path / "out.jsonl")
    back, rejected = read_jsonl(tmp_path / "out.jsonl")
    assert rejected == []
    assert [r.puzzle for r in back] == [r.puzzle for r in records]
    (tmp_path / "out.json").write_text(json.dumps([to_p3(r) for r in records]))
    back, rejected = read_p3(tmp_path / "out.json")
    assert rejected == []
    assert [r.puzzle.hash for r in back] == [r.puzzle.hash for r in records]
    assert [r.puzzle.docstring for r in back] == [r.puzzle.docstring for r in records]
    assert [string_constants(s) for r in back for s in r.solutions] == [
        string_constants(s) for r in records for s in r.solutions]


def test_p3_docstring_is_read_as_the_literal_it_is(tmp_path):
    items = [{"name": f"D:{i}", "sat": f"def sat(x: int, i={i}):\n    return x == i",
              "sol_docstring": doc, "sol_bodies": []} for i, doc in enumerate([
                  '    """\n    Sample Output:\n    "1010"\n    """',  # P3's own layout
                  '    """$\\\\sum_{i \\in S}$"""',  # an escaped backslash and an invalid escape
                  "    '''single quotes'''",
                  '    """ends in a quote """"',  # written by older selfplay: kept as written
                  "plain text, no quotes"])]
    (tmp_path / "p.json").write_text(json.dumps(items))
    records, rejected = read_p3(tmp_path / "p.json")
    assert rejected == []
    assert [r.puzzle.docstring for r in records] == [
        '\n    Sample Output:\n    "1010"\n    ', "$\\sum_{i \\in S}$", "single quotes",
        'ends in a quote "', "plain text, no quotes"]


def test_a_lone_surrogate_in_a_name_is_refused_by_name(tmp_path):
    (tmp_path / "in.jsonl").write_text(
        '{"name": "bad\\ud800", "puzzle": "def f(x: int):\\n    return x == 1"}\n'
        + json.dumps({"name": "good", "puzzle": "def f(x: int):\n    return x == 2"}) + "\n")
    records, rejected = read_jsonl(tmp_path / "in.jsonl")
    assert [r.puzzle.name for r in records] == ["good"]
    assert len(rejected) == 1 and rejected[0].where.endswith(":1")
    assert "lone surrogate" in rejected[0].reason
    with pytest.raises(PuzzleError, match="tag"):
        parse_puzzle("def f(x: int):\n    return x == 1", tags=["\udfff"])
