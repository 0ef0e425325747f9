"""MinHash LSH near-duplicate search: it finds what the exact index finds (on the benchmark's
synthetic seed variants), reports exact Jaccard, and the dedup stage switches to it past
`dedup.lsh_above` stored puzzles with the same outcomes on a small store."""

import dataclasses
import importlib.util
import logging
import random
from pathlib import Path

import pytest

from puzzles.errors import SelfplayError
from puzzles.format import PuzzleError, parse_puzzle
from puzzles.lsh import LSHIndex, lsh_params
from puzzles.seeds import load_seeds
from puzzles.similarity import ShingleIndex, jaccard, shingles
from puzzles.store import Proposal, Store
from selfplay.config import DedupConfig, RunConfig
from selfplay.context import Resources, RoundContext
from selfplay.rundir import RunDir
from selfplay.stages import dedup

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_dedup", ROOT / "bench" / "dedup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_params_reach_the_recall_at_the_threshold():
    bands, rows = lsh_params(0.85)
    assert (bands, rows) == (16, 8) and 1 - (1 - 0.85 ** rows) ** bands >= 0.99
    for bad in (0, 1, 1.5):
        with pytest.raises(SelfplayError, match="LSH threshold"):
            lsh_params(bad)


def test_lsh_finds_the_near_duplicates_the_exact_index_finds():
    stored, queries = _bench().workload(400, 300, seed=3)
    exact, lsh = ShingleIndex(3, literals=False), LSHIndex(0.85, 3, literals=False)
    for i, source in enumerate(stored):
        exact.add(str(i), source)
        lsh.add(str(i), source)
    positives = found = 0
    for q in queries:
        want, got = exact.most_similar(q), lsh.most_similar(q)
        if got[0]:  # a candidate's score is its exact Jaccard, never more than the best
            assert got[1] == pytest.approx(jaccard(shingles(q, 3, False),
                                                  shingles(stored[int(got[0])], 3, False)))
            assert got[1] <= want[1] + 1e-12
        assert lsh.most_similar_exhaustive(q)[1] == pytest.approx(want[1])
        if want[1] >= 0.85:
            positives += 1
            found += got[1] >= 0.85
    assert positives >= 50 and found / positives >= 0.95


def test_nothing_near_gives_no_key():
    lsh = LSHIndex(0.85)
    assert lsh.most_similar("def f(x: int):\n    return x == 3\n") == ("", 0.0)
    lsh.add("a", "def f(s: str, n=12):\n    return len(s) == n and s.count('q') == 3\n")
    assert lsh.most_similar("def f(x: int):\n    return x * x == 49 and x > 0\n") == ("", 0.0)
    assert lsh.most_similar("def f(s: str, n=12):\n    return len(s) == n and s.count('q') == 3\n"
                            ) == ("a", 1.0)


def test_lsh_above_is_validated_and_picks_the_index():
    with pytest.raises(SelfplayError, match="lsh_above"):
        DedupConfig(lsh_above=-1)
    cfg = DedupConfig(lsh_above=10)
    assert isinstance(dedup.near_duplicate_index(cfg, 10), ShingleIndex)
    assert isinstance(dedup.near_duplicate_index(cfg, 11), LSHIndex)


def _statuses(tmp_path, lsh_above: int) -> dict[str, tuple[str, str]]:
    """{proposal: (status, reason)} from the dedup stage over a store of 60 seed variants."""
    bench = _bench()
    rng = random.Random(5)
    seeds = [r.puzzle.source for r in load_seeds("train")]
    stored, proposals = [], []
    while len(stored) < 60:
        try:
            stored.append(parse_puzzle(bench.stored_variant(rng.choice(seeds), rng)))
        except PuzzleError:
            continue
    while len(proposals) < 40:
        try:
            proposals.append(parse_puzzle(bench.mutate(rng.choice(stored).source, rng, 1)))
        except PuzzleError:
            continue
    config = RunConfig()
    config = dataclasses.replace(config, dedup=dataclasses.replace(config.dedup,
                                                                    lsh_above=lsh_above))
    run = tmp_path / str(lsh_above)
    run.mkdir()
    with Store(run / "store.sqlite") as store:
        with store.transaction():
            store.set_meta(dedup.DECONTAMINATION, {"sets": [], "puzzles": []})
            for p in stored:
                store.add_puzzle(p, "generated", round=0)
            store.add_proposals(Proposal(1, i, 0, p.source, p.source, p.hash, "valid")
                                for i, p in enumerate(proposals))
        ctx = RoundContext(1, config, store, RunDir(run), Resources(config),
                           logging.getLogger("test_lsh"))
        dedup.run(ctx)
        return {p.completion: (p.status, p.reason) for p in store.proposals(1)}


def test_dedup_stage_uses_lsh_past_the_size_with_the_same_outcomes(tmp_path):
    exact = _statuses(tmp_path, lsh_above=10_000)
    lsh = _statuses(tmp_path, lsh_above=0)
    assert {s for s, _ in exact.values()} >= {"near_duplicate", "novel"}
    assert {k: s for k, (s, _) in lsh.items()} == {k: s for k, (s, _) in exact.items()}
    # The similarity in the reason is the exact one (the key may differ on a tie).
    assert ([r.split(" to ")[0] for _, r in lsh.values()]
            == [r.split(" to ")[0] for _, r in exact.values()])
