import copy
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from puzzles.errors import SelfplayError
from training.data import build_blocks, collate
from training.lora import LoraSettings
from training.trainer import LossModel, TrainConfig, pair_loss, train_adapter

PAIRS = [
    ("def f(x: int, a=3):\n    return x + a == 10\n", "def g(a=3):\n    return 10 - a\n"),
    ("def f(s: str, n=4):\n    return len(s) == n\n", "def g(n=4):\n    return 'a' * n\n"),
    ("def f(li: list[int]):\n    return sum(li) == 7 and len(li) == 2\n",
     "def g():\n    return [3, 4]\n"),
    ("def f(x: bool):\n    return x\n", "def g():\n    return True\n"),
    ("def f(x: int, n=12):\n    return x * x == n * n and x > 0\n",
     "def g(n=12):\n    return n\n"),
    ("def f(s: str):\n    return s[::-1] == 'olleh'\n", "def g():\n    return 'hello'\n"),
    ("def f(li: list[int], n=5):\n    return li == list(range(n))\n",
     "def g(n=5):\n    return list(range(n))\n"),
    ("def f(x: float):\n    return abs(x * 2 - 3) < 1e-9\n", "def g():\n    return 1.5\n"),
]
# float32 whatever the CPU: "auto" would be bf16 on one with bf16 units, and these tests pin
# the fp32 path to exact equalities; bf16 has its own tests below.
CONFIG = TrainConfig(steps=6, micro_batch=2, grad_accum=2, block_size=128, learning_rate=5e-3,
                     warmup_ratio=0.2, checkpoint_every=2, mixed_precision="no")
BF16 = replace(CONFIG, mixed_precision="bf16")
LORA = LoraSettings(rank=4, alpha=8)


@pytest.fixture(scope="module")
def base(tiny_model):
    """A private copy of the shared tiny model: training borrows its base and hands it back,
    but the shared one is not ours to lend."""
    return replace(tiny_model, model=copy.deepcopy(tiny_model.model))


def _weights(out_dir: Path) -> dict:
    return load_file(str(out_dir / "adapter_model.safetensors"))


def _assert_same_adapter(a: Path, b: Path, atol: float = 1e-6) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=1e-5)


@pytest.fixture(scope="module")
def finished(base, tmp_path_factory):
    """One uninterrupted run that several tests compare against."""
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, train_adapter(base, PAIRS, out, CONFIG, LORA)


class Crash(Exception):
    pass


def _crash_at(step: int):
    def hook(info):
        if info.step == step:
            raise Crash

    return hook


def test_training_lowers_the_loss_on_its_pairs(base, finished):
    out, summary = finished
    before = pair_loss(base.model, base.tokenizer, PAIRS)
    trained = PeftModel.from_pretrained(copy.deepcopy(base.model), str(out))
    after = pair_loss(trained, base.tokenizer, PAIRS)
    assert after < before - 0.05
    assert summary.steps == 6 and summary.examples == len(PAIRS) and summary.dropped == 0
    assert summary.tokens > summary.loss_tokens > 0
    assert 0 < summary.useful_token_share <= 1


def test_training_hands_the_base_back_unchanged(base, tmp_path):
    model = base.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    mode = model.training
    train_adapter(base, PAIRS, tmp_path, replace(CONFIG, steps=2), LORA)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert model.training == mode
    assert not hasattr(model, "peft_config")


def test_writes_the_standard_peft_layout_and_a_summary(finished):
    out, summary = finished
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert Path(summary.adapter) == out
    saved = json.loads((out / "summary.json").read_text())["summary"]
    assert saved["adapter_hash"] == summary.adapter_hash
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in log] == list(range(1, 7))
    assert log[0]["loss"] == summary.first_loss and log[-1]["loss"] == summary.last_loss
    assert not (out / "checkpoints").exists()


def test_resume_after_a_crash_matches_an_uninterrupted_run(base, finished, tmp_path):
    out, summary = finished
    with pytest.raises(Crash):
        train_adapter(base, PAIRS, tmp_path, CONFIG, LORA, on_step=_crash_at(5))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000004"]
    assert not (tmp_path / "adapter_model.safetensors").exists()
    seen = []
    resumed = train_adapter(base, PAIRS, tmp_path, CONFIG, LORA,
                            on_step=lambda info: seen.append(info.step))
    assert seen == [5, 6]
    _assert_same_adapter(out, tmp_path)
    assert resumed.steps == summary.steps and resumed.tokens == summary.tokens
    assert resumed.first_loss == summary.first_loss
    assert resumed.last_loss == pytest.approx(summary.last_loss, rel=1e-5)


def test_a_finished_run_is_returned_without_training(base, finished):
    out, summary = finished
    seen = []
    again = train_adapter(base, PAIRS, out, CONFIG, LORA, on_step=seen.append)
    assert again == summary and seen == []


def test_out_dir_of_a_different_run_is_an_error_unless_starting_over(base, finished,
                                                                     tmp_path):
    out, _ = finished
    with pytest.raises(SelfplayError, match="learning_rate"):
        train_adapter(base, PAIRS, out, replace(CONFIG, learning_rate=1e-3), LORA)
    with pytest.raises(Crash):
        train_adapter(base, PAIRS, tmp_path, CONFIG, LORA, on_step=_crash_at(3))
    with pytest.raises(SelfplayError, match="pairs"):
        train_adapter(base, PAIRS[:-1], tmp_path, CONFIG, LORA)
    fresh = train_adapter(base, PAIRS[:-1], tmp_path, replace(CONFIG, steps=2), LORA,
                          resume=False)
    assert fresh.steps == 2


def test_saved_adapter_gives_the_logits_seen_in_training(base, tmp_path):
    ids = base.tokenizer(PAIRS[0][0], return_tensors="pt")["input_ids"]
    seen = {}

    def capture(info):
        if info.step == info.total:
            info.model.eval()
            with torch.no_grad():
                seen["logits"] = info.model(input_ids=ids).logits
            info.model.train()

    summary = train_adapter(base, PAIRS, tmp_path, replace(CONFIG, steps=3), LORA,
                            on_step=capture)
    plain = PeftModel.from_pretrained(copy.deepcopy(base.model), summary.adapter).eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, seen["logits"])


def test_sliced_loss_equals_the_full_loss_and_its_gradients(base):
    from peft import get_peft_model

    from training.lora import lora_config_for

    model = get_peft_model(copy.deepcopy(base.model),
                           lora_config_for(base.model, replace(LORA, dropout=0.0)))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    batch = collate(build_blocks(base.tokenizer, PAIRS, block_size=128).blocks)
    results = []
    for chunk in (0, 7):
        model.zero_grad()
        loss = LossModel(model, chunk)(**batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((loss.detach(), grads))
    (full, full_grads), (sliced, sliced_grads) = results
    torch.testing.assert_close(sliced, full, rtol=1e-5, atol=1e-4)
    for n in full_grads:
        torch.testing.assert_close(sliced_grads[n], full_grads[n], rtol=1e-4, atol=1e-6)


def test_accumulating_micro_batches_equals_one_big_batch(base, tmp_path):
    lora = replace(LORA, dropout=0.0)
    big = replace(CONFIG, steps=3, micro_batch=4, grad_accum=1)
    small = replace(CONFIG, steps=3, micro_batch=1, grad_accum=4)
    train_adapter(base, PAIRS, tmp_path / "big", big, lora)
    train_adapter(base, PAIRS, tmp_path / "small", small, lora)
    # Equal up to float rounding of the sums (Adam amplifies it for near-zero gradients).
    _assert_same_adapter(tmp_path / "big", tmp_path / "small", atol=1e-4)


def test_gradient_checkpointing_changes_memory_not_results(base, tmp_path):
    lora = replace(LORA, dropout=0.0)
    config = replace(CONFIG, steps=2)
    train_adapter(base, PAIRS, tmp_path / "plain", config, lora)
    train_adapter(base, PAIRS, tmp_path / "gc", replace(config, gradient_checkpointing=True),
                  lora)
    _assert_same_adapter(tmp_path / "plain", tmp_path / "gc")
    assert not base.model.is_gradient_checkpointing


def test_a_round_can_continue_the_previous_adapter(base, finished, tmp_path):
    out, first = finished
    # The continued adapter keeps its own shape (rank 4), whatever the settings say.
    second = train_adapter(base, PAIRS, tmp_path, replace(CONFIG, steps=2),
                           LoraSettings(rank=8), init_adapter=out)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["r"] == 4
    assert second.first_loss < first.first_loss


def test_nothing_to_train_on_is_an_error(base, tmp_path):
    with pytest.raises(SelfplayError, match="no pairs"):
        train_adapter(base, [], tmp_path, CONFIG, LORA)
    with pytest.raises(SelfplayError, match="no pair fits"):
        train_adapter(base, PAIRS, tmp_path, replace(CONFIG, block_size=16), LORA)


def test_bad_config_is_an_error():
    with pytest.raises(SelfplayError, match="loss_on"):
        TrainConfig(loss_on="puzzle")
    with pytest.raises(SelfplayError, match="micro_batch"):
        TrainConfig(micro_batch=0)


# bf16 on the CPU -------------------------------------------------------------------------------


def _cpu_has_bf16() -> bool:
    from training.models import cpu_has_bf16
    return cpu_has_bf16()


@pytest.mark.parametrize("has_units", [False, True])
def test_auto_precision_is_fp32_on_a_cpu_and_bf16_is_asked_for_by_name(base, tmp_path,
                                                                       monkeypatch, has_units):
    # bf16 on the CPU does not yet learn as fp32 does (its loss curve sits 2-4.6% above), so
    # "auto" keeps a CPU run in float32 whatever its units; "bf16" needs the units.
    from training import models
    from training.trainer import resolve_mixed_precision

    monkeypatch.setattr(models, "cpu_has_bf16", lambda: has_units)
    assert resolve_mixed_precision("auto", "cpu") == "no"
    assert resolve_mixed_precision("no", "cpu") == "no"
    if not has_units:
        with pytest.raises(SelfplayError, match="no bf16 matmul units"):
            resolve_mixed_precision("bf16", "cpu")
        return
    assert resolve_mixed_precision("bf16", "cpu") == "bf16"
    for setting, want in (("auto", torch.float32), ("bf16", torch.bfloat16)):
        dtypes = []
        train_adapter(base, PAIRS, tmp_path / setting, replace(CONFIG, steps=1,
                                                               mixed_precision=setting), LORA,
                      on_step=lambda info: dtypes.append(
                          info.model.get_base_model().get_input_embeddings().weight.dtype))
        assert dtypes == [want]
        summary = json.loads((tmp_path / setting / "summary.json").read_text())
        assert summary["inputs"]["precision"] == ("no" if setting == "auto" else "bf16")


@pytest.mark.skipif(not _cpu_has_bf16(), reason="this CPU has no bf16 matmul units")
def test_bf16_trains_fp32_lora_weights_and_state_on_a_bf16_base(base, tmp_path):
    model = base.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = {}

    def look(info):
        peft_model = info.model
        seen["base"] = {p.dtype for n, p in peft_model.named_parameters() if "lora_" not in n}
        seen["lora"] = {p.dtype for p in peft_model.parameters() if p.requires_grad}

    with pytest.raises(Crash):
        train_adapter(base, PAIRS, tmp_path, BF16, LORA,
                      on_step=lambda info: (look(info), _crash_at(3)(info)))
    assert seen == {"base": {torch.bfloat16}, "lora": {torch.float32}}
    optimizer = torch.load(tmp_path / "checkpoints" / "step-000002" / "optimizer.pt",
                           weights_only=True)
    moments = [t for state in optimizer["state"].values() for k, t in state.items()
               if k in ("exp_avg", "exp_avg_sq")]
    assert moments and {t.dtype for t in moments} == {torch.float32}
    train_adapter(base, PAIRS, tmp_path, BF16, LORA)
    assert {t.dtype for t in _weights(tmp_path).values()} == {torch.float32}
    # The base is handed back in float32, bit for bit, and its tied weights still tied.
    after = model.state_dict()
    assert all(after[k].dtype == before[k].dtype and torch.equal(before[k], after[k])
               for k in before)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


@pytest.mark.skipif(not _cpu_has_bf16(), reason="this CPU has no bf16 matmul units")
def test_a_bf16_step_has_the_loss_of_the_fp32_step(base, tmp_path):
    one = replace(CONFIG, steps=2, checkpoint_every=0)
    fp32 = train_adapter(base, PAIRS, tmp_path / "fp32", one, LORA)
    bf16 = train_adapter(base, PAIRS, tmp_path / "bf16", replace(one, mixed_precision="bf16"),
                         LORA)
    assert bf16.first_loss != fp32.first_loss  # it did run in another precision
    assert bf16.first_loss == pytest.approx(fp32.first_loss, rel=1e-2)
    assert bf16.last_loss == pytest.approx(fp32.last_loss, rel=1e-2)


@pytest.mark.skipif(not _cpu_has_bf16(), reason="this CPU has no bf16 matmul units")
def test_resume_under_bf16_matches_an_uninterrupted_bf16_run(base, tmp_path):
    uninterrupted = train_adapter(base, PAIRS, tmp_path / "whole", BF16, LORA)
    with pytest.raises(Crash):
        train_adapter(base, PAIRS, tmp_path / "resumed", BF16, LORA, on_step=_crash_at(5))
    seen = []
    resumed = train_adapter(base, PAIRS, tmp_path / "resumed", BF16, LORA,
                            on_step=lambda info: seen.append(info.step))
    assert seen == [5, 6]
    _assert_same_adapter(tmp_path / "whole", tmp_path / "resumed")
    assert resumed.first_loss == uninterrupted.first_loss
    assert resumed.last_loss == pytest.approx(uninterrupted.last_loss, rel=1e-5)
    with pytest.raises(SelfplayError, match="precision"):
        train_adapter(base, PAIRS, tmp_path / "resumed", CONFIG, LORA)


def test_auto_resumes_in_the_precision_its_run_started_in(base, finished, tmp_path, monkeypatch):
    """A checkpoint from before bf16 training (no precision recorded, "auto" then float32 on
    every CPU) resumes in float32 on a CPU with bf16 units, and ends as the fp32 run."""
    from training import models

    out, _ = finished
    auto = replace(CONFIG, mixed_precision="auto")
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: False)
    with pytest.raises(Crash):
        train_adapter(base, PAIRS, tmp_path, auto, LORA, on_step=_crash_at(5))
    state_file = tmp_path / "checkpoints" / "step-000004" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["inputs"].pop("precision") == "no"
    state_file.write_text(json.dumps(state))  # as written before the precision was recorded
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: True)
    train_adapter(base, PAIRS, tmp_path, auto, LORA)
    _assert_same_adapter(out, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["inputs"]["precision"] == "no"


def test_a_bad_mixed_precision_is_refused_by_name():
    from training.trainer import resolve_mixed_precision

    with pytest.raises(SelfplayError, match="mixed_precision.*'bf17'"):
        TrainConfig(mixed_precision="bf17")
    with pytest.raises(SelfplayError, match="mixed_precision.*'float16'"):
        resolve_mixed_precision("float16", "cpu")
    with pytest.raises(SelfplayError, match="mixed_precision = 'fp16' needs a GPU"):
        resolve_mixed_precision("fp16", "cpu")


def _write_pairs(path: Path, pairs) -> Path:
    path.write_text("".join(json.dumps({"puzzle": p, "solution": s}) + "\n" for p, s in pairs))
    return path


def test_cli_trains_an_adapter_from_a_pairs_file(tiny_model, tmp_path, capsys):
    from selfplay.cli import main

    pairs = _write_pairs(tmp_path / "pairs.jsonl", PAIRS)
    out = tmp_path / "run"
    args = ["train", str(pairs), "--model", "tiny", "--out", str(out), "--steps", "2",
            "--block-size", "128"]
    assert main(args) == 0
    assert "adapter" in capsys.readouterr().out
    # --out is itself the adapter, as after TRL's save_model: plain peft loads it.
    from peft import PeftModel

    loaded = PeftModel.from_pretrained(copy.deepcopy(tiny_model.model), str(out))
    assert any("lora_" in name for name, _ in loaded.named_parameters())
    # Without --resume an existing run is not silently overwritten.
    assert main(args) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0


def test_cli_names_the_bad_line(tmp_path, capsys):
    from selfplay.cli import main

    pairs = _write_pairs(tmp_path / "pairs.jsonl", PAIRS[:2])
    with open(pairs, "a") as fh:
        fh.write('{"puzzle": "def f(x: int):\\n    return x == 1\\n"}\n')
    assert main(["train", str(pairs), "--model", "tiny", "--out", str(tmp_path / "run")]) == 1
    assert "pairs.jsonl line 3: missing key 'solution'" in capsys.readouterr().err


KILL_SCRIPT = """
import os, signal, sys
from training.models import load_model
from training.trainer import train_adapter
from tests.training.test_trainer import PAIRS, CONFIG, LORA

def kill(info):
    if info.step == 5:
        os.kill(os.getpid(), signal.SIGKILL)

train_adapter(load_model("tiny"), PAIRS, sys.argv[1], CONFIG, LORA, on_step=kill)
"""


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(base, finished, tmp_path):
    out, _ = finished
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert (tmp_path / "checkpoints" / "step-000004").is_dir()
    train_adapter(base, PAIRS, tmp_path, CONFIG, LORA)
    # Another process may use another thread count, which changes float summation order.
    _assert_same_adapter(out, tmp_path, atol=1e-5)
