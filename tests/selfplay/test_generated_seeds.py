"""seeds.generated: rule-based generator instances join a run's store at round 0 as extra human
seeds, train like them, and the data card counts them apart."""

import dataclasses

from puzzles.store import Store
from selfplay.cli import main
from selfplay.config import config_toml, load_config
from selfplay.loop import run
from selfplay.cards import build_card
from test_round_scripted import scripted  # noqa: F401  (the fixture)


def test_generated_seeds_are_stored_verified_and_counted_as_human_generated(
        tmp_path, scripted, tiny_model):  # noqa: F811
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    config = load_config(path / "config.toml")
    config = dataclasses.replace(config, seeds=dataclasses.replace(config.seeds, generated=300))
    (path / "config.toml").write_text(config_toml(config))
    run(path, rounds=1)
    with Store(path / "store.sqlite") as store:
        generated = store.puzzles(origin="generator")
        assert len(generated) >= 250  # a few draws may collide or be trivial
        assert all(sp.puzzle.split == "train" and sp.n_solutions for sp in generated)
        assert {s.origin for s in store.solutions() if s.puzzle_id == generated[0].id} == \
            {"generator"}
        ids = {sp.id for sp in generated}
        from_generators = [e for e in store.train_examples(1)
                           if e.kind == "human" and e.puzzle_id in ids]
        assert from_generators  # they train as human pairs
        card = build_card(store, config, 1)
    assert card["training"]["human_generated"] == len(from_generators)
