import sqlite3

import pytest

from puzzles import SelfplayError, parse_puzzle
from puzzles.format import content_hash
from puzzles.store import SCHEMA_VERSION, Attempt, Store

P1 = parse_puzzle("def f(x: int, a=3): return x > a", name="above", family="arith",
                  split="train")
P2 = parse_puzzle("def f(s: str): return s[::-1] == s and len(s) == 5", name="pal",
                  family="strings", split="heldout")
G1 = "def g(a=3):\n    return a + 1\n"


def test_add_is_idempotent_by_canonical_hash(tmp_path):
    with Store(tmp_path / "s.db") as store:
        with store.transaction():
            pid, created = store.add_puzzle(P1, "seed")
            again, created_again = store.add_puzzle(
                parse_puzzle("def f(x:int,a=3):\n  return x>a  # reformatted"), "imported")
            assert created and not created_again and pid == again
            assert store.add_solution(pid, G1, content_hash(G1), "seed")
            assert not store.add_solution(pid, G1, content_hash(G1), "seed")
        [sp] = store.puzzles()
        assert sp.puzzle == P1 and sp.origin == "seed" and sp.n_solutions == 1
        assert store.counts()["solutions"] == 1


def test_failed_transaction_leaves_store_unchanged(tmp_path):
    with Store(tmp_path / "s.db") as store:
        with store.transaction():
            store.add_puzzle(P1, "seed")
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.add_puzzle(P2, "imported")
                raise RuntimeError("crash mid-batch")
        assert [sp.puzzle.name for sp in store.puzzles()] == ["above"]


def test_writes_outside_a_transaction_are_refused(tmp_path):
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(RuntimeError, match="transaction"):
            store.add_puzzle(P1, "seed")


def test_data_survives_reopen_with_provenance_filters_and_metrics(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store, store.transaction():
        store.add_puzzle(P1, "seed")
        store.add_puzzle(P2, "generated", round=1,
                         provenance={"model": "tiny", "parents": [P1.hash]})
        store.add_attempts([Attempt(1, "solve", P2.hash, 0, "x", verdict="fail")] * 2)
        store.mark_stage_done(1, "propose", {"proposed": 5})
        store.set_metric(1, "pass@1", 0.25)
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        [gen] = store.puzzles(origin="generated")
        assert gen.round == 1 and gen.provenance["parents"] == [P1.hash]
        assert [sp.puzzle.name for sp in store.puzzles(split="train")] == ["above"]
        assert len(store.attempts(round=1)) == 1  # the repeat was a no-op
        assert store.stage_summary(1, "propose") == {"proposed": 5}
        assert store.stage_summary(1, "solve") is None
        assert store.metrics() == {1: {"pass@1": 0.25}}
        assert [sp.puzzle.name for sp in store.puzzles(solved=False)] == ["above", "pal"]


def test_newer_schema_and_non_store_files_are_refused(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(SelfplayError, match="newer"):
        Store(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(SelfplayError, match="not a selfplay store"):
        Store(junk)
    with pytest.raises(SelfplayError, match="does not exist"):
        Store(tmp_path / "missing" / "s.db")


def test_an_old_store_is_migrated_and_keeps_its_data(tmp_path):
    from puzzles import store as store_module
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.executescript(store_module.MIGRATIONS[0])
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO puzzles (hash, source, answer_type, extra_args, origin) "
               "VALUES (?, ?, 'int', '[]', 'seed')", (P1.hash, P1.source))
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [sp.hash for sp in store.puzzles()] == [P1.hash]
        assert store.proposals(1) == []
