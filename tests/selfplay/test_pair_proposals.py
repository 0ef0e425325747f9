"""A round whose proposals are pairs (`propose.format = "pair"`): the model writes a puzzle and
its solution together. A scripted sampler stands in for the model, so every case is seen: a
pair whose `g` is right (the solver fails it: only the proposer solves it), a pair whose `g` is
wrong, a puzzle with no `g` after it, and a trivial pair. Verifier and training are real."""

import dataclasses

import pytest

import training.sampling
from puzzles.store import Store
from selfplay.cli import main
from selfplay.config import config_toml, load_config
from selfplay.loop import run

# Completions continue `def fK(`; the scripted sampler renames g to the prompt's K.
RIGHT = ("x: int, a=23):\n    return x % a == 7 and x > 5000\n\n"
         "def gK(a=23):\n    return 5000 * a + 7\n")
WRONG = ("s: str, n=9):\n    return len(s) == n and s.count('w') == 4\n\n"
         "def gK(n=9):\n    return 'w' * n\n")
NO_G = ("li: list[int]):\n    return len(li) == 5 and sum(li) == 77 and min(li) > 3\n\n"
        "assert fK([4, 5, 6, 7, 55])\n")
TRIVIAL = "x: int):\n    return x == 0\n\ndef gK():\n    return 0\n"
PAIRS = [RIGHT, WRONG, NO_G, TRIVIAL]


def scripted_sample(loaded, prompts, n, config, seed):
    out = []
    for prompt in prompts:
        if prompt.rstrip().endswith("("):  # a propose prompt, `def fK(`
            scripted_sample.configs.append(config)
            k = prompt.rstrip()[:-1].rsplit("def f", 1)[1]
            out.append([PAIRS[i % len(PAIRS)].replace("gK", f"g{k}").replace("fK", f"f{k}")
                        for i in range(n)])
        else:
            out.append(["    return 0\n"] * n)  # the solver solves none of them
    return out


@pytest.fixture
def pair_run(tmp_path, monkeypatch, tiny_model):
    scripted_sample.configs = []
    monkeypatch.setattr(training.sampling, "sample", scripted_sample)
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    config = load_config(path / "config.toml")
    config = dataclasses.replace(config, propose=dataclasses.replace(
        config.propose, format="pair", prompts=2, per_prompt=4))
    (path / "config.toml").write_text(config_toml(config))
    return path


def test_a_pair_proposal_is_a_verified_pair_that_trains(pair_run):
    result = run(pair_run, rounds=1)
    r1 = result["rounds"][1]
    assert r1["complete"]
    # The sampler was asked for the puzzle and one function after it.
    assert scripted_sample.configs and all(c.functions == 2 for c in scripted_sample.configs)
    with Store(pair_run / "store.sqlite") as store:
        statuses = {}
        for p in store.proposals(1):
            statuses.setdefault(p.completion.split("\n")[0], set()).add(p.status)
        assert statuses["x: int):"] == {"trivial"}
        assert "novel" in statuses["x: int, a=23):"]
        new = {sp.puzzle.source.split(":", 1)[0]: sp
               for sp in store.puzzles(origin="generated", round=1)}
        assert set(new) == {"def f(x", "def f(s", "def f(li"}
        # Each novel pair's own g is an attempt of stage "propose", judged by verify.
        own = {a.puzzle_hash: a for a in store.attempts(1, "propose")}
        assert own[new["def f(x"].hash].verdict == "pass"
        assert own[new["def f(s"].hash].verdict == "fail"
        no_g = own[new["def f(li"].hash]
        assert no_g.verdict == "rejected" and "is not `def g" in no_g.detail
        # The solver failed every puzzle; the proposer's g is one more attempt, so the right
        # pair's solve rate is 1 / (k + 1): learnable, and it trains.
        right = new["def f(x"]
        [solution] = [s for s in store.solutions(right.id) if s.round == 1]
        assert solution.provenance["by"] == "proposer"
        k = load_config(pair_run / "config.toml").solve.attempts
        assert solution.provenance["solve_rate"] == pytest.approx(1 / (k + 1))
        synthetic = {e.puzzle_id for e in store.train_examples(1) if e.kind == "synthetic"}
        assert synthetic == {right.id}
        select = store.stage_summary(1, "select")
    assert select["own_solved"] == 1 and select["own_solved_by_solver"] == 0
    assert select["own_pairs"] == 1
    assert r1["funnel"]["own_solved"] == 1 and r1["funnel"]["own_pairs"] == 1


def test_an_unknown_proposal_format_is_refused_by_name(tmp_path):
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    text = (path / "config.toml").read_text().replace('format = "checker"', 'format = "both"')
    (path / "config.toml").write_text(text)
    from puzzles.errors import SelfplayError
    with pytest.raises(SelfplayError, match=r"propose.format must be one of checker, pair, program, not 'both'"):
        load_config(path / "config.toml")
