"""`selfplay.corpus.importing`: which puzzles an import keeps must not depend on the machine's load. A
reference solution that runs over the verifier's limit is run again with a longer one
(`VerifierConfig.reference_timeout_factor`), and every loss is named."""

import pytest

from puzzles.format import parse_puzzle
from puzzles.records import PuzzleRecord
from puzzles.store import Store
from sandbox import Verifier, VerifierConfig
from selfplay.corpus.importing import add_records

# A limit of 0.5 s, and 3 s for references run again: what a loaded machine does to a
# reference that takes most of the default 5 s, in a tenth of the time.
SMALL = VerifierConfig(timeout=0.5, reference_timeout_factor=6)


def record(name: str, body: str) -> PuzzleRecord:
    """A puzzle of its own (the answer is the name's length), solved by `body` then the
    answer."""
    puzzle = parse_puzzle(f"def f(x: int):\n    return x == {len(name)}\n", name=name,
                          family=name, split="train")
    return PuzzleRecord(puzzle, ["def g():\n" + body + f"    return {len(name)}\n"])


SLOW = "    import time\n    time.sleep(1.0)\n"  # over the 0.5 s limit, well within 3 s
LOOPS = "    while True:\n        pass\n"


@pytest.fixture(scope="module")
def small():
    with Verifier(SMALL) as v:
        yield v


def test_a_reference_slower_than_the_limit_but_within_the_reference_limit_is_kept(
        small, tmp_path):
    records = [record("quick", ""), record("slow", SLOW)]
    with Store(tmp_path / "s.db") as store:
        report = add_records(store, records, small)
        assert [str(r) for r in report.rejected] == []
        assert (report.added, report.solutions) == (2, 2)
        assert report.slow == ["slow"]
        assert report.lines()[1] == ("  1 reference solutions verified only when run again "
                                     "with 3 s of CPU time: slow")
        # Each solution's provenance says which limit it verified under.
        versions = {s.source.count("sleep"): s.verifier for s in store.solutions()}
    assert "timeout=0.5s " in versions[0] and "timeout=3s-cpu/30s-wall " in versions[1]


def test_a_reference_that_loops_forever_is_named_with_why(tmp_path):
    with Verifier(VerifierConfig(timeout=0.5, reference_timeout_factor=2)) as v, \
            Store(tmp_path / "s.db") as store:
        report = add_records(store, [record("fast", ""), record("loops!", LOOPS)], v)
    assert report.added == 1 and report.slow == []
    lost = [r for r in report.rejected if r.name == "loops!"]
    assert [r.where for r in lost] == ["solution 1", "puzzle"]
    assert "reference solution timeout" in lost[0].reason
    assert "1 s CPU limit" in lost[0].reason  # the longer limit it ran over, the second time
    assert "none of its reference solutions verifies; puzzle not stored" in lost[1].reason
    assert any("(loops!): reference solution timeout" in line for line in report.lines())
    assert not report.all_rejected


def test_a_factor_of_one_runs_nothing_again(tmp_path):
    with Verifier(VerifierConfig(timeout=0.5, reference_timeout_factor=1)) as v, \
            Store(tmp_path / "s.db") as store:
        report = add_records(store, [record("slow", SLOW)], v)
    assert report.added == 0 and report.all_rejected
    assert "0.5 s limit" in report.rejected[0].reason


def test_the_factor_is_checked_where_it_is_set():
    from puzzles.errors import SelfplayError
    with pytest.raises(SelfplayError, match="reference_timeout_factor must be >= 1, not 0.5"):
        VerifierConfig(reference_timeout_factor=0.5)
