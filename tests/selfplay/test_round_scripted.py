"""One real round with a scripted sampler in place of the model's, so that every stage sees
the cases it must handle: valid, trivial, broken, duplicate, near-duplicate, contaminated and
truncated proposals; solutions that pass, fail and do not parse. Training and the verifier are
the real ones."""

import dataclasses
import json

import pytest

import training.sampling
from puzzles.seeds import load_seeds
from selfplay.cli import main
from selfplay.config import config_toml, load_config
from selfplay.loop import export, run
from puzzles.store import Store

A = "x: int, a=17):\n    return x % a == 5 and x > 1000\n"
A_NEAR = "x: int, a=19):\n    return x % a == 5 and x > 1000\n"
B = "s: str, n=12):\n    return len(s) == n and s.count('q') == 3 and s[0] == 'z'\n"
C = "li: list[int]):\n    return len(li) == 6 and sum(li) == 99 and len(set(li)) == 6\n"
TRIVIAL = "x: int):\n    return x == 0\n"
BROKEN = "x: int):\n    return undefined_name > x\n"
SYNTAX = "x: int) return x\n"
TRUNCATED = "x: int):\n    return x > 5 and"
TRAIN_SEED = load_seeds("train")[0].puzzle.source.split("(", 1)[1]
HELDOUT_SEED = load_seeds("heldout")[0].puzzle.source.split("(", 1)[1]
UNSOLVED = "y: int, b=41):\n    return y * y == b * 1000 + 7 and y > 3\n"
NOT_BOOL = "m: list[int]):\n    return sum(m[:5]) * 3\n"
PROPOSALS = [A, B, C, TRIVIAL, BROKEN, SYNTAX, TRUNCATED, TRAIN_SEED, HELDOUT_SEED, A_NEAR,
             UNSOLVED, NOT_BOOL]

SOLUTIONS = {  # a fragment of the puzzle -> a correct body
    "x % a == 5": "    return 1000 * a + 5\n",
    "s.count('q') == 3": "    return 'z' + 'qqq' + 'y' * (n - 4)\n",
    "sum(li) == 99": "    return [1, 2, 3, 4, 5, 84]\n",
}


def scripted_sample(loaded, prompts, n, config, seed):
    out = []
    for prompt in prompts:
        tail = prompt[-400:]
        if prompt.rstrip().endswith("("):  # a propose prompt: `def fK(`
            start = len(scripted_sample.proposed)
            batch = [PROPOSALS[(start + i) % len(PROPOSALS)] for i in range(n)]
            scripted_sample.proposed.extend(batch)
            out.append(batch)
            continue
        body = next((b for frag, b in SOLUTIONS.items() if frag in tail.rsplit("def f(", 1)[-1]),
                    None)
        if body is None:
            out.append(["    return 0\n"] * n)
        elif "sum(li)" in tail:
            out.append([body] * n)  # every attempt solves C: too easy to learn from
        else:
            out.append([body if i % 2 == 0 else "    return -1\n" if i % 4 == 1 else "    ret("
                        for i in range(n)])
    return out


@pytest.fixture
def scripted(monkeypatch):
    scripted_sample.proposed = []
    monkeypatch.setattr(training.sampling, "sample", scripted_sample)


def test_a_round_sorts_every_kind_of_proposal_and_trains_on_the_learnable(
        tmp_path, scripted, tiny_model):
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    result = run(path, rounds=1)
    r1 = result["rounds"][1]
    assert r1["complete"]
    with Store(path / "store.sqlite") as store:
        statuses = {}
        for p in store.proposals(1):
            statuses.setdefault(p.completion, set()).add(p.status)
        assert statuses[TRIVIAL] == {"trivial"}
        assert statuses[BROKEN] == {"broken"}
        assert statuses[NOT_BOOL] == {"broken"}
        assert statuses[SYNTAX] == {"invalid"}
        assert statuses[TRUNCATED] == {"invalid"}
        assert statuses[TRAIN_SEED] == {"duplicate"}
        assert statuses[HELDOUT_SEED] == {"contaminated"}
        assert statuses[A_NEAR] == {"near_duplicate"}
        assert "novel" in statuses[A] and statuses[A] <= {"novel", "duplicate"}
        new = store.puzzles(origin="generated", round=1)
        assert len(new) == 4 and all(sp.puzzle.split == "train" for sp in new)
        unsolved = next(sp for sp in new if "b * 1000" in sp.puzzle.source)
        assert unsolved.n_solutions == 0
        prov = new[0].provenance
        assert prov["model"] == "tiny" and prov["parents"] and prov["sampling"]["temperature"]
        assert prov["model_fingerprint"]

        # Verified solutions of all three are stored, with provenance; only A and B train.
        solutions = store.solutions(origin="generated")
        assert {s.puzzle_id for s in solutions} == {sp.id for sp in new} - {unsolved.id}
        assert all(s.verifier and s.provenance["model"] == "tiny" for s in solutions)
        examples = store.train_examples(1)
        synthetic = [e for e in examples if e.kind == "synthetic"]
        c_id = next(sp.id for sp in new if "sum(li)" in sp.puzzle.source)
        assert len(synthetic) == 2 and c_id not in {e.puzzle_id for e in synthetic}
        human = [e for e in examples if e.kind == "human"]
        assert len(human) >= len(examples) / 4
        attempts = store.attempts(1, "solve")
        assert {a.verdict for a in attempts} == {"pass", "fail", "rejected"}

    # Every puzzle solved is one the model proposed: its own, none of them human.
    assert r1["funnel"] == {"proposed": 32, "valid": r1["funnel"]["valid"], "novel": 4,
                            "solved": 3, "own_solved": 3, "human_solved": 0, "new_pairs": 3,
                            "own_pairs": 3, "selected": 2}
    assert (path / "rounds" / "r1" / "train" / "adapter_config.json").exists()
    assert (path / "cards" / "round-1.json").exists()

    out = tmp_path / "export.jsonl"
    assert export(path, out) == len(examples)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    syn = [x for x in lines if x["kind"] == "synthetic"]
    assert len(syn) == 2 and all(x["puzzle_provenance"]["parents"] for x in syn)
    assert all(x["verdict"] == "pass" and x["verifier"] for x in lines)

    # Round 2 proposes from solved puzzles only: the unsolved one is never a few-shot example,
    # while the solved generated ones may be.
    from selfplay.stages.propose import solved_train_puzzles
    with Store(path / "store.sqlite") as store:
        pool = {p.hash for p in solved_train_puzzles(store)}
        assert unsolved.hash not in pool and {sp.hash for sp in new} - {unsolved.hash} <= pool
    run(path, rounds=2)
    with Store(path / "store.sqlite") as store:
        parents = {h for p in store.proposals(2) for h in p.provenance["parents"]}
        assert parents and unsolved.hash not in parents
        assert all(store.puzzle(h).n_solutions > 0 for h in parents)


def test_a_puzzle_too_long_for_the_prompt_is_counted_not_fatal(tmp_path, scripted, tiny_model):
    import dataclasses

    from selfplay.config import load_config, config_toml
    long_puzzle = ("x: int, a=17):\n    return x % a == 5 and x > 1000 and "
                   + " and ".join(f"x != {i}" for i in range(400)) + "\n")
    PROPOSALS.append(long_puzzle)
    try:
        path = tmp_path / "run"
        assert main(["init", str(path), "--preset", "tiny"]) == 0
        config = load_config(path / "config.toml")
        config = dataclasses.replace(config, dedup=dataclasses.replace(
            config.dedup, near_duplicate=1.0))
        (path / "config.toml").write_text(config_toml(config))
        result = run(path, rounds=1)
        assert result["rounds"][1]["complete"]
        with Store(path / "store.sqlite") as store:
            [sp] = [sp for sp in store.puzzles(origin="generated") if "x != 399" in
                    sp.puzzle.source]
            attempts = store.attempts(1, "solve", puzzle_hash=sp.hash)
            assert attempts and all(a.verdict == "rejected" and "prompt too long" in a.detail
                                    for a in attempts)
    finally:
        PROPOSALS.remove(long_puzzle)


def test_an_eval_set_added_after_the_run_started_does_not_change_what_trains(
        tmp_path, scripted, tiny_model):
    # Dedup decontaminates against the eval sets recorded in the store when the run started,
    # so an eval set added on resume changes measurements only.
    eval_file = tmp_path / "a.jsonl"
    eval_file.write_text(json.dumps({"puzzle": "def f(" + A}) + "\n")

    def statuses_of_a(path):
        with Store(path / "store.sqlite") as store:
            return {p.status for p in store.proposals(1) if p.completion == A}

    def with_eval_file(path):
        config = load_config(path / "config.toml")
        (path / "config.toml").write_text(config_toml(dataclasses.replace(
            config, eval=dataclasses.replace(config.eval, sets=("heldout", str(eval_file))))))

    # Configured when the run starts, the set keeps A out of training.
    pinned = tmp_path / "pinned"
    assert main(["init", str(pinned), "--preset", "tiny"]) == 0
    with_eval_file(pinned)
    run(pinned, rounds=1)
    assert statuses_of_a(pinned) == {"contaminated"}

    # Added once round 0 is done, it does not: A is novel, as in a run that never had the set.
    scripted_sample.proposed = []
    added = tmp_path / "added"
    assert main(["init", str(added), "--preset", "tiny"]) == 0
    run(added, rounds=0)
    with_eval_file(added)
    run(added, rounds=1)
    assert "novel" in statuses_of_a(added)
    with Store(added / "store.sqlite") as store:
        assert store.meta("decontamination")["sets"] == ["heldout"]
        # ...while round 1 was still measured on the added set.
        assert f"eval/{eval_file}" in store.metrics()[1]


def test_solved_train_puzzles_add_only_solutions_the_store_lacks(tmp_path, monkeypatch,
                                                                 tiny_model):
    # Expert iteration: with solve.solved_train, puzzles that already have a (human) solution
    # are attempted too. The human solution written again adds nothing; a new correct one is a
    # new verified pair, kept apart by its provenance and counted in the select summary.
    seed = next(r for r in load_seeds("train") if r.solutions)
    human = seed.solutions[0]
    human_body = "\n" + human.split(":\n", 1)[1]  # completions continue the header line
    variant = "\n    unused = 0" + human_body
    marker = seed.puzzle.source.split("(", 1)[1]

    def sample(loaded, prompts, n, config, seed):
        out = []
        for prompt in prompts:
            if prompt.rstrip().endswith("("):
                out.append([TRIVIAL] * n)
            elif prompt.rsplit("def f(", 1)[-1].startswith(marker):
                out.append(([human_body, variant, "    return None\n"] * n)[:n])
            else:
                out.append(["    return None\n"] * n)
        return out

    monkeypatch.setattr(training.sampling, "sample", sample)
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    config = load_config(path / "config.toml")
    config = dataclasses.replace(config, solve=dataclasses.replace(
        config.solve, attempts=4, solved_train=10_000))
    (path / "config.toml").write_text(config_toml(config))
    result = run(path, rounds=1)
    with Store(path / "store.sqlite") as store:
        sp = store.puzzle(seed.puzzle.hash)
        attempts = store.attempts(1, "solve", puzzle_hash=sp.hash)
        assert [a.verdict for a in attempts] == ["pass", "pass", "fail", "pass"]
        mine = [s for s in store.solutions(sp.id) if s.round == 1]
        assert [s.source for s in mine] == [attempts[1].solution]
        assert "unused = 0" in mine[0].source
        assert mine[0].origin == "generated" and mine[0].provenance["target"] == "solved"
        assert (sp.id, mine[0].id) in {(e.puzzle_id, e.solution_id)
                                       for e in store.train_examples(1)
                                       if e.kind == "synthetic"}
        select = store.stage_summary(1, "select")
    assert select["new_pairs"] == select["on_solved"] >= 1
    assert result["rounds"][1]["funnel"]["new_pairs"] == select["new_pairs"]
