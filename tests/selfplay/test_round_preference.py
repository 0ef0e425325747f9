"""A real round trained with objective "sft+dpo": the scripted sampler writes passing and failing
attempts of the same puzzles, select pairs them, train runs DPO on them, the card counts them."""

import dataclasses
import json
import random

from puzzles.store import Attempt, Store
from selfplay.cli import main
from selfplay.config import config_toml, load_config
from selfplay.loop import run
from selfplay.stages.select import preference_pairs
from tests.selfplay.test_round_scripted import scripted  # noqa: F401 (a fixture)


def test_a_round_with_sft_plus_dpo_trains_on_preference_pairs(tmp_path, scripted, tiny_model):
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    config = load_config(path / "config.toml")
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, objective="sft+dpo", beta=0.2))
    (path / "config.toml").write_text(config_toml(config))
    assert 'objective = "sft+dpo"' in (path / "config.toml").read_text()
    assert run(path, rounds=1)["rounds"][1]["complete"]
    with Store(path / "store.sqlite") as store:
        pairs = store.preference_pairs(1)
        assert pairs
        per_puzzle = {}
        for pp in pairs:
            chosen, rejected = store.attempt(pp.chosen_attempt), store.attempt(pp.rejected_attempt)
            puzzle = store.puzzle_by_id(pp.puzzle_id)
            assert chosen.puzzle_hash == rejected.puzzle_hash == puzzle.hash
            assert chosen.verdict == "pass" and rejected.verdict in ("fail", "error")
            assert rejected.solution and puzzle.puzzle.split == "train"
            assert pp.provenance["rejected_verdict"] == rejected.verdict
            per_puzzle[pp.puzzle_id] = per_puzzle.get(pp.puzzle_id, 0) + 1
        assert max(per_puzzle.values()) <= config.select.per_puzzle
        train = store.stage_summary(1, "train")
        assert train["examples"] == len(pairs)
    saved = json.loads((path / "rounds" / "r1" / "train" / "summary.json").read_text())
    assert saved["inputs"]["config"]["objective"] == "sft+dpo"
    card = json.loads((path / "cards" / "round-1.json").read_text())
    assert card["training"]["preference_pairs"] == len(pairs)
    assert "preference pairs" in (path / "cards" / "round-1.md").read_text()


def _attempt(i, verdict, body):
    return Attempt(round=1, stage="solve", puzzle_hash="p", attempt=i, completion=body,
                   solution_hash=f"h{body}", verdict=verdict, id=i + 1,
                   solution=f"def g():\n    return {body}\n" if body else "")


def test_pairs_are_balanced_and_do_not_depend_on_attempt_order():
    attempts = ([_attempt(i, "pass", str(i % 2)) for i in range(4)]
                + [_attempt(4 + i, v, b) for i, (v, b) in enumerate(
                    [("fail", "7"), ("error", "1/0"), ("fail", "8"), ("rejected", ""),
                     ("timeout", "9")])])
    pairs = preference_pairs(attempts, per_puzzle=5, seed="s-p")
    # 2 distinct passes, 3 distinct fail/error: 3 pairs, every failure once, passes reused.
    assert len(pairs) == 3
    assert {r.solution_hash for _, r in pairs} == {"h7", "h1/0", "h8"}
    assert {c.solution_hash for c, _ in pairs} == {"h0", "h1"}
    shuffled = list(attempts)
    random.Random(3).shuffle(shuffled)
    assert [(c.id, r.id) for c, r in preference_pairs(shuffled, 5, "s-p")] == \
        [(c.id, r.id) for c, r in pairs]
    assert len(preference_pairs(attempts, per_puzzle=2, seed="s-p")) == 2
    assert preference_pairs([a for a in attempts if a.verdict == "pass"], 5, "s-p") == []
