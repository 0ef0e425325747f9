"""Schema 4: origin `generator` is accepted in puzzles and solutions, in new stores and in
stores made before it, and any other unknown origin is still refused by the schema."""

from __future__ import annotations

import sqlite3

import pytest

from puzzles.format import parse_puzzle
from puzzles.store import MIGRATIONS, Store


def _store_at_version_3(path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    for migration in MIGRATIONS[:3]:
        for statement in migration.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    db.execute("INSERT INTO puzzles (hash, source, answer_type, extra_args, origin) "
               "VALUES ('h1', 'def f(x: int):\n    return x == 3', 'int', '[]', 'seed')")
    db.execute("INSERT INTO solutions (puzzle_id, hash, source, origin, verdict) "
               "VALUES (1, 's1', 'def g():\n    return 3', 'seed', 'pass')")
    db.execute("INSERT INTO train_examples VALUES (1, 0, 1, 1, 'human')")
    db.close()


@pytest.mark.parametrize("old", [False, True], ids=["new store", "store of schema 3"])
def test_generator_origin_is_stored_and_others_refused(tmp_path, old):
    path = tmp_path / "s.sqlite"
    if old:
        _store_at_version_3(path)
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 4
        assert store.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        with store.transaction():
            pid, created = store.add_puzzle(parse_puzzle("def f(x: int):\n    return x == 4"),
                                            "generator")
            assert created and store.add_solution(pid, "def g():\n    return 4", "s2",
                                                  "generator")
        assert [sp.origin for sp in store.puzzles()][-1] == "generator"
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
        if old:
            assert len(store.train_examples(1)) == 1
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"), store.transaction():
            store.db.execute("INSERT INTO solutions (puzzle_id, hash, source, origin, verdict) "
                             "VALUES (?, 's3', 'def g():\n    return 4', 'bogus', 'pass')",
                             (pid,))
