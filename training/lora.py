"""LoRA adapters with peft: settings, per-architecture defaults, save, load, merged export.

Adapters are saved in the standard peft layout (`adapter_config.json` +
`adapter_model.safetensors`), so plain `peft.PeftModel.from_pretrained(base, path)` loads them
outside this project.

Targets default to every linear layer of attention and MLP for the architectures we know: the
QLoRA paper (Dettmers et al. 2023) found adapting all of them, not just q and v, is what lets
LoRA match full fine-tuning. Unknown architectures fall back to peft's "all-linear".

The merge trap: folding a LoRA into bf16 weights and unfolding it again does not give the
original weights back (each round-trip rounds). Training here never merges; `export_merged` folds
the adapter into a float32 copy of the base that training never touched.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from puzzles.checks import check_ranges
from puzzles.errors import SelfplayError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)

_LLAMA_STYLE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_NEOX_STYLE = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")

DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    **{t: _LLAMA_STYLE for t in (
        "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo", "olmo2",
        "granite", "smollm3", "cohere", "stablelm", "internlm2")},
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_bigcode": ("c_attn", "c_proj", "c_fc"),
    "starcoder2": ("q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"),
    "gpt_neox": _NEOX_STYLE,
    "falcon": _NEOX_STYLE,
    "bloom": _NEOX_STYLE,
    "gptj": ("q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"),
    "phi": ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
}
"""model_type -> module name suffixes to adapt; anything else gets peft's "all-linear"."""

# GPT-2 stores its projections as Conv1D with transposed weights; peft must be told.
_FAN_IN_FAN_OUT = {"gpt2"}


@dataclass(frozen=True)
class LoraSettings:
    """How the adapter is shaped. Defaults suit models from 5M to a few B parameters."""

    rank: int = 16
    """Rank r of the update B @ A."""
    alpha: float = 32
    """Scale: the update is multiplied by alpha / rank."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training."""
    target_modules: tuple[str, ...] = ()
    """Module name suffixes to adapt; () means the default for the architecture (DEFAULT_TARGETS)."""

    def __post_init__(self):
        check_ranges(self, "lora", rank=">= 1", alpha="> 0", dropout="in [0, 1)")
        if isinstance(self.target_modules, str):
            raise SelfplayError("lora target_modules must be a list of module names, not a string")


def default_target_modules(model_type: str) -> tuple[str, ...] | str:
    return DEFAULT_TARGETS.get(model_type, "all-linear")


def lora_config_for(model, settings: LoraSettings = LoraSettings()):
    """The peft LoraConfig for `model` (a transformers PreTrainedModel) under `settings`."""
    from peft import LoraConfig

    model_type = getattr(model.config, "model_type", "")
    targets = list(settings.target_modules) or default_target_modules(model_type)
    if not isinstance(targets, str):
        names = [name for name, _ in model.named_modules()]
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            raise SelfplayError(f"lora target_modules not found in {model_type or 'the model'}: "
                                f"{', '.join(missing)}")
    return LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=targets, bias="none", task_type="CAUSAL_LM",
        fan_in_fan_out=model_type in _FAN_IN_FAN_OUT)


def run_adapter(run_dir: str | Path) -> Path:
    """The adapter a training run directory holds: the directory itself, or its adapter/
    subdirectory in runs trained before the adapter moved up (kept loadable on resume)."""
    run_dir = Path(run_dir)
    legacy = run_dir / "adapter"
    return legacy if (legacy / ADAPTER_CONFIG).is_file() else run_dir


def save_adapter_files(model, path: str | Path) -> Path:
    """Save a PeftModel's adapter files into the existing directory `path`, beside whatever else
    it holds (a training run's summary and checkpoints). Each file is replaced atomically; the
    caller's summary, written after, is what marks the pair complete."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".adapter.", dir=path))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        _fsync_tree(tmp)
        for name in ADAPTER_FILES:
            os.replace(tmp / name, path / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished directory `src` to `dst`, replacing what was there."""
    _fsync_tree(src)
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old.{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())


def check_adapter_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / ADAPTER_CONFIG).is_file():
        raise SelfplayError(f"{path}: not a LoRA adapter (no {ADAPTER_CONFIG})")
    if not (path / ADAPTER_WEIGHTS).is_file():
        raise SelfplayError(f"{path}: adapter has no {ADAPTER_WEIGHTS}")
    return path


def adapter_hash(path: str | Path) -> str:
    """Identity of a saved adapter: sha256 of its weights file (16 hex digits)."""
    digest = hashlib.sha256()
    with open(check_adapter_dir(path) / ADAPTER_WEIGHTS, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def load_adapter(model, path: str | Path, *, trainable: bool = False):
    """Put the adapter at `path` on `model` (a PreTrainedModel) and return the PeftModel.

    peft injects the adapter layers into `model` in place; `.unload()` on the result takes them
    out again and returns the untouched base.
    """
    from peft import PeftModel

    path = check_adapter_dir(path)
    with quiet_peft():
        return PeftModel.from_pretrained(model, str(path), is_trainable=trainable)


@contextlib.contextmanager
def quiet_peft():
    """Around peft calls: peft reads transformers' deprecated `is_gradient_checkpointing`
    itself, which warns on every adapter load; nothing of ours to change, and nothing a user can
    act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                category=FutureWarning)
        yield


def export_merged(loaded, adapter: str | Path, out_dir: str | Path, *, dtype: str = "float32",
                  ) -> Path:
    """Write a full model with the adapter folded in, loadable with plain transformers.

    `loaded` is a `training.models.LoadedModel` without an adapter (copied, never modified;
    `selfplay merge` loads one by name in float32 on the CPU). The merge runs in float32 on the
    CPU; `dtype` is only what the merged weights are stored as.
    """
    import torch

    model = copy.deepcopy(loaded.model)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise SelfplayError(f"export dtype {dtype!r} is not a torch dtype (float32, bfloat16...)")
    model = model.to(device="cpu", dtype=torch.float32)
    merged = load_adapter(model, adapter).merge_and_unload()
    merged = merged.to(torch_dtype)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
