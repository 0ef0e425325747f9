"""Python Programming Puzzles (P3) `puzzles.json` in and out.

P3 names the checker `sat` and the solver `sol`, stores solution bodies apart from their header
(`sol_header`, `sol_bodies`), and keeps the puzzle's description in `sol_docstring`. Its train/test
split lives in a separate `split.json` of class names (the part of `name` before the colon); we
map `train` to our `train` and `test` to `heldout`.
"""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import parse_puzzle, solution_from_body, string_literal
from puzzles.records import PuzzleRecord, Rejected, atomic_write

P3_SPLIT_NAMES = {"train": "train", "test": "heldout"}


def looks_like_p3(path: str | Path) -> bool:
    """A P3 file is one JSON array; our JSONL is one object a line."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        head = fh.read(4096).lstrip()
    return head.startswith("[")


def read_split(path: str | Path) -> dict[str, str]:
    """Class name -> our split name, from a P3 `split.json`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SelfplayError(f"cannot read split file {path}: {e}") from None
    if not isinstance(data, dict):
        raise SelfplayError(f"split file {path}: expected an object of lists of class names")
    out = {}
    for side, names in data.items():
        if side not in P3_SPLIT_NAMES:
            raise SelfplayError(f"split file {path}: unknown side {side!r} (expected train, test)")
        for name in names:
            out[name] = P3_SPLIT_NAMES[side]
    return out


def read_p3(path: str | Path, split_path: str | Path | None = None,
            ) -> tuple[list[PuzzleRecord], list[Rejected]]:
    """Records of a P3 `puzzles.json`, and the instances that did not parse, with reasons.

    With `split_path` (or a `split.json` beside the file), each puzzle gets its split.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SelfplayError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise SelfplayError(f"{path}: bad JSON at line {e.lineno} column {e.colno}: {e.msg}"
                            ) from None
    if not isinstance(data, list):
        raise SelfplayError(f"{path}: a P3 file is a JSON array of puzzles")
    if split_path is None and (path.parent / "split.json").exists():
        split_path = path.parent / "split.json"
    splits = read_split(split_path) if split_path else {}
    records, rejected = [], []
    for i, item in enumerate(data):
        where = f"{path}[{i}]"
        name = item.get("name", "") if isinstance(item, dict) else ""
        try:
            records.append(_record(item, where, splits))
        except PuzzleError as e:
            rejected.append(Rejected(where, str(e), str(name)))
    return records, rejected


def _record(item: object, where: str, splits: dict[str, str]) -> PuzzleRecord:
    if not isinstance(item, dict) or "sat" not in item:
        raise PuzzleError("not a P3 puzzle (an object with 'sat' is expected)")
    name = str(item.get("name", ""))
    # P3's family is the class, the name before the colon; our export writes `family` where
    # that would lose it (a name without the class in front).
    family = str(item.get("family") or name.split(":", 1)[0])
    doc = _docstring_value(item.get("sol_docstring") or "")
    module = item.get("module") or ""
    puzzle = parse_puzzle(item["sat"], rename="sat", name=name, family=family,
                          split=splits.get(family, "none"), docstring=doc,
                          tags=[module] if module else [])
    header = item.get("sol_header") or puzzle.solution_header()
    solutions = [solution_from_body(body, puzzle, header).source
                 for body in item.get("sol_bodies") or []]
    provenance = {"origin": "imported", "source": "p3"}
    for key in ("notes", "weight"):
        if item.get(key) not in (None, ""):
            provenance[key] = item[key]
    return PuzzleRecord(puzzle, solutions, provenance)


def _docstring_value(text: str) -> str:
    """The docstring a P3 `sol_docstring` stands for. P3 stores the literal as source
    (`    \"\"\"...\"\"\"`); its value is what Python reads, so escapes mean what they do
    there."""
    text = str(text).strip()
    if not text:
        return ""
    try:
        # P3's own docstrings hold invalid escapes (`\i` in LearnParity): warnings, not errors.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
        if isinstance(value, str):
            return value
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        pass
    # Not a string literal: plain text, or a file from an older selfplay, which pasted the text
    # between triple quotes unescaped (so a docstring ending in `"` gave `""""`). Its text is
    # kept as written.
    if len(text) >= 6 and text.startswith(('"""', "'''")) and text.endswith(text[:3]):
        text = text[3:-3]
    return text.strip()


def to_p3(record: PuzzleRecord) -> dict:
    p = record.puzzle
    split = [_split_solution(s) for s in record.solutions]
    # P3 has one header for all bodies: the first solution's, so its argument order survives.
    header = split[0][0] if split else p.solution_header()
    return {
        "name": p.name or p.hash,
        "sat": _renamed(p.source, "f", "sat"),
        "ans_type": p.answer_type,
        "sol_header": header.replace("def g(", "def sol(", 1),
        "sol_docstring": "    " + string_literal(p.docstring) if p.docstring else "",
        "sol_bodies": [body for _, body in split],
        "module": p.tags[0] if p.tags else "",
        "notes": str(record.provenance.get("notes", "")),
        "weight": record.provenance.get("weight", 1.0),
        # Not a P3 key: only where P3's reading of the family (the class) would be wrong.
        **({"family": p.family} if p.family and p.family != (p.name or p.hash).split(":", 1)[0]
           else {}),
    }


def write_p3(records: list[PuzzleRecord], path: str | Path) -> None:
    atomic_write(path, json.dumps([to_p3(r) for r in records], indent=1) + "\n")


def _renamed(source: str, old: str, new: str) -> str:
    prefix = f"def {old}("
    return source.replace(prefix, f"def {new}(", 1)


def _split_solution(solution: str) -> tuple[str, str]:
    """(header, indented body) of a `def g(...):` source, as P3 stores them."""
    lines = solution.rstrip("\n").split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("def g("))
    # ast.unparse puts the whole header on one line, so the body starts on the next; top-level
    # imports move into the body, since P3 keeps only the body.
    imports = ["    " + line for line in lines[:start] if line.strip()]
    return lines[start], "\n".join(imports + lines[start + 1:])

