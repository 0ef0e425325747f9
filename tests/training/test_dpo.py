"""DPO on preference pairs: the loss, the reference pass, the trainer and the CLI (tiny model)."""

import copy
import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from peft import get_peft_model

from puzzles.errors import SelfplayError
from training.lora import LoraSettings, lora_config_for, quiet_peft
from training.preference import (
    PreferenceLossModel, collate_pairs, dpo_loss, read_preference_pairs, sequence_logps,
    tokenize_preferences,
)
from training.trainer import TrainConfig, train_adapter

TRIPLES = [
    ("def f(x: int, a=3):\n    return x + a == 10\n", "def g(a=3):\n    return 10 - a\n",
     "def g(a=3):\n    return a\n"),
    ("def f(s: str, n=4):\n    return len(s) == n\n", "def g(n=4):\n    return 'a' * n\n",
     "def g(n=4):\n    return 'a' * (n + 1)\n"),
    ("def f(li: list[int]):\n    return sum(li) == 7 and len(li) == 2\n",
     "def g():\n    return [3, 4]\n", "def g():\n    return [1 / 0]\n"),
    ("def f(x: bool):\n    return x\n", "def g():\n    return True\n",
     "def g():\n    return False\n"),
]
CONFIG = TrainConfig(steps=4, micro_batch=2, grad_accum=1, block_size=128, learning_rate=5e-3,
                     warmup_ratio=0.0, checkpoint_every=2, objective="dpo")
LORA = LoraSettings(rank=4, alpha=8, dropout=0.0)


@pytest.fixture(scope="module")
def base(tiny_model):
    return replace(tiny_model, model=copy.deepcopy(tiny_model.model))


@pytest.fixture
def peft_model(base):
    """The tiny model with a LoRA whose B is not zero, so policy and reference differ."""
    torch.manual_seed(0)
    with quiet_peft():  # peft reads a deprecated transformers flag
        model = get_peft_model(copy.deepcopy(base.model), lora_config_for(base.model, LORA))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model


def _batch(base, triples=TRIPLES):
    data = tokenize_preferences(base.tokenizer, triples, 128)
    return data, collate_pairs(data.pairs, data.pad_id)


def _direct_logp(model, ids, mask) -> torch.Tensor:
    """log p of a sequence's masked tokens, one token at a time from the full logits."""
    logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
    logp = F.log_softmax(logits, -1)
    return sum(logp[t - 1, ids[t]] for t in range(1, len(ids)) if mask[t])


def test_loss_matches_a_direct_computation(base, peft_model):
    data, batch = _batch(base)
    peft_model.eval()
    out = PreferenceLossModel(peft_model, beta=0.3)(**batch)
    expected, nll = 0.0, 0.0
    for pair in data.pairs:
        sides = {}
        for name, ex in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            policy = _direct_logp(peft_model, ex.input_ids, ex.loss_mask)
            with peft_model.disable_adapter():
                ref = _direct_logp(peft_model, ex.input_ids, ex.loss_mask)
            sides[name] = (policy, ref)
        margin = ((sides["chosen"][0] - sides["chosen"][1])
                  - (sides["rejected"][0] - sides["rejected"][1]))
        expected += -torch.log(torch.sigmoid(0.3 * margin))
        nll += -sides["chosen"][0]
    torch.testing.assert_close(out[0], expected.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[1], nll.detach(), rtol=1e-4, atol=1e-4)


def test_dpo_loss_on_numbers():
    loss = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]),
                    torch.tensor([-2.0]), beta=0.5)
    # margin (1) - (-1) = 2, beta * margin = 1
    torch.testing.assert_close(loss, -F.logsigmoid(torch.tensor([1.0])))


def test_gradients_flow_only_into_lora_weights(base, peft_model):
    _, batch = _batch(base)
    peft_model.train()
    out = PreferenceLossModel(peft_model, beta=0.1)(**batch)
    (out[0] + out[1]).backward()
    with_grad = {n for n, p in peft_model.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in n for n in with_grad)
    assert any(p.grad.abs().sum() > 0 for n, p in peft_model.named_parameters()
               if p.grad is not None)


def test_reference_with_adapter_disabled_is_the_base_model(base, peft_model):
    _, batch = _batch(base)
    peft_model.eval()
    with torch.no_grad():
        with peft_model.disable_adapter():
            ref = sequence_logps(peft_model.get_base_model(), **batch)
        plain = sequence_logps(base.model.eval(), **batch)
        policy = sequence_logps(peft_model.get_base_model(), **batch)
    torch.testing.assert_close(ref, plain, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(policy, plain)  # the adapter did change something


def test_padding_changes_no_log_prob(base, peft_model):
    data, batch = _batch(base)
    peft_model.eval()
    with torch.no_grad():
        together = sequence_logps(peft_model, **batch)
        alone = sequence_logps(peft_model, **collate_pairs(data.pairs[:1], data.pad_id))
    torch.testing.assert_close(together[[0, len(data.pairs)]], alone, rtol=1e-5, atol=1e-5)


def test_training_raises_the_margin_and_resumes_exactly(base, tmp_path):
    def margins(out_dir=None):
        from peft import PeftModel

        model = copy.deepcopy(base.model).eval()
        if out_dir is not None:
            with quiet_peft():
                model = PeftModel.from_pretrained(model, str(out_dir)).eval()
        _, batch = _batch(base)
        with torch.no_grad():
            logp = sequence_logps(model, **batch)
        n = len(TRIPLES)
        return (logp[:n] - logp[n:]).mean().item()

    config = replace(CONFIG, steps=6, objective="sft+dpo", beta=0.5)
    done = train_adapter(base, [], tmp_path / "a", config, LORA, preferences=TRIPLES)
    assert done.steps == 6 and done.examples == len(TRIPLES)
    assert margins(tmp_path / "a") > margins()

    class Crash(Exception):
        pass

    def crash(info):
        if info.step == 3:
            raise Crash

    with pytest.raises(Crash):
        train_adapter(base, [], tmp_path / "b", config, LORA, preferences=TRIPLES,
                      on_step=crash)
    resumed = train_adapter(base, [], tmp_path / "b", config, LORA, preferences=TRIPLES)
    assert resumed.last_loss == pytest.approx(done.last_loss, rel=1e-5)
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    # The same out dir with another beta is another run.
    with pytest.raises(SelfplayError, match="beta"):
        train_adapter(base, [], tmp_path / "a", replace(config, beta=0.2), LORA,
                      preferences=TRIPLES)


def test_a_preference_objective_without_pairs_is_an_error(base, tmp_path):
    with pytest.raises(SelfplayError, match="preference pairs"):
        train_adapter(base, [TRIPLES[0][:2]], tmp_path, CONFIG, LORA)


def test_bad_objective_is_an_error():
    with pytest.raises(SelfplayError, match="objective must be one of sft, dpo, sft\\+dpo"):
        TrainConfig(objective="ppo")
    with pytest.raises(SelfplayError, match="beta"):
        TrainConfig(beta=0)


def _write(path, triples):
    path.write_text("".join(json.dumps({"puzzle": p, "chosen": c, "rejected": r}) + "\n"
                            for p, c, r in triples))
    return path


def test_cli_trains_dpo_from_a_pairs_file(tiny_model, tmp_path, capsys):
    from selfplay.cli import main

    pairs = _write(tmp_path / "pairs.jsonl", TRIPLES)
    out = tmp_path / "run"
    assert main(["train", str(pairs), "--model", "tiny", "--out", str(out), "--steps", "2",
                 "--block-size", "128", "--objective", "dpo", "--beta", "0.2"]) == 0
    assert "preference pairs (dpo)" in capsys.readouterr().out
    assert (out / "adapter_model.safetensors").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["config"]["objective"] == "dpo"
    assert summary["inputs"]["config"]["beta"] == 0.2


def test_cli_names_the_bad_preference_line(tmp_path, capsys):
    from selfplay.cli import main

    pairs = _write(tmp_path / "pairs.jsonl", TRIPLES[:2])
    with open(pairs, "a") as fh:
        fh.write(json.dumps({"puzzle": TRIPLES[0][0], "chosen": TRIPLES[0][1]}) + "\n")
    assert main(["train", str(pairs), "--model", "tiny", "--out", str(tmp_path / "run"),
                 "--objective", "dpo"]) == 1
    assert "pairs.jsonl line 3: missing key 'rejected'" in capsys.readouterr().err
    with pytest.raises(SelfplayError, match="line 1"):
        read_preference_pairs(_write(tmp_path / "bad.jsonl",
                                     [(TRIPLES[0][0], "def g(:\n", TRIPLES[0][2])]))


def test_loss_equals_trls_dpo_loss(base, peft_model):
    """Where TRL is installed: TRL's own DPO loss code (DPOTrainer._compute_loss, sigmoid, the
    reference by disabling the PEFT adapter) on the same model and batch gives our loss."""
    pytest.importorskip("trl")
    from trl import DPOTrainer

    _, batch = _batch(base)
    peft_model.eval()
    with torch.no_grad():
        ours = PreferenceLossModel(peft_model, beta=0.1)(**batch)[0] / len(TRIPLES)
        completion_mask = (batch["labels"] != -100).long()
        inputs = {"input_ids": batch["input_ids"], "completion_mask": completion_mask,
                  "attention_mask": _attention_mask(batch)}
        theirs = DPOTrainer._compute_loss(_TrlStandIn(peft_model, beta=0.1), peft_model,
                                          inputs, return_outputs=False)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    # Not the trivial log 2 of a reference equal to the policy: the adapter moved the margins.
    assert abs(theirs.item() - math.log(2)) > 1e-3


def _attention_mask(batch):
    """1 on every real token: the rows are right-padded, and each row's length is where its
    last loss token is (the EOS ends every side)."""
    labels = batch["labels"]
    positions = torch.arange(labels.shape[1])
    last = ((labels != -100) * positions).max(dim=1).values
    return (positions[None, :] <= last[:, None]).long()


class _TrlStandIn:
    """What DPOTrainer._compute_loss reads of its trainer, for one sigmoid-loss call."""

    def __init__(self, peft_model, beta):
        from collections import defaultdict
        from types import SimpleNamespace

        _fuse_head(peft_model)
        self.model = peft_model
        self.ref_model = None
        self.beta = beta
        self.loss_types, self.loss_weights = ["sigmoid"], [1.0]
        self.ld_alpha = None
        self.f_divergence_type = "reverse_kl"
        self.f_alpha_divergence_coef = 1.0
        self.label_smoothing = 0.0
        self.use_weighting = False
        self.aux_loss_enabled = False
        self.precompute_ref_logps = False
        self.args = SimpleNamespace(gradient_checkpointing_kwargs=None)
        self._metrics = defaultdict(lambda: defaultdict(list))
        self._total_train_tokens = 0
        self._tp_size = 1
        self.accelerator = SimpleNamespace(device=torch.device("cpu"), unwrap_model=lambda m: m,
                                           gather_for_metrics=lambda t: t, gather=lambda t: t)

    def __getattr__(self, name):
        raise AttributeError(f"the TRL stand-in lacks {name!r}: TRL changed what it reads")


def _fuse_head(peft_model):
    """Give the PeftModel instance the output TRL's fused LM head returns: per-token log-probs of
    the (unshifted) labels, 0 where a label is -100, and its metric fields. The forward itself
    is peft's own, so disabling the adapter (TRL's reference) works as in TRL."""
    from types import MethodType, SimpleNamespace

    plain = type(peft_model).forward

    def forward(self, labels=None, fused_lm_head=False, **kwargs):
        logits = plain(self, **kwargs).logits[:, :-1].float()
        targets = labels[:, 1:]
        logp = torch.log_softmax(logits, -1)
        token = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * (targets != -100)
        return SimpleNamespace(log_probs=token, entropy=-(logp.exp() * logp).sum(-1),
                               mean_logits=logits.mean(-1),
                               is_top1=logits.argmax(-1) == targets)

    peft_model.forward = MethodType(forward, peft_model)
