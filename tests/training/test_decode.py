"""The shared-prefix decode forward against the model's own forward (tiny model)."""

from __future__ import annotations

import copy

import pytest
import torch

from training.decode import decoder_for
from training.sampling import SamplingConfig, _decoder, sample_completions

PROMPT_A = "def f(x: int, a=3):\n    return x * a == 12\n\ndef g("
PROMPT_B = "def f(s: str, n=4):\n    return len(s) == n\n\ndef g(n=4):"


def reference_logits(model, prompt_ids: list[int], tokens: torch.Tensor) -> torch.Tensor:
    """[rows, steps, vocab]: the model's own logits after each of each row's tokens."""
    ids = torch.cat([torch.tensor([prompt_ids] * tokens.shape[0]), tokens], dim=1)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits.float()
    return logits[:, len(prompt_ids) - 1:]


def decoded_logits(decoder, prompts: list[list[int]], row_prompt: list[int],
                   tokens: torch.Tensor, slots: list[int], capacity: int) -> torch.Tensor:
    """The same through prefill + decode steps, rows spread over slots and prompts."""
    with torch.inference_mode():
        prefixes = [decoder.prefill(ids) for ids in prompts]
        suffix = decoder.suffix(capacity, tokens.shape[1])
        groups = [(prefixes[p], torch.tensor([i for i, q in enumerate(row_prompt) if q == p]))
                  for p in sorted(set(row_prompt))]
        if len(groups) == 1:
            groups = [(groups[0][0], None)]
        out = [torch.stack([prefixes[p].logits for p in row_prompt])]
        for t in range(tokens.shape[1]):
            out.append(decoder.step(tokens[:, t], torch.tensor(slots),
                                    torch.full((len(slots),), t), groups, suffix))
    return torch.stack(out, dim=1)


def test_fast_path_logits_match_the_model_forward(tiny_model):
    tok = tiny_model.tokenizer
    a, b = tok(PROMPT_A)["input_ids"], tok(PROMPT_B)["input_ids"]
    decoder = decoder_for(tiny_model.model, torch.float32)
    assert decoder is not None
    tokens = torch.randint(0, len(tok), (4, 6), generator=torch.Generator().manual_seed(0))
    # Rows of two prompts, interleaved, in slots out of order and with an idle slot.
    got = decoded_logits(decoder, [a, b], [0, 1, 0, 1], tokens, [3, 0, 4, 1], capacity=5)
    want_a = reference_logits(tiny_model.model, a, tokens[[0, 2]])
    want_b = reference_logits(tiny_model.model, b, tokens[[1, 3]])
    torch.testing.assert_close(got[[0, 2]], want_a, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got[[1, 3]], want_b, atol=1e-4, rtol=1e-4)


def test_bf16_weights_stay_close_to_fp32(tiny_model):
    tok = tiny_model.tokenizer
    a = tok(PROMPT_A)["input_ids"]
    tokens = torch.randint(0, len(tok), (3, 5), generator=torch.Generator().manual_seed(1))
    got = decoded_logits(decoder_for(tiny_model.model, torch.bfloat16), [a], [0, 0, 0], tokens,
                         [0, 1, 2], capacity=3)
    want = reference_logits(tiny_model.model, a, tokens)
    assert got.dtype == torch.float32
    # bf16 keeps ~3 significant digits; the distributions must still agree closely.
    p, q = torch.softmax(got, -1), torch.softmax(want, -1)
    assert (p - q).abs().sum(-1).max() < 0.1


def test_an_unmerged_lora_adapter_is_folded_in(tiny_model):
    from peft import get_peft_model

    from training.lora import lora_config_for, quiet_peft
    with quiet_peft():  # peft reads a deprecated transformers flag
        model = get_peft_model(copy.deepcopy(tiny_model.model),
                               lora_config_for(tiny_model.model))
    with torch.no_grad():  # a fresh LoRA is a no-op (B = 0): give it a real delta
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    model.eval()
    tok = tiny_model.tokenizer
    a = tok(PROMPT_A)["input_ids"]
    tokens = torch.randint(0, len(tok), (2, 4), generator=torch.Generator().manual_seed(2))
    got = decoded_logits(decoder_for(model, torch.float32), [a], [0, 0], tokens, [0, 1], 2)
    want = reference_logits(model, a, tokens)
    base = reference_logits(tiny_model.model, a, tokens)
    assert (want - base).abs().max() > 1e-2  # the adapter does change the logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_other_architectures_fall_back_to_the_generic_path(tiny_model):
    from transformers import GPT2Config, GPT2LMHeadModel
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    assert decoder_for(gpt2, torch.float32) is None
    assert decoder_for(tiny_model.model, torch.float16) is None


def test_fast_and_reference_paths_sample_the_same(tiny_model):
    # Same per-row generators, same draw: in fp32 the two paths give the same completions
    # (up to rounding, which does not flip a token on these prompts), here with more rows
    # than slots so finished rows hand their slot to queued ones.
    config = SamplingConfig(max_new_tokens=40, batch_size=5)
    fast = sample_completions(tiny_model, [PROMPT_A, PROMPT_B], 6, config, seed=11, fast=True)
    ref = sample_completions(tiny_model, [PROMPT_A, PROMPT_B], 6, config, seed=11)
    assert fast == ref
    greedy = SamplingConfig(temperature=0, max_new_tokens=40, batch_size=4)
    assert (sample_completions(tiny_model, [PROMPT_B, PROMPT_A], 2, greedy, seed=0, fast=True)
            == sample_completions(tiny_model, [PROMPT_B, PROMPT_A], 2, greedy, seed=0))


def test_the_decoder_is_rebuilt_when_the_weights_change(tiny_model):
    loaded = copy.copy(tiny_model)
    loaded.model = copy.deepcopy(tiny_model.model)
    first = _decoder(loaded)
    assert _decoder(loaded) is first
    with torch.no_grad():
        next(loaded.model.parameters()).add_(1.0)
    assert _decoder(loaded) is not first


@pytest.mark.parametrize("n,batch", [(1, 8), (7, 3)])
def test_every_row_gets_a_completion(tiny_model, n, batch):
    config = SamplingConfig(max_new_tokens=24, batch_size=batch)
    rows = sample_completions(tiny_model, [PROMPT_A, PROMPT_B, PROMPT_A], n, config, seed=5,
                              fast=True)
    assert [len(r) for r in rows] == [n, n, n]
    assert rows[0] == rows[2]  # same prompt text, same sample seeds, wherever they ran
    assert all(1 <= c.tokens <= 24 for r in rows for c in r)


def test_sampling_dtype_follows_the_cpu(monkeypatch):
    from training.models import sampling_dtype
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert sampling_dtype("cpu") == "float32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert sampling_dtype("cpu") == "bfloat16"


def test_sampling_dtype_sets_the_matmul_dtype_without_touching_the_weights(tiny_model,
                                                                           monkeypatch):
    loaded = copy.copy(tiny_model)
    loaded.model = copy.deepcopy(tiny_model.model)
    assert _decoder(loaded, "bfloat16").dtype == torch.bfloat16
    assert _decoder(loaded, "model").dtype == loaded.dtype == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert _decoder(loaded, "auto").dtype == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert _decoder(loaded, "auto").dtype == torch.bfloat16
    assert next(loaded.model.parameters()).dtype == torch.float32
    rows = sample_completions(loaded, [PROMPT_A], 3,
                              SamplingConfig(max_new_tokens=16, dtype="bfloat16"), seed=2)
    assert len(rows[0]) == 3


def test_an_unknown_sampling_dtype_is_refused():
    from puzzles.errors import SelfplayError
    with pytest.raises(SelfplayError, match="float8"):
        SamplingConfig(dtype="float8")
