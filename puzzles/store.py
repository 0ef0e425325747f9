"""The puzzle store: one SQLite file holding puzzles, solutions, attempts and provenance.

Every write happens inside `Store.transaction()` (BEGIN IMMEDIATE ... COMMIT), so a crash leaves
either all of a batch or none of it. Puzzles are unique by canonical hash and solutions by
(puzzle, hash): adding the same thing twice is a no-op, which is what makes a resumed stage safe
to repeat. The loop records which stages of which round are done in `stages`, and per-round
figures in `metrics`.

Why the loop's run state (proposals, attempts, train examples, stages, metrics) lives here, in
the bottom package, beside the puzzles: a stage's writes must be one transaction across both
(the dedup stage marks a proposal novel and adds it as a puzzle; the select stage adds verified
attempts as solutions together with the round's train examples). Two databases cannot commit
together, and two modules writing one schema would split its migrations. So one schema with one migration list; the run-state tables are used only by
`selfplay`, and `puzzles` code never reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from puzzles.errors import SelfplayError
from puzzles.format import Puzzle
from puzzles.records import PuzzleRecord

ORIGINS = ("seed", "imported", "generated", "generator")
"""seed: the shipped corpus; imported: a file a person gave; generated: the model wrote it;
generator: a rule-based generator (puzzles.generators) drew it, human-authored like a seed."""

# Each entry upgrades the schema by one version; never edit one that has shipped.
MIGRATIONS = (
    """
    CREATE TABLE puzzles (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        answer_type TEXT NOT NULL,
        extra_args TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        family TEXT NOT NULL DEFAULT '',
        split TEXT NOT NULL DEFAULT 'none' CHECK (split IN ('train', 'heldout', 'none')),
        difficulty TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        docstring TEXT NOT NULL DEFAULT '',
        origin TEXT NOT NULL CHECK (origin IN ('seed', 'imported', 'generated')),
        round INTEGER,
        provenance TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX puzzles_split ON puzzles (split, origin);
    CREATE TABLE solutions (
        id INTEGER PRIMARY KEY,
        puzzle_id INTEGER NOT NULL REFERENCES puzzles (id),
        hash TEXT NOT NULL,
        source TEXT NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('seed', 'imported', 'generated')),
        round INTEGER,
        verdict TEXT NOT NULL,
        verifier TEXT NOT NULL DEFAULT '',
        provenance TEXT NOT NULL DEFAULT '{}',
        UNIQUE (puzzle_id, hash)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        round INTEGER NOT NULL,
        stage TEXT NOT NULL,
        puzzle_hash TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        completion TEXT NOT NULL,
        solution_hash TEXT NOT NULL DEFAULT '',
        verdict TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        seconds REAL NOT NULL DEFAULT 0,
        provenance TEXT NOT NULL DEFAULT '{}',
        UNIQUE (round, stage, puzzle_hash, attempt)
    );
    CREATE TABLE stages (
        round INTEGER NOT NULL,
        stage TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (round, stage)
    );
    CREATE TABLE metrics (
        round INTEGER NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (round, name)
    );
    """,
    # 2: the loop's working tables: proposals on their way through filter and dedup, and the
    # exact training set of each round (which pairs, synthetic or human).
    """
    CREATE TABLE proposals (
        id INTEGER PRIMARY KEY,
        round INTEGER NOT NULL,
        prompt INTEGER NOT NULL,
        sample INTEGER NOT NULL,
        completion TEXT NOT NULL,
        puzzle TEXT NOT NULL DEFAULT '',
        puzzle_hash TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'proposed',
        reason TEXT NOT NULL DEFAULT '',
        provenance TEXT NOT NULL DEFAULT '{}',
        UNIQUE (round, prompt, sample)
    );
    CREATE TABLE train_examples (
        round INTEGER NOT NULL,
        position INTEGER NOT NULL,
        puzzle_id INTEGER NOT NULL REFERENCES puzzles (id),
        solution_id INTEGER NOT NULL REFERENCES solutions (id),
        kind TEXT NOT NULL CHECK (kind IN ('synthetic', 'human')),
        PRIMARY KEY (round, position)
    );
    ALTER TABLE attempts ADD COLUMN solution TEXT NOT NULL DEFAULT '';
    """,
    # 3: preference pairs of a round (a passing and a failing attempt of one puzzle, for DPO),
    # kept by attempt id so each side's completion, verdict and provenance stay traceable.
    """
    CREATE TABLE preference_pairs (
        round INTEGER NOT NULL,
        position INTEGER NOT NULL,
        puzzle_id INTEGER NOT NULL REFERENCES puzzles (id),
        chosen_attempt INTEGER NOT NULL REFERENCES attempts (id),
        rejected_attempt INTEGER NOT NULL REFERENCES attempts (id),
        provenance TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (round, position)
    );
    """,
    # 4: origin `generator` (puzzles.generators). SQLite cannot alter a CHECK constraint; its
    # documented way for a change that leaves every stored row valid is to edit the schema text
    # (https://sqlite.org/lang_altertable.html, "other kinds of table schema changes"), which
    # spares copying the tables that solutions, train_examples and preference_pairs point at.
    """
    PRAGMA writable_schema = ON;
    UPDATE sqlite_master SET sql = replace(sql, "'imported', 'generated')",
                                           "'imported', 'generated', 'generator')")
        WHERE type = 'table' AND name IN ('puzzles', 'solutions');
    PRAGMA writable_schema = RESET
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass
class StoredPuzzle:
    id: int
    puzzle: Puzzle
    origin: str
    round: int | None = None
    provenance: dict = field(default_factory=dict)
    n_solutions: int = 0

    @property
    def hash(self) -> str:
        return self.puzzle.hash


@dataclass
class StoredSolution:
    id: int
    puzzle_id: int
    source: str
    hash: str
    origin: str
    round: int | None
    verdict: str
    verifier: str
    provenance: dict


@dataclass
class Attempt:
    """One sampled solution to one puzzle, and what the sandbox said of it."""

    round: int
    stage: str
    puzzle_hash: str
    attempt: int
    completion: str
    solution_hash: str = ""
    verdict: str = ""
    detail: str = ""
    seconds: float = 0.0
    provenance: dict = field(default_factory=dict)
    id: int = 0
    """Row id once stored (0 before)."""
    solution: str = ""
    """Canonical source of `g` parsed from the completion; empty when it did not parse."""


@dataclass
class Proposal:
    """One sampled completion of a propose prompt, and how far it got."""

    round: int
    prompt: int
    sample: int
    completion: str
    puzzle: str = ""
    """Canonical source of `f` once the completion parsed."""
    puzzle_hash: str = ""
    status: str = "proposed"
    """proposed, then a rejection (invalid, trivial, ...) or valid; then duplicate,
    near_duplicate, contaminated or novel."""
    reason: str = ""
    provenance: dict = field(default_factory=dict)
    id: int = 0


@dataclass
class TrainExample:
    round: int
    position: int
    puzzle_id: int
    solution_id: int
    kind: str


@dataclass
class PreferencePair:
    """A passing (chosen) and a failing (rejected) attempt of one puzzle in one round."""

    round: int
    position: int
    puzzle_id: int
    chosen_attempt: int
    rejected_attempt: int
    provenance: dict = field(default_factory=dict)


class Store:
    """A puzzle store at `path` (created if missing). Use as a context manager or `close()`.

    An existing store that cannot be written (a read-only file system, a file or folder without
    write permission) opens read-only: reading works, and a write raises SelfplayError."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise SelfplayError(f"store path {self.path} is a directory, not a file")
        if not self.path.parent.exists():
            raise SelfplayError(f"store path {self.path}: folder {self.path.parent} does not exist")
        # WAL needs its -wal and -shm files beside the store, so the folder must be writable too.
        self.read_only = self.path.exists() and not (
            os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK))
        self._depth = 0
        try:
            try:
                self.db = self._connect()
            except sqlite3.OperationalError as e:
                if (self.read_only or not self.path.exists()
                        or not any(s in str(e) for s in ("unable to open", "readonly"))):
                    raise  # a locked store, say, is not a read-only one
                self.read_only = True  # what access() did not see (a mount, an ACL)
                self.db = self._connect()
        except sqlite3.DatabaseError as e:
            raise SelfplayError(f"{self.path} is not a selfplay store ({e})") from None

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA synchronous=NORMAL")
                self.db = db
                self._migrate()
            except BaseException:
                db.close()
                raise
            return db
        # mode=ro reads the WAL if one is left; where not even -shm can be made, immutable=1
        # reads the main file alone, which is the whole store after a clean close.
        uri = self.path.resolve().as_uri() + "?mode=ro"
        for tail in ("", "&immutable=1"):
            db = sqlite3.connect(uri + tail, uri=True, isolation_level=None, timeout=30)
            try:
                version = self._read_version(db)
                break
            except sqlite3.OperationalError:
                db.close()
                if tail:
                    raise
        if version != SCHEMA_VERSION:
            db.close()
            if version == 0:
                raise SelfplayError(f"{self.path} is not a selfplay store (no schema version)")
            if version > SCHEMA_VERSION:
                raise SelfplayError(f"{self.path} has schema version {version}, newer than "
                                    f"this selfplay understands ({SCHEMA_VERSION}): upgrade "
                                    "selfplay")
            raise SelfplayError(f"{self.path} is read-only and has schema version {version}, "
                                f"older than {SCHEMA_VERSION}: open it once where it can be "
                                "written, to upgrade it")
        return db

    def _read_version(self, db: sqlite3.Connection) -> int:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                          ).fetchone():
            return 0
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise SelfplayError(f"{self.path} has schema version {version}, newer than this "
                                f"selfplay understands ({SCHEMA_VERSION}): upgrade selfplay")
        for number in range(version, SCHEMA_VERSION):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                                (str(number + 1),))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self.db.execute(
            "SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together or not at all; nested use joins the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        if self.read_only:
            raise SelfplayError(f"{self.path} is read-only (its file or folder cannot be "
                                "written): this command writes to the store")
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    def _write(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        if not self._depth:
            raise RuntimeError("store writes must happen inside Store.transaction()")
        return self.db.execute(sql, params)

    # -- puzzles ---------------------------------------------------------------------------
    def add_puzzle(self, puzzle: Puzzle, origin: str, *, round: int | None = None,
                   provenance: dict | None = None) -> tuple[int, bool]:
        """Store a puzzle; returns (id, created). An existing hash is left as it was."""
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
        cur = self._write(
            "INSERT OR IGNORE INTO puzzles (hash, source, answer_type, extra_args, name, family, "
            "split, difficulty, tags, docstring, origin, round, provenance) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (puzzle.hash, puzzle.source, puzzle.answer_type, json.dumps(puzzle.extra_args),
             puzzle.name, puzzle.family, puzzle.split, puzzle.difficulty,
             json.dumps(list(puzzle.tags)), puzzle.docstring, origin, round,
             _dumps(provenance)))
        if cur.rowcount:
            return cur.lastrowid, True
        return self.puzzle_id(puzzle.hash), False

    def add_solution(self, puzzle_id: int, source: str, hash: str, origin: str, *,
                     verdict: str = "pass", verifier: str = "", round: int | None = None,
                     provenance: dict | None = None) -> bool:
        """Store a verified solution; returns whether it was new."""
        cur = self._write(
            "INSERT OR IGNORE INTO solutions (puzzle_id, hash, source, origin, round, verdict, "
            "verifier, provenance) VALUES (?,?,?,?,?,?,?,?)",
            (puzzle_id, hash, source, origin, round, verdict, verifier, _dumps(provenance)))
        return bool(cur.rowcount)

    def puzzle_id(self, hash: str) -> int | None:
        row = self.db.execute("SELECT id FROM puzzles WHERE hash=?", (hash,)).fetchone()
        return row[0] if row else None

    def has_puzzle(self, hash: str) -> bool:
        return self.puzzle_id(hash) is not None

    def puzzles(self, *, split: str | None = None, origin: str | None = None,
                round: int | None = None, family: str | None = None,
                solved: bool | None = None) -> list[StoredPuzzle]:
        """Stored puzzles in insertion order, filtered by any of the given fields."""
        where, params = [], []
        for column, value in (("split", split), ("origin", origin), ("round", round),
                              ("family", family)):
            if value is not None:
                where.append(f"p.{column}=?")
                params.append(value)
        having = ""
        if solved is not None:
            having = "HAVING n > 0" if solved else "HAVING n = 0"
        sql = ("SELECT p.*, (SELECT COUNT(*) FROM solutions s WHERE s.puzzle_id=p.id "
               "AND s.verdict='pass') AS n FROM puzzles p "
               + ("WHERE " + " AND ".join(where) if where else "")
               + " GROUP BY p.id " + having + " ORDER BY p.id")
        self.db.row_factory = sqlite3.Row
        try:
            return [_stored_puzzle(row) for row in self.db.execute(sql, params)]
        finally:
            self.db.row_factory = None

    def puzzle(self, hash: str) -> StoredPuzzle | None:
        pid = self.puzzle_id(hash)
        if pid is None:
            return None
        self.db.row_factory = sqlite3.Row
        try:
            row = self.db.execute(
                "SELECT p.*, (SELECT COUNT(*) FROM solutions s WHERE s.puzzle_id=p.id "
                "AND s.verdict='pass') AS n FROM puzzles p WHERE p.id=?", (pid,)).fetchone()
        finally:
            self.db.row_factory = None
        return _stored_puzzle(row)

    def solutions(self, puzzle_id: int | None = None, *, round: int | None = None,
                  origin: str | None = None) -> list[StoredSolution]:
        where, params = ["verdict='pass'"], []
        for column, value in (("puzzle_id", puzzle_id), ("round", round), ("origin", origin)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        rows = self.db.execute(
            "SELECT id, puzzle_id, source, hash, origin, round, verdict, verifier, provenance "
            f"FROM solutions WHERE {' AND '.join(where)} ORDER BY id", params)
        return [StoredSolution(*row[:8], json.loads(row[8])) for row in rows]

    def records(self, **filters) -> list[PuzzleRecord]:
        """Puzzles with their solutions and provenance, for export."""
        by_puzzle: dict[int, list[str]] = {}
        for s in self.solutions():
            by_puzzle.setdefault(s.puzzle_id, []).append(s.source)
        return [PuzzleRecord(sp.puzzle, by_puzzle.get(sp.id, []),
                             {"origin": sp.origin, **({"round": sp.round} if sp.round is not None
                                                      else {}), **sp.provenance})
                for sp in self.puzzles(**filters)]

    def counts(self) -> dict[str, int]:
        q = self.db.execute
        return {
            "puzzles": q("SELECT COUNT(*) FROM puzzles").fetchone()[0],
            "solved": q("SELECT COUNT(DISTINCT puzzle_id) FROM solutions "
                        "WHERE verdict='pass'").fetchone()[0],
            "solutions": q("SELECT COUNT(*) FROM solutions WHERE verdict='pass'").fetchone()[0],
            "attempts": q("SELECT COUNT(*) FROM attempts").fetchone()[0],
        }

    # -- attempts --------------------------------------------------------------------------
    def add_attempts(self, attempts: Iterable[Attempt]) -> int:
        """Store attempts; a repeat of (round, stage, puzzle, attempt) is ignored."""
        n = 0
        for a in attempts:
            n += self._write(
                "INSERT OR IGNORE INTO attempts (round, stage, puzzle_hash, attempt, completion, "
                "solution_hash, verdict, detail, seconds, provenance, solution) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (a.round, a.stage, a.puzzle_hash, a.attempt, a.completion, a.solution_hash,
                 a.verdict, a.detail, a.seconds, _dumps(a.provenance), a.solution)).rowcount
        return n

    def attempts(self, round: int | None = None, stage: str | None = None, *,
                 verdict: str | None = None, puzzle_hash: str | None = None) -> list[Attempt]:
        where, params = [], []
        for column, value in (("round", round), ("stage", stage), ("verdict", verdict),
                              ("puzzle_hash", puzzle_hash)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        rows = self.db.execute(
            "SELECT round, stage, puzzle_hash, attempt, completion, solution_hash, verdict, "
            "detail, seconds, provenance, id, solution FROM attempts "
            + ("WHERE " + " AND ".join(where) if where else "") + " ORDER BY id", params)
        return [Attempt(*row[:9], json.loads(row[9]), *row[10:]) for row in rows]

    def set_verdict(self, attempt_id: int, verdict: str, detail: str, seconds: float) -> None:
        self._write("UPDATE attempts SET verdict=?, detail=?, seconds=? WHERE id=?",
                    (verdict, detail, seconds, attempt_id))

    # -- proposals -------------------------------------------------------------------------
    def add_proposals(self, proposals: Iterable[Proposal]) -> int:
        n = 0
        for p in proposals:
            n += self._write(
                "INSERT OR IGNORE INTO proposals (round, prompt, sample, completion, puzzle, "
                "puzzle_hash, status, reason, provenance) VALUES (?,?,?,?,?,?,?,?,?)",
                (p.round, p.prompt, p.sample, p.completion, p.puzzle, p.puzzle_hash, p.status,
                 p.reason, _dumps(p.provenance))).rowcount
        return n

    def proposals(self, round: int, status: str | None = None) -> list[Proposal]:
        rows = self.db.execute(
            "SELECT round, prompt, sample, completion, puzzle, puzzle_hash, status, reason, "
            "provenance, id FROM proposals WHERE round=?"
            + (" AND status=?" if status else "") + " ORDER BY prompt, sample",
            (round, status) if status else (round,))
        return [Proposal(*row[:8], json.loads(row[8]), row[9]) for row in rows]

    def set_proposal(self, proposal_id: int, status: str, reason: str = "", *,
                     puzzle: str | None = None, puzzle_hash: str | None = None) -> None:
        self._write("UPDATE proposals SET status=?, reason=?, puzzle=COALESCE(?, puzzle), "
                    "puzzle_hash=COALESCE(?, puzzle_hash) WHERE id=?",
                    (status, reason, puzzle, puzzle_hash, proposal_id))

    # -- training sets ---------------------------------------------------------------------
    def set_train_examples(self, round: int, examples: Iterable[tuple[int, int, str]]) -> None:
        """Record round's training set: (puzzle id, solution id, kind) in order."""
        self._write("DELETE FROM train_examples WHERE round=?", (round,))
        for position, (pid, sid, kind) in enumerate(examples):
            self._write("INSERT INTO train_examples VALUES (?,?,?,?,?)",
                        (round, position, pid, sid, kind))

    def train_examples(self, round: int) -> list[TrainExample]:
        rows = self.db.execute("SELECT * FROM train_examples WHERE round=? ORDER BY position",
                               (round,))
        return [TrainExample(*row) for row in rows]

    def set_preference_pairs(self, round: int,
                             pairs: Iterable[tuple[int, int, int, dict]]) -> None:
        """Record round's preference pairs: (puzzle id, chosen attempt id, rejected attempt id,
        provenance) in order; replaces what the round held (a resumed select writes it again)."""
        self._write("DELETE FROM preference_pairs WHERE round=?", (round,))
        for position, (pid, chosen, rejected, provenance) in enumerate(pairs):
            self._write("INSERT INTO preference_pairs VALUES (?,?,?,?,?,?)",
                        (round, position, pid, chosen, rejected, _dumps(provenance)))

    def preference_pairs(self, round: int) -> list[PreferencePair]:
        rows = self.db.execute(
            "SELECT round, position, puzzle_id, chosen_attempt, rejected_attempt, provenance "
            "FROM preference_pairs WHERE round=? ORDER BY position", (round,))
        return [PreferencePair(*row[:5], json.loads(row[5])) for row in rows]

    def attempt(self, attempt_id: int) -> Attempt:
        row = self.db.execute(
            "SELECT round, stage, puzzle_hash, attempt, completion, solution_hash, verdict, "
            "detail, seconds, provenance, id, solution FROM attempts WHERE id=?",
            (attempt_id,)).fetchone()
        if row is None:
            raise SelfplayError(f"{self.path}: no attempt with id {attempt_id}")
        return Attempt(*row[:9], json.loads(row[9]), *row[10:])

    def solution(self, solution_id: int) -> StoredSolution:
        row = self.db.execute(
            "SELECT id, puzzle_id, source, hash, origin, round, verdict, verifier, provenance "
            "FROM solutions WHERE id=?", (solution_id,)).fetchone()
        return StoredSolution(*row[:8], json.loads(row[8]))

    def puzzle_by_id(self, puzzle_id: int) -> StoredPuzzle:
        row = self.db.execute("SELECT hash FROM puzzles WHERE id=?", (puzzle_id,)).fetchone()
        return self.puzzle(row[0])

    # -- stages and metrics ----------------------------------------------------------------
    def stage_summary(self, round: int, stage: str) -> dict | None:
        """The summary a finished stage left, or None if it has not finished."""
        row = self.db.execute("SELECT summary FROM stages WHERE round=? AND stage=?",
                              (round, stage)).fetchone()
        return json.loads(row[0]) if row else None

    def mark_stage_done(self, round: int, stage: str, summary: dict) -> None:
        self._write("INSERT OR REPLACE INTO stages VALUES (?,?,?)",
                    (round, stage, _dumps(summary)))

    def stages(self) -> list[tuple[int, str, dict]]:
        rows = self.db.execute("SELECT round, stage, summary FROM stages ORDER BY rowid")
        return [(r, s, json.loads(j)) for r, s, j in rows]

    def meta(self, key: str) -> object | None:
        """A run-wide record kept beside the schema version (JSON), None when unset."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (f"run:{key}",)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: object) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"run:{key}", _dumps(value)))

    def set_metric(self, round: int, name: str, value: object) -> None:
        self._write("INSERT OR REPLACE INTO metrics VALUES (?,?,?)", (round, name, _dumps(value)))

    def metrics(self, round: int | None = None) -> dict[int, dict[str, object]]:
        sql = "SELECT round, name, value FROM metrics"
        rows = self.db.execute(sql + (" WHERE round=?" if round is not None else "")
                               + " ORDER BY round, name",
                               (round,) if round is not None else ())
        out: dict[int, dict[str, object]] = {}
        for r, name, value in rows:
            out.setdefault(r, {})[name] = json.loads(value)
        return out


def _dumps(value: object) -> str:
    return json.dumps(value if value is not None else {}, sort_keys=True)


def _stored_puzzle(row: sqlite3.Row) -> StoredPuzzle:
    puzzle = Puzzle(source=row["source"], answer_type=row["answer_type"],
                    extra_args=tuple(tuple(a) for a in json.loads(row["extra_args"])),
                    name=row["name"], family=row["family"], split=row["split"],
                    difficulty=row["difficulty"], tags=tuple(json.loads(row["tags"])),
                    docstring=row["docstring"])
    return StoredPuzzle(row["id"], puzzle, row["origin"], row["round"],
                        json.loads(row["provenance"]), row["n"])
