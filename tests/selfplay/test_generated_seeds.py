"""seeds.generated: rule-based generator instances join a run's store at round 0 as extra human
seeds, train like them, and the data card counts them apart."""

import dataclasses

from puzzles.store import Store
from selfplay.cli import main
from selfplay.config import config_toml, load_config
from selfplay.loop import run
from selfplay.reports.cards import build_card
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


def test_a_solution_to_a_withheld_instance_is_a_new_model_written_pair(
        tmp_path, monkeypatch, tiny_model):
    # seeds.withheld stores generator instances without their reference solution; the solve
    # stage aims at them (solve.unsolved_train), and a verified solution is a new pair, where
    # writing a stored solution again would not be.
    import selfplay.corpus.generating
    import training.sampling
    from puzzles.generators import generate
    references = {}

    def drawing(n, seed, family=None):
        drawn = generate(n, seed, family)
        for r in drawn.records:
            # A completion continues the prompt's `def g(...):` line.
            references[r.puzzle.source.splitlines()[0]] = "\n" + r.solutions[0].split("\n", 1)[1]
        return drawn

    def sampler(loaded, prompts, n, config, seed):
        out = []
        for prompt in prompts:
            target = "def f(" + prompt.rsplit("def f(", 1)[-1].splitlines()[0]
            body = references.get(target)
            out.append([body if body and i % 2 == 0 else "\n    return None\n" for i in range(n)])
        return out

    monkeypatch.setattr(selfplay.corpus.generating, "generate", drawing)
    monkeypatch.setattr(training.sampling, "sample", sampler)
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    config = load_config(path / "config.toml")
    config = dataclasses.replace(
        config, seeds=dataclasses.replace(config.seeds, generated=40, withheld=12),
        solve=dataclasses.replace(config.solve, unsolved_train=100, solved_train=0),
        propose=dataclasses.replace(config.propose, prompts=1, per_prompt=1),
        # Room for the longest instance (a graph's edge list) without examples.
        prompts=dataclasses.replace(config.prompts, max_prompt_tokens=1024))
    (path / "config.toml").write_text(config_toml(config))
    result = run(path, rounds=1)
    with Store(path / "store.sqlite") as store:
        withheld = [sp for sp in store.puzzles(origin="generator")
                    if sp.provenance.get("reference_withheld")]
        assert len(withheld) == 12
        solved = store.solutions(round=1, origin="generated")
        assert {s.puzzle_id for s in solved} == {sp.id for sp in withheld}
        assert all(s.provenance["target"] == "new" for s in solved)
        kept = {e.puzzle_id for e in store.train_examples(1) if e.kind == "synthetic"}
        assert kept == {sp.id for sp in withheld}   # half the attempts pass: learnable
    funnel = result["rounds"][1]["funnel"]
    assert funnel["new_pairs"] == 12 and funnel["selected"] == 12
