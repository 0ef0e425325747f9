"""Sampling with the tiny model: reproducible, cut at the end of the function, batch-proof."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from puzzles.errors import SelfplayError
from training.models import torch_threads
from training.prompts import cut_at_function_end
from training.sampling import SamplingConfig, StopTables, _draw, sample, sample_completions

PROMPT_F = "def f1(x: int, a=3):\n    return x * a == 12\n\ndef f2("
PROMPT_G = "def f(s: str, n=4):\n    return len(s) == n\n\ndef g(n=4):"
FAST = SamplingConfig(max_new_tokens=48, batch_size=8)


def test_fixed_seed_gives_identical_samples(tiny_model):
    first = sample(tiny_model, [PROMPT_F, PROMPT_G], n=3, config=FAST, seed=7)
    second = sample(tiny_model, [PROMPT_F, PROMPT_G], n=3, config=FAST, seed=7)
    assert first == second
    assert [len(row) for row in first] == [3, 3]


def test_different_seeds_give_different_samples(tiny_model):
    a = sample(tiny_model, [PROMPT_F], n=4, config=FAST, seed=1)
    b = sample(tiny_model, [PROMPT_F], n=4, config=FAST, seed=2)
    assert a != b


def test_a_sample_does_not_depend_on_its_batch(tiny_model):
    alone = sample(tiny_model, [PROMPT_G], n=2, config=FAST, seed=3)
    # Same prompt, now sharing batches with another prompt and more samples of its own.
    together = sample(tiny_model, [PROMPT_F, PROMPT_G], n=4,
                      config=SamplingConfig(max_new_tokens=48, batch_size=3), seed=3)
    assert together[1][:2] == alone[0]


def test_completions_stop_at_the_end_of_the_function(tiny_model):
    rows = sample_completions(tiny_model, [PROMPT_F, PROMPT_G], n=8,
                              config=SamplingConfig(max_new_tokens=96, batch_size=16), seed=0)
    completions = [c for row in rows for c in row]
    assert {c.finish for c in completions} <= {"stop", "eos", "length"}
    for c in completions:
        assert 1 <= c.tokens <= 96
        # Nothing after the function: cutting again changes nothing, and the newline rule holds.
        assert cut_at_function_end(c.text)[0] == c.text or c.finish == "length"
        assert c.text.endswith("\n") == (c.finish != "length")
    assert any(c.finish == "stop" for c in completions)  # the tiny model does end functions


def test_greedy_samples_of_one_prompt_agree(tiny_model):
    greedy = SamplingConfig(temperature=0, max_new_tokens=32)
    [row] = sample(tiny_model, [PROMPT_G], n=3, config=greedy, seed=0)
    assert row[0] == row[1] == row[2]
    # And greedy decoding matches transformers' own generate.
    tok = tiny_model.tokenizer
    ids = tok(PROMPT_G, return_tensors="pt")
    with torch_threads(tiny_model.threads):
        out = tiny_model.model.generate(**ids, max_new_tokens=32, do_sample=False,
                                        pad_token_id=tok.pad_token_id)
    reference = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert reference.startswith(row[0].rstrip()) or cut_at_function_end(reference)[0] == row[0]


def test_stop_tables_follow_the_line_rule(tiny_model):
    import torch
    tok = tiny_model.tokenizer
    tables = StopTables(tok, torch.device("cpu"))
    newline = tok("\n", add_special_tokens=False)["input_ids"]
    word = [next(i for i in range(len(tok)) if tok.decode([i]).isalpha())]
    assert len(newline) == 1
    stops, after = tables.step(torch.tensor([False, True]), torch.tensor(word * 2))
    assert stops.tolist() == [False, True] and after.tolist() == [False, False]
    stops, after = tables.step(torch.tensor([False]), torch.tensor(newline))
    assert stops.tolist() == [False] and after.tolist() == [True]


def test_bad_settings_are_user_errors(tiny_model):
    with pytest.raises(SelfplayError, match="top_p"):
        sample(tiny_model, [PROMPT_F], 1, SamplingConfig(top_p=0), seed=0)
    with pytest.raises(SelfplayError, match="backend"):
        sample(tiny_model, [PROMPT_F], 1, SamplingConfig(backend="magic"), seed=0)
    if importlib.util.find_spec("vllm") is None:  # with vllm it runs (test_vllm_backend.py)
        with pytest.raises(SelfplayError, match="vllm"):
            sample(tiny_model, [PROMPT_F], 1, SamplingConfig(backend="vllm"), seed=0)
    with pytest.raises(SelfplayError, match="context length"):
        sample(tiny_model, ["x = 1\n" * 2000], 1, FAST, seed=0)


def test_cli_prints_n_json_lines(tiny_model, tmp_path, capsys):
    import json

    from selfplay.cli import main
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(PROMPT_F + "\n")  # an editor's final newline is dropped
    argv = ["sample", "--model", "tiny", "--prompt-file", str(prompt), "--n", "3", "--seed", "4",
            "--max-new-tokens", "24"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and all(set(line) == {"completion"} for line in lines)
    config = SamplingConfig(max_new_tokens=24)
    assert [line["completion"] for line in lines] == sample(tiny_model, [PROMPT_F], 3, config, 4)[0]
    assert main(["sample", "--model", "tiny", "--prompt-file", str(tmp_path / "none")]) == 1


def _reference_draw(logits: torch.Tensor, u: float, temperature: float, top_p: float) -> int:
    """Inverse-CDF sampling over a full sort of the softmax, the nucleus cut by definition."""
    probs = torch.softmax(logits.double() / temperature, -1)
    top, order = probs.sort(descending=True)
    keep = (top.cumsum(-1) - top) < top_p  # the smallest prefix whose mass reaches top_p
    top = top[keep]
    cdf = top.cumsum(-1)
    return int(order[int(torch.searchsorted(cdf, u * cdf[-1], right=True))])


@pytest.mark.parametrize("spread", [0.5, 3.0, 12.0])
def test_top_p_draws_match_a_full_sort(spread):
    # Peaked rows (nucleus inside the first 64 tokens), flatter ones (past 512: the full sort).
    gen = torch.Generator().manual_seed(0)
    vocab, rows = 3000, 8
    logits = torch.randn(rows, vocab, generator=gen) * spread
    config = SamplingConfig(temperature=0.8, top_p=0.95)
    for u in torch.rand(40, generator=gen, dtype=torch.float64).tolist():
        uniform = torch.full((rows,), u, dtype=torch.float64)
        got = _draw(logits.clone(), uniform, config).tolist()
        assert got == [_reference_draw(row, u, 0.8, 0.95) for row in logits]


def test_a_pair_completion_runs_on_to_its_second_function_and_no_further(tiny_model):
    # Each sample draws from its own generator, so the tokens of a pair sample (functions=2)
    # are the one-function sample's up to where that one stopped: the pair is the same text
    # carried on past the first function's end, then cut at the second's.
    one = SamplingConfig(max_new_tokens=96, batch_size=8)
    two = SamplingConfig(max_new_tokens=96, batch_size=8, functions=2)
    for fast in (True, False):
        singles = sample_completions(tiny_model, [PROMPT_F], 12, one, seed=5, fast=fast)[0]
        pairs = sample_completions(tiny_model, [PROMPT_F], 12, two, seed=5, fast=fast)[0]
        longer = 0
        for c1, c2 in zip(singles, pairs):
            if c1.finish != "stop":
                continue
            assert cut_at_function_end(c2.text, 1)[0] == c1.text
            assert c2.tokens >= c1.tokens
            if c2.finish == "stop":
                assert cut_at_function_end(c2.text, 2) == (c2.text, False) or \
                    cut_at_function_end(c2.text, 2)[0] == c2.text
                assert c2.text.count("\n") > c1.text.count("\n")
                longer += 1
        assert longer, "no pair sample ran past its first function"


def test_a_pair_needs_at_least_one_function():
    with pytest.raises(SelfplayError, match="functions"):
        SamplingConfig(functions=0)
