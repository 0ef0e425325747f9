import json

import pytest
import torch
from peft import PeftModel, get_peft_model

from puzzles.errors import SelfplayError
from training.lora import (
    ADAPTER_CONFIG, ADAPTER_FILES, ADAPTER_WEIGHTS, LoraSettings, adapter_hash, export_merged,
    load_adapter, lora_config_for, save_adapter_files,
)


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2,
                                      n_positions=64))


def _tiny_neox():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=64))


def _tiny_opt():
    from transformers import OPTConfig, OPTForCausalLM

    return OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, ffn_dim=64, word_embed_proj_dim=32))


def _adapted(model, settings=LoraSettings()):
    """Module names that got a LoRA layer."""
    peft_model = get_peft_model(model, lora_config_for(model, settings))
    return {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in peft_model.named_parameters()
            if ".lora_A" in n}


def test_llama_style_defaults_adapt_attention_and_mlp(tiny_model):
    import copy

    names = _adapted(copy.deepcopy(tiny_model.model))
    assert names >= {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_gpt2_defaults_adapt_its_conv1d_projections():
    model = _tiny_gpt2()
    config = lora_config_for(model)
    assert config.fan_in_fan_out  # GPT-2 stores its weights transposed
    assert _adapted(model) == {"c_attn", "c_proj", "c_fc"}


def test_gpt_neox_defaults():
    assert _adapted(_tiny_neox()) == {"query_key_value", "dense", "dense_h_to_4h",
                                      "dense_4h_to_h"}


def test_unknown_architecture_adapts_all_linear_layers_but_the_head():
    model = _tiny_opt()
    names = _adapted(model)
    assert {"q_proj", "v_proj", "fc1", "fc2"} <= names
    assert "lm_head" not in names


def test_explicit_targets_win_and_missing_ones_are_named(tiny_model):
    import copy

    model = copy.deepcopy(tiny_model.model)
    assert _adapted(model, LoraSettings(target_modules=("q_proj",))) == {"q_proj"}
    with pytest.raises(SelfplayError, match="not found.*qkv"):
        lora_config_for(tiny_model.model, LoraSettings(target_modules=("qkv",)))


@pytest.mark.parametrize("kwargs", [{"rank": 0}, {"dropout": 1.0},
                                    {"target_modules": "q_proj"}])
def test_bad_settings_are_errors(kwargs):
    with pytest.raises(SelfplayError):
        LoraSettings(**kwargs)


@pytest.fixture
def trained_like(tiny_model):
    """An adapter with random (non-zero) weights on a copy of the tiny base."""
    import copy

    torch.manual_seed(1)
    peft_model = get_peft_model(copy.deepcopy(tiny_model.model),
                                lora_config_for(tiny_model.model, LoraSettings(rank=4)))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return peft_model.eval()


def _logits(model, tokenizer):
    ids = tokenizer("def f(x: int):\n    return x > 3\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_saved_adapter_is_standard_peft_and_loads_with_plain_peft(tiny_model, trained_like,
                                                                  tmp_path):
    path = save_adapter_files(trained_like, tmp_path / "adapter")
    assert (path / ADAPTER_CONFIG).is_file() and (path / ADAPTER_WEIGHTS).is_file()
    assert json.loads((path / ADAPTER_CONFIG).read_text())["r"] == 4
    import copy

    plain = PeftModel.from_pretrained(copy.deepcopy(tiny_model.model), str(path)).eval()
    expected = _logits(trained_like, tiny_model.tokenizer)
    torch.testing.assert_close(_logits(plain, tiny_model.tokenizer), expected)
    assert not torch.allclose(expected, _logits(tiny_model.model, tiny_model.tokenizer))


def test_save_replaces_an_older_adapter_and_the_hash_follows_the_weights(trained_like, tmp_path):
    path = save_adapter_files(trained_like, tmp_path / "adapter")
    first = adapter_hash(path)
    assert adapter_hash(save_adapter_files(trained_like, path)) == first
    with torch.no_grad():
        next(p for n, p in trained_like.named_parameters() if "lora_B" in n).add_(1.0)
    assert adapter_hash(save_adapter_files(trained_like, path)) != first
    assert sorted(p.name for p in path.iterdir()) == sorted(ADAPTER_FILES)  # no leftovers


def test_load_adapter_of_a_non_adapter_dir_is_an_error(tiny_model, tmp_path):
    with pytest.raises(SelfplayError, match="not a LoRA adapter"):
        load_adapter(tiny_model.model, tmp_path)


def test_merged_export_equals_base_plus_adapter_and_leaves_the_base_alone(
        tiny_model, trained_like, tmp_path):
    from transformers import AutoModelForCausalLM

    before = {k: v.clone() for k, v in tiny_model.model.state_dict().items()}
    adapter = save_adapter_files(trained_like, tmp_path / "adapter")
    out = export_merged(tiny_model, adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert merged.dtype == torch.float32
    torch.testing.assert_close(_logits(merged, tiny_model.tokenizer),
                               _logits(trained_like, tiny_model.tokenizer), atol=1e-4, rtol=1e-4)
    after = tiny_model.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (out / "tokenizer.json").is_file() or (out / "tokenizer_config.json").is_file()


def test_selfplay_merge_writes_the_merged_model(tiny_model, trained_like, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from selfplay.cli import main

    adapter = save_adapter_files(trained_like, tmp_path / "adapter")
    assert main(["merge", str(adapter), str(tmp_path / "merged"), "--model", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(_logits(merged, tiny_model.tokenizer),
                               _logits(trained_like, tiny_model.tokenizer), atol=1e-4, rtol=1e-4)
    assert main(["merge", str(tmp_path), str(tmp_path / "again"), "--model", "tiny"]) == 1
    assert "not a LoRA adapter" in capsys.readouterr().err
