"""A puzzle with its solutions and provenance, and the project's own JSONL format.

One JSON object a line:
`{"name", "family", "split", "difficulty", "tags", "puzzle", "solutions", "provenance"}` where
`puzzle` is the source of `f`, `solutions` a list of sources of `g`, and `provenance` a free-form
object (origin, round, model, sampling settings, parents...). Only `puzzle` is required.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import Puzzle, parse_puzzle, source_with_docstring

RECORD_KEYS = {"name", "family", "split", "difficulty", "tags", "puzzle", "solutions",
               "provenance", "hash", "answer_type"}


@dataclass
class PuzzleRecord:
    puzzle: Puzzle
    solutions: list[str] = field(default_factory=list)
    """Sources of `g`, as given (validated against the puzzle when stored)."""
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        p = self.puzzle
        out = {"name": p.name, "family": p.family, "split": p.split,
               "difficulty": p.difficulty, "tags": list(p.tags), "hash": p.hash,
               "answer_type": p.answer_type, "puzzle": source_with_docstring(p),
               "solutions": list(self.solutions)}
        if self.provenance:
            out["provenance"] = self.provenance
        return out


@dataclass
class Rejected:
    """An input item that was not taken, with where it was and why."""

    where: str
    reason: str
    name: str = ""

    def __str__(self) -> str:
        label = f" ({self.name})" if self.name else ""
        return f"{self.where}{label}: {self.reason}"


def record_from_json(obj: object, where: str) -> PuzzleRecord:
    if not isinstance(obj, dict):
        raise PuzzleError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - RECORD_KEYS
    if unknown:
        raise PuzzleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if "puzzle" not in obj:
        raise PuzzleError(f"{where}: missing key 'puzzle'")
    solutions = obj.get("solutions", [])
    if not isinstance(solutions, list) or not all(isinstance(s, str) for s in solutions):
        raise PuzzleError(f"{where}: 'solutions' must be a list of source strings")
    provenance = obj.get("provenance", {}) or {}
    if not isinstance(provenance, dict):
        raise PuzzleError(f"{where}: 'provenance' must be an object")
    tags = obj.get("tags", [])
    if not isinstance(tags, list):
        raise PuzzleError(f"{where}: 'tags' must be a list")
    meta = {k: obj.get(k, "") or "" for k in ("name", "family", "difficulty")}
    try:
        puzzle = parse_puzzle(obj["puzzle"], split=obj.get("split", "none"),
                              tags=[str(t) for t in tags], **meta)
    except PuzzleError as e:
        raise PuzzleError(f"{where}: {e}") from None
    return PuzzleRecord(puzzle, list(solutions), provenance)


@dataclass
class JsonLine:
    """One non-blank line of a JSONL file: its decoded value, or why it is not JSON."""

    lineno: int
    value: object = None
    error: str = ""


def read_json_lines(path: str | Path) -> list[JsonLine]:
    """Every non-blank line of a JSONL file, decoded; a file that cannot be read is an error
    naming it, a line that is not JSON is reported on its JsonLine."""
    out = []
    for lineno, line in _lines(path):
        try:
            out.append(JsonLine(lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            out.append(JsonLine(lineno, error=f"bad JSON: {e.msg} at column {e.colno}"))
        except RecursionError:
            out.append(JsonLine(lineno, error="bad JSON: nested too deeply"))
    return out


def read_jsonl(path: str | Path) -> tuple[list[PuzzleRecord], list[Rejected]]:
    """Every valid record of a JSONL file, and every line that was not, with its reason."""
    records, rejected = [], []
    for line in read_json_lines(path):
        where = f"{path}:{line.lineno}"
        if line.error:
            rejected.append(Rejected(where, line.error))
            continue
        obj = line.value
        try:
            records.append(record_from_json(obj, where))
        except PuzzleError as e:
            name = obj.get("name", "") if isinstance(obj, dict) else ""
            rejected.append(Rejected(where, str(e).removeprefix(where + ": "), str(name)))
    return records, rejected


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield lineno, line
    except FileNotFoundError:
        raise SelfplayError(f"cannot read {path}: no such file") from None
    except OSError as e:
        raise SelfplayError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SelfplayError(f"{path} is not UTF-8 text") from None


def write_jsonl(records: list[PuzzleRecord], path: str | Path) -> None:
    """Write records atomically (a reader never sees half a file)."""
    text = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)
    # A lone surrogate (one can sit in provenance) cannot be written as UTF-8; a surrogate can
    # only be inside a JSON string, where its backslash escape is the JSON escape that reads
    # back as the same string.
    atomic_write(path, text.encode("utf-8", "backslashreplace").decode("utf-8"))


def atomic_write(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
