"""A round whose proposals are programs (`propose.format = "program"`): the model writes a
program and an input, the sandbox computes the output, and the puzzle "find an input with this
output" is solved by the model's own input. A scripted sampler stands in for the model so that
every case is seen; verifier and training are real."""

import dataclasses

import pytest

import training.sampling
from puzzles.store import Store
from selfplay.cli import main
from selfplay.config import config_toml, load_config
from selfplay.loop import run
from selfplay.stages.propose import program_examples

# Completions continue `def fK(`; the scripted sampler puts in the prompt's K.
GOOD = "s: str) -> str:\n    return s[::-1] + 'z'\n\ndef gK():\n    return 'selfplay'\n"
LOOPS = "n: int) -> int:\n    while True:\n        n += 1\n    return n\n\ndef gK():\n    return 3\n"
COPIES = "li: List[int]) -> List[int]:\n    return li\n\ndef gK():\n    return [1, 2]\n"
COMPUTED = ("n: int) -> int:\n    return n * 2\n\n"
            "def gK():\n    x = sum([100, 20])\n    return x + 3\n")
NO_ANSWER_TYPE = "m: int) -> int:\n    return m[0] - 7\n\ndef gK():\n    return (2, 5)\n"  # a tuple
TRIVIAL = "n: int) -> bool:\n    return n < 100\n\ndef gK():\n    return 5\n"
RAISES = "n: int) -> int:\n    return 10 // (n - n)\n\ndef gK():\n    return 4\n"
PROGRAMS = [GOOD, LOOPS, COPIES, COMPUTED, NO_ANSWER_TYPE, TRIVIAL, RAISES]


def scripted_sample(loaded, prompts, n, config, seed):
    out = []
    for prompt in prompts:
        if prompt.rstrip().endswith("("):  # a propose prompt, `def fK(`
            scripted_sample.prompts.append(prompt)
            scripted_sample.configs.append(config)
            k = prompt.rstrip()[:-1].rsplit("def f", 1)[1]
            out.append([PROGRAMS[i % len(PROGRAMS)].replace("gK", f"g{k}") for i in range(n)])
        else:
            out.append(["    return 0\n"] * n)  # the solver solves none of them
    return out


@pytest.fixture
def program_run(tmp_path, monkeypatch, tiny_model):
    scripted_sample.configs, scripted_sample.prompts = [], []
    monkeypatch.setattr(training.sampling, "sample", scripted_sample)
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    config = load_config(path / "config.toml")
    config = dataclasses.replace(
        config, propose=dataclasses.replace(config.propose, format="program", prompts=1,
                                            per_prompt=len(PROGRAMS)),
        filter=dataclasses.replace(config.filter, timeout=0.5))
    (path / "config.toml").write_text(config_toml(config))
    return path


def test_a_program_proposal_becomes_a_puzzle_its_own_input_solves(program_run):
    result = run(program_run, rounds=1)
    r1 = result["rounds"][1]
    assert r1["complete"]
    # The prompt shows seed programs with inputs and outputs; sampling stops after `g`.
    [prompt] = scripted_sample.prompts
    assert "def g1():\n    return " in prompt and "assert f1(g1()) == " in prompt
    assert all(c.functions == 2 for c in scripted_sample.configs)
    with Store(program_run / "store.sqlite") as store:
        status = {p.completion.split("\n\ndef g")[0]: (p.status, p.reason)
                  for p in store.proposals(1)}
        of = lambda text: status[text.split("\n\ndef g")[0]]  # noqa: E731
        assert of(GOOD) == ("novel", "")
        assert of(LOOPS)[0] == "broken" and "timeout" in of(LOOPS)[1]
        assert of(COPIES) == ("trivial", "the program's output is its input")
        assert of(COMPUTED) == ("novel", "")  # its input computed in the sandbox: 123
        assert of(NO_ANSWER_TYPE) == ("invalid", "no_input")
        assert of(TRIVIAL) == ("trivial", "a trivial answer satisfies it")
        assert of(RAISES)[0] == "broken" and "ZeroDivisionError" in of(RAISES)[1]
        new, computed = store.puzzles(origin="generated", round=1)
        assert "target='yalpflesz'" in new.puzzle.source
        assert "target=246" in computed.puzzle.source
        # The model's input is the proposer's attempt; verify passes it; the solver failed,
        # so the solve rate is 1 / (k + 1) and the pair trains.
        own = {a.puzzle_hash: a for a in store.attempts(1, "propose")}
        assert set(own) == {new.hash, computed.hash}
        assert all(a.verdict == "pass" for a in own.values())
        assert "x = sum([100, 20])" in own[computed.hash].solution  # the model's own code
        [solution] = [s for s in store.solutions(new.id) if s.round == 1]
        assert solution.provenance["by"] == "proposer"
        synthetic = {e.puzzle_id for e in store.train_examples(1) if e.kind == "synthetic"}
        assert synthetic == {new.id, computed.id}
        # The next round's program prompts can show it: the solved program joins the seeds.
        examples = program_examples(store)
        select = store.stage_summary(1, "select")
        assert any(e.input == "'selfplay'" and e.output == "'yalpflesz'" for e in examples)
    assert r1["funnel"]["own_solved"] == 2 and r1["funnel"]["own_pairs"] == 2
    assert select["own_solved_by_solver"] == 0


def test_a_bad_filter_timeout_is_refused_by_name(tmp_path):
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    text = (path / "config.toml").read_text()
    assert "timeout = 1.0" in text
    (path / "config.toml").write_text(text.replace("[filter]\n", "[filter]\ntimeout = 0\n", 1)
                                      .replace("timeout = 1.0\n", "", 1))
    from puzzles.errors import SelfplayError
    with pytest.raises(SelfplayError, match=r"filter.timeout must be > 0, not 0"):
        load_config(path / "config.toml")


def test_refilter_bench_runs_the_same_completions_through_the_checks_again(program_run,
                                                                           tmp_path):
    # bench/refilter.py A/Bs a filter lever on stored completions: from the round-0 snapshot,
    # the source run's round-1 proposals are checked again and come out as they did.
    import importlib.util
    import shutil
    from pathlib import Path

    run(program_run, rounds=0)
    snapshot = tmp_path / "snapshot"
    shutil.copytree(program_run, snapshot)
    run(program_run, rounds=1)  # the source: proposed (scripted), filtered, trained
    script = Path(__file__).resolve().parents[2] / "bench" / "refilter.py"
    spec = importlib.util.spec_from_file_location("refilter_bench", script)
    refilter_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(refilter_bench)
    result = refilter_bench.refilter(snapshot, program_run, 1, tmp_path / "work", [])
    assert list(result["seconds"]) == ["filter", "dedup", "verify"]
    assert result["summaries"]["filter"]["checked"] == len(PROGRAMS)
    assert result["summaries"]["dedup"]["novel"] == 2 and result["own_solved"] == 2
    assert result["statuses"] == {"novel": 2, "broken": 2, "trivial": 2, "invalid:no_input": 1}
    with Store(program_run / "store.sqlite") as store:  # the source is only read
        assert store.stage_summary(1, "train") is not None
    with Store(snapshot / "store.sqlite") as store:  # and so is the snapshot
        assert store.proposals(1) == [] and store.stage_summary(1, "filter") is None


def test_a_pooled_round_trains_on_earlier_rounds_synthetic_pairs(program_run):
    # `select.pool`: round 2 proposes the same programs again (nothing novel, so nothing of its
    # own to train), yet trains on round 1's verified pairs, each once, beside the human floor.
    config = load_config(program_run / "config.toml")
    config = dataclasses.replace(config, select=dataclasses.replace(config.select, pool=True),
                                 continue_adapter=False)
    (program_run / "config.toml").write_text(config_toml(config))
    run(program_run, rounds=2)
    with Store(program_run / "store.sqlite") as store:
        assert store.stage_summary(2, "dedup")["novel"] == 0
        one = [(e.puzzle_id, e.solution_id) for e in store.train_examples(1)
               if e.kind == "synthetic"]
        two = [(e.puzzle_id, e.solution_id) for e in store.train_examples(2)
               if e.kind == "synthetic"]
        assert len(one) == 2 and sorted(two) == sorted(one)
        assert store.stage_summary(2, "select")["synthetic"] == 2
        assert any(e.kind == "human" for e in store.train_examples(2))
        # Retrained from the base model, not continued from round 1's adapter.
        assert store.stage_summary(2, "train")["init_adapter"] == ""
    assert "2 synthetic pairs pooled from earlier rounds" in (program_run / "log.txt").read_text()
