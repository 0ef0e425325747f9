"""One LoRA training round: packed pairs, an accelerate loop, atomic checkpoints, exact resume.

The same loop runs on the CPU (one process, or several over gloo) and on one or many GPUs
(DDP):

    accelerate launch -m selfplay train pairs.jsonl --model smollm2-135m --out runs/r1

Every rank rebuilds the same packed blocks, and which blocks a step reads is a pure function of
(seed, step), so the "data position" of a checkpoint is just its step number. Resuming restores
the adapter, optimizer, scheduler and RNG states and continues; on the CPU the result equals an
uninterrupted run up to float rounding.

Precision (`mixed_precision`, "auto" resolved by `resolve_mixed_precision`): on a GPU bf16 is
accelerate's autocast. On a CPU bf16 means bf16 base weights and activations under fp32 LoRA
weights, gradients and AdamW state (the adapter's matmuls autocast to bf16): the frozen base is
most of the bytes every matmul reads, bf16 halves them and the activations, and the matmuls run
on the CPU's bf16 units (AMX, avx512_bf16); the adapter, the only thing that learns, keeps fp32
updates. The base is cast for the run and handed back in its own dtype. A run records the
precision it resolved to, and "auto" resumes in that one.

With a preference objective (`objective` dpo or sft+dpo) a step reads preference pairs instead
of blocks (training.preference): the same seeded order, checkpoints and resume.

Memory: the loss is computed from the final hidden states in slices (`loss_chunk_tokens`), only
at positions that take loss, and each slice's logits are recomputed in the backward pass instead
of kept. Over a 49k vocabulary the full float32 logits of a 16 x 256 batch alone are 800 MB, and
their softmax and gradient as much again; sliced they are a few tens of MB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from puzzles.errors import SelfplayError
from training.data import IGNORE_INDEX, Packing, build_blocks, collate
from training.lora import (
    ADAPTER_FILES, LoraSettings, adapter_hash, check_adapter_dir, lora_config_for, quiet_peft,
    run_adapter, save_adapter_files,
)
from training.preference import PreferenceData, PreferenceLossModel, collate_pairs, \
    tokenize_preferences
from training.settings import MIXED_PRECISION, TrainConfig

SUMMARY_FILE = "summary.json"
LOG_FILE = "train_log.jsonl"


@dataclass(frozen=True)
class TrainSummary:
    """What a round of training did; also stored as out_dir/summary.json."""

    steps: int
    tokens: int
    """Example tokens the model read (padding excluded)."""
    loss_tokens: int
    """Tokens that took loss."""
    useful_token_share: float
    """tokens / all block positions read: how little packing wasted on padding."""
    first_loss: float
    last_loss: float
    """Mean loss per loss token of the first and last step (train mode, dropout on)."""
    seconds: float
    """Wall time spent training, summed over resumed segments."""
    adapter: str
    """Directory of the saved adapter (peft layout)."""
    adapter_hash: str
    examples: int
    """Pairs that became training examples."""
    dropped: int
    """Pairs longer than a block, left out."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainSummary:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class StepInfo:
    """Handed to `on_step` after each optimizer step (and after its checkpoint, if any)."""

    step: int
    """Steps done so far (1-based)."""
    total: int
    loss: float
    learning_rate: float
    grad_norm: float
    model: Any
    """The PeftModel being trained (leave it in the mode you found it)."""


def _refuse_fsdp_on_cpu(accelerator, device) -> None:
    """accelerate (1.16) does not shard on the CPU: an FSDP launch (`accelerate launch
    --use_fsdp`, or its config file) of a base on the CPU silently becomes plain data
    parallelism over gloo, each process holding the whole model. Sharding asked for that would
    not happen is refused, rather than a run that may not fit in memory going ahead."""
    from accelerate.utils import DistributedType, parse_flag_from_env
    if device.type == "cpu" and parse_flag_from_env("ACCELERATE_USE_FSDP") and \
            accelerator.distributed_type != DistributedType.FSDP:
        raise SelfplayError(
            "FSDP was asked for (ACCELERATE_USE_FSDP=true: accelerate launch --use_fsdp), but "
            "accelerate does not shard a model on the CPU: it would train unsharded, each "
            "process holding the whole model; launch without --use_fsdp (data parallel over "
            "gloo) or on GPUs")


def train_adapter(base, pairs: Sequence[tuple[str, str]], out_dir: str | Path,
                  config: TrainConfig = TrainConfig(), lora: LoraSettings = LoraSettings(), *,
                  init_adapter: str | Path | None = None, resume: bool = True,
                  progress: bool = False, on_step: Callable[[StepInfo], None] | None = None,
                  preferences: Sequence[tuple[str, str, str]] = (),
                  ) -> TrainSummary:
    """Train a LoRA adapter on `base` (a LoadedModel) from (puzzle, solution) source pairs, or,
    when `config.objective` is "dpo" or "sft+dpo", from `preferences`: (puzzle, chosen solution,
    rejected solution) triples (training.preference); `pairs` is then not used.

    Writes the adapter into out_dir itself (adapter_config.json + adapter_model.safetensors, so
    `PeftModel.from_pretrained(base, out_dir)` loads it, as after TRL's `save_model`),
    out_dir/summary.json and out_dir/train_log.jsonl, and checkpoints under out_dir/checkpoints/
    while running. With
    `resume`, a checkpoint of the same inputs is continued and a finished out_dir is returned as
    is; without it, whatever out_dir held is discarded. `init_adapter` continues training a
    saved adapter (its own rank, alpha and targets apply) instead of a fresh one from `lora`.

    `base` is borrowed: the adapter layers are taken out again at the end, leaving the base as it
    was. Raises SelfplayError if no pair fits in a block or out_dir holds a different run.
    """
    out_dir = Path(out_dir)
    preferring = config.objective != "sft"
    if preferring:
        pairs = ()
        if not preferences:
            raise SelfplayError(f"objective {config.objective} needs preference pairs: none given")
    elif not pairs:
        raise SelfplayError("no pairs to train on")
    if init_adapter is not None:
        check_adapter_dir(init_adapter)
    inputs = _run_inputs(base, pairs, config, lora, init_adapter, preferences)
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    on_cpu = base.device.type == "cpu"
    precision = resolve_mixed_precision(config.mixed_precision, base.device)
    saved = _saved_inputs(out_dir) if resume and config.mixed_precision == "auto" else None
    if saved is not None:
        # "auto" is resolved once per run: a run started before this machine (or this code)
        # resolved it differently goes on in what it started in.
        precision = _saved_precision(saved)
    # On the CPU bf16 is the base weights' dtype (_borrowed), not accelerate's autocast.
    # cpu=True for a base on the CPU: accelerate then joins the processes of a launch
    # (torchrun, `accelerate launch --multi_gpu`) with gloo instead of training each alone.
    accelerator = Accelerator(mixed_precision="no" if on_cpu else precision, cpu=on_cpu)
    _refuse_fsdp_on_cpu(accelerator, base.device)
    # The world size sets the global batch, so a checkpoint resumes only on as many processes.
    inputs["processes"] = accelerator.num_processes
    inputs["precision"] = precision
    if resume:
        done = _finished_summary(out_dir, inputs)
        if done is not None:
            return done
    elif accelerator.is_main_process:
        for name in ("checkpoints", "adapter", SUMMARY_FILE, LOG_FILE, *ADAPTER_FILES):
            _remove(out_dir / name)
    accelerator.wait_for_everyone()
    checkpoint = _latest_checkpoint(out_dir) if resume else None
    if checkpoint is not None:
        _check_same_inputs(json.loads((checkpoint / "state.json").read_text())["inputs"], inputs,
                           f"{checkpoint}")

    block_size = min(config.block_size, base.context_length or config.block_size)
    if preferring:
        packing = tokenize_preferences(base.tokenizer, preferences, block_size)
        if not packing.pairs:
            raise SelfplayError(f"no preference pair fits in {block_size} tokens a side "
                                f"(all {packing.n_dropped} were longer)")
    else:
        packing = build_blocks(base.tokenizer, pairs, block_size=block_size,
                               loss_on=config.loss_on)
        if not packing.blocks:
            raise SelfplayError(f"no pair fits in a block of {block_size} tokens "
                                f"(all {packing.n_dropped} were longer)")
    set_seed(config.seed)  # before the adapter exists: its initial weights are random
    cpu_bf16 = on_cpu and precision == "bf16"
    with (_borrowed(base.model, config.gradient_checkpointing,
                    torch.bfloat16 if cpu_bf16 else None) as hf_model,
          _adapter_on(hf_model, lora, init_adapter, cpu_bf16) as peft_model):
        return _train(accelerator, peft_model, packing, out_dir, config, inputs, checkpoint,
                      progress, on_step, cpu_bf16)


# ---------------------------------------------------------------------------------------------
# The loop


def _train(accelerator, peft_model, packing: Packing | PreferenceData, out_dir: Path,
           config: TrainConfig, inputs: dict, checkpoint: Path | None, progress: bool, on_step,
           cpu_bf16: bool = False) -> TrainSummary:
    world = accelerator.num_processes
    data = _StepData(packing, config)
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    per_step = config.micro_batch * config.grad_accum * world
    total_steps = config.steps or max(1, math.ceil(config.epochs * len(data.items) / per_step))
    scheduler = _warmup_cosine(optimizer, total_steps, config.warmup_ratio)

    state = {"step": 0, "tokens": 0, "loss_tokens": 0, "positions": 0, "seconds": 0.0,
             "history": []}
    if checkpoint is not None:
        state = _load_checkpoint(checkpoint, peft_model, optimizer, scheduler,
                                 accelerator.process_index, accelerator.device)
    loss_model, optimizer = accelerator.prepare(data.loss_model(peft_model), optimizer)
    if checkpoint is not None:
        # Last, so that nothing above (adapter init, prepare) shifts the random stream.
        _set_rng_state(torch.load(checkpoint / f"rng_{accelerator.process_index}.pt",
                                  weights_only=False))

    order = _BlockOrder(len(data.items), config.seed)
    bar = _progress_bar(progress and accelerator.is_main_process, total_steps, state["step"])
    started = time.monotonic()
    seconds_before = state["seconds"]
    for step in range(state["step"], total_steps):
        batches = [
            [data.items[order[i]] for i in _micro_batch_indices(
                step, j, accelerator.process_index, config.micro_batch, config.grad_accum, world)]
            for j in range(config.grad_accum)]
        counts = torch.tensor(data.counts(batches), device=accelerator.device)
        counts = accelerator.reduce(counts, reduction="sum")
        n_loss = counts[1].item()
        step_loss = torch.zeros((), device=accelerator.device)
        for j, micro in enumerate(batches):
            tensors = {k: v.to(accelerator.device) for k, v in data.collate(micro).items()}
            sync = j == len(batches) - 1
            with contextlib.nullcontext() if sync else accelerator.no_sync(loss_model):
                with _cpu_autocast(cpu_bf16):
                    loss = data.loss(loss_model(**tensors), counts).float()
                # DDP averages gradients over ranks; scaling by world makes the result the
                # gradient of the mean loss over the whole global step.
                accelerator.backward(loss * world)
            step_loss += loss.detach().float()
        grad_norm = (accelerator.clip_grad_norm_(params, config.max_grad_norm)
                     if config.max_grad_norm > 0 else torch.zeros(()))
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        loss = accelerator.reduce(step_loss, reduction="sum").item()
        state["step"] = step + 1
        state["tokens"] += int(counts[0].item())
        state["loss_tokens"] += int(n_loss)
        state["positions"] += int(counts[2].item())
        state["history"].append({"step": step + 1, "loss": loss, "lr": learning_rate,
                                 "grad_norm": float(grad_norm)})
        state["seconds"] = seconds_before + time.monotonic() - started
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
        if (config.checkpoint_every and state["step"] % config.checkpoint_every == 0
                and state["step"] < total_steps):
            _save_checkpoint(out_dir, state, inputs, peft_model, optimizer, scheduler,
                             accelerator)
        if on_step is not None:
            on_step(StepInfo(step=step + 1, total=total_steps, loss=loss,
                             learning_rate=learning_rate, grad_norm=float(grad_norm),
                             model=peft_model))
    if bar is not None:
        bar.close()

    adapter_dir = out_dir
    summary = None
    if accelerator.is_main_process:
        save_adapter_files(peft_model, adapter_dir)
        history = state["history"]
        summary = TrainSummary(
            steps=state["step"], tokens=state["tokens"], loss_tokens=state["loss_tokens"],
            useful_token_share=state["tokens"] / max(1, state["positions"]),
            first_loss=history[0]["loss"] if history else float("nan"),
            last_loss=history[-1]["loss"] if history else float("nan"),
            seconds=round(state["seconds"], 3), adapter=str(adapter_dir),
            adapter_hash=adapter_hash(adapter_dir), examples=data.n_examples,
            dropped=packing.n_dropped)
        _write_json(out_dir / SUMMARY_FILE, {"summary": summary.to_dict(), "inputs": inputs})
        with open(out_dir / LOG_FILE, "w") as fh:
            fh.writelines(json.dumps(h) + "\n" for h in history)
        _remove(out_dir / "checkpoints")
    accelerator.wait_for_everyone()
    if summary is None:
        summary = TrainSummary.from_dict(
            json.loads((out_dir / SUMMARY_FILE).read_text())["summary"])
    if accelerator.device.type == "cuda":
        accelerator.free_memory()  # hand the GPU memory of optimizer state back for sampling
    return summary


class _StepData:
    """What a step reads and how its loss is weighed, for packed SFT blocks or DPO pairs.

    `counts` are per rank and summed over ranks before the loss is weighed: [example tokens,
    loss tokens, positions read, DPO pairs, loss tokens of chosen sides]. Each micro batch's
    loss is divided by the global counts, so the step's losses sum to the mean over the step.
    """

    def __init__(self, packing: Packing | PreferenceData, config: TrainConfig):
        self.config = config
        self.packing = packing
        self.preferring = isinstance(packing, PreferenceData)
        self.items = packing.pairs if self.preferring else packing.blocks
        self.n_examples = len(packing.pairs) if self.preferring else packing.n_examples

    def loss_model(self, peft_model) -> torch.nn.Module:
        if self.preferring:
            return PreferenceLossModel(peft_model, self.config.beta)
        return LossModel(peft_model, self.config.loss_chunk_tokens)

    def collate(self, micro) -> dict:
        return collate_pairs(micro, self.packing.pad_id) if self.preferring else collate(micro)

    def counts(self, batches) -> list[int]:
        if not self.preferring:
            mine = [b for micro in batches for b in micro]
            return [sum(b.n_tokens for b in mine), sum(b.n_loss for b in mine),
                    sum(len(b.input_ids) for b in mine), 0, 0]
        tokens = loss = positions = n_pairs = chosen = 0
        for micro in batches:
            width = max(max(len(p.chosen.input_ids), len(p.rejected.input_ids)) for p in micro)
            positions += 2 * len(micro) * width
            for p in micro:
                tokens += p.n_tokens
                chosen += sum(p.chosen.loss_mask)
                loss += sum(p.chosen.loss_mask) + sum(p.rejected.loss_mask)
                n_pairs += 1
        return [tokens, loss, positions, n_pairs, chosen]

    def loss(self, out, counts):
        if not self.preferring:
            return out / counts[1]
        dpo = out[0] / counts[3]
        return dpo + out[1] / counts[4] if self.config.objective == "sft+dpo" else dpo


class LossModel(torch.nn.Module):
    """Wraps the model being trained so DDP and autocast see one forward returning the loss.

    Returns the summed cross entropy over positions whose label is not IGNORE_INDEX (labels
    are unshifted: the hidden state at t predicts label t + 1). With `chunk_tokens`, logits
    are computed only at those positions, a slice at a time, and recomputed in the backward
    pass rather than stored.
    """

    def __init__(self, lm, chunk_tokens: int = 1024):
        super().__init__()
        self.lm = lm
        """A PeftModel or a plain transformers causal LM."""
        self.chunk_tokens = chunk_tokens

    def forward(self, input_ids, labels, position_ids):
        hf = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
        targets = labels[:, 1:]
        head = hf.get_output_embeddings()
        if not self.chunk_tokens or head is None or not _plain_head(hf.config):
            logits = hf(input_ids=input_ids, position_ids=position_ids,
                        use_cache=False).logits[:, :-1]
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                                   ignore_index=IGNORE_INDEX, reduction="sum")
        hidden = hf.get_decoder()(input_ids=input_ids, position_ids=position_ids,
                                  use_cache=False).last_hidden_state[:, :-1]
        keep = targets != IGNORE_INDEX
        hidden, targets = hidden[keep], targets[keep]
        total = hidden.new_zeros((), dtype=torch.float32)
        for i in range(0, hidden.shape[0], self.chunk_tokens):
            total = total + checkpoint(_slice_loss, head, hidden[i:i + self.chunk_tokens],
                                       targets[i:i + self.chunk_tokens], use_reentrant=False)
        return total


def _slice_loss(head, hidden, targets):
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


def _plain_head(hf_config) -> bool:
    """True when logits are just lm_head(hidden), so the sliced loss computes the same thing."""
    for attr in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale",
                 "logits_scaling"):
        value = getattr(hf_config, attr, None)
        if value not in (None, 1, 1.0):
            return False
    return True


class _BlockOrder:
    """Global sample index -> block index: a fresh seeded permutation for every epoch."""

    def __init__(self, n_blocks: int, seed: int):
        self.n_blocks = n_blocks
        self.seed = seed
        self._epochs: dict[int, list[int]] = {}

    def __getitem__(self, index: int) -> int:

        epoch, offset = divmod(index, self.n_blocks)
        if epoch not in self._epochs:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epochs = {epoch: torch.randperm(self.n_blocks, generator=generator).tolist()}
        return self._epochs[epoch][offset]


def _micro_batch_indices(step: int, micro: int, rank: int, micro_batch: int, grad_accum: int,
                         world: int) -> range:
    """Global sample indices of one micro batch of one rank: a pure function of the step."""
    start = step * micro_batch * grad_accum * world + (micro * world + rank) * micro_batch
    return range(start, start + micro_batch)


def _warmup_cosine(optimizer, total_steps: int, warmup_ratio: float):

    warmup = math.ceil(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def resolve_mixed_precision(setting: str, device: torch.device | str) -> str:
    """What `TrainConfig.mixed_precision = setting` trains in on `device`: "no", "bf16" or
    "fp16". "auto" is bf16 on a GPU that supports it, else "no". On a CPU, bf16 is asked for
    by name (it needs bf16 matmul units, `training.models.cpu_has_bf16`): it is not yet what
    "auto" picks there, because its loss curve sits 2-4.6% above fp32's after the first step
    on the cpu preset's 16 steps (bench/results/train_bf16_intel_xeon.txt), more than noise."""
    from training import models

    device = torch.device(device)
    if setting not in MIXED_PRECISION:
        raise SelfplayError(f"train.mixed_precision = {setting!r} is not one of "
                            f"{', '.join(MIXED_PRECISION)}")
    if setting == "fp16" and device.type == "cpu":
        raise SelfplayError("train.mixed_precision = 'fp16' needs a GPU: on the CPU use bf16 "
                            "(or auto, or no)")
    if setting == "bf16" and device.type == "cpu" and not models.cpu_has_bf16():
        raise SelfplayError("train.mixed_precision = 'bf16' on this CPU: it has no bf16 "
                            "matmul units (AMX or avx512_bf16); use auto or no")
    if setting != "auto":
        return setting
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "no"


def _saved_precision(saved: dict) -> str:
    """The precision a saved run trained in. Runs saved before it was recorded resolved "auto"
    to bf16 only on a CUDA GPU with bf16, so on a CPU base they trained in float32."""
    if "precision" in saved:
        return saved["precision"]
    setting = saved.get("config", {}).get("mixed_precision", "auto")
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _cpu_autocast(on: bool):
    """The forward of a bf16 CPU run: the adapter's fp32 weights enter its matmuls as bf16 (a
    cast of a few small matrices, cached for the forward) and its activations stay bf16. Ours,
    not accelerate's: accelerate fixes the precision once per process, for every later run."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()


@contextlib.contextmanager
def _adapter_on(hf_model, lora: LoraSettings, init_adapter, bf16_inputs: bool = False):
    """The model with a trainable adapter injected (fresh, or loaded from `init_adapter`); the
    adapter layers are taken out again on exit, whatever happened. peft keeps the adapter's
    weights float32 on a bf16 base; with `bf16_inputs` it stops casting each adapter's input
    to them (under _cpu_autocast): casting the bf16 activations to fp32 and the sum back, at
    every adapted layer, took more time than the matmuls bf16 saved."""
    from peft import PeftModel, get_peft_model
    from peft.helpers import disable_input_dtype_casting

    with quiet_peft():
        if init_adapter is not None:
            peft_model = PeftModel.from_pretrained(hf_model, str(init_adapter),
                                                   is_trainable=True)
        else:
            peft_model = get_peft_model(hf_model, lora_config_for(hf_model, lora))
    try:
        with disable_input_dtype_casting(peft_model, active=bf16_inputs):
            yield peft_model
    finally:
        peft_model.unload()


@contextlib.contextmanager
def _borrowed(hf_model, gradient_checkpointing: bool, dtype: torch.dtype | None = None):
    """Lend the base model to training and hand it back as it was: the same requires_grad
    flags, training mode, gradient checkpointing setting and weights. With `dtype`, its float32
    weights are lent as copies in that dtype (the originals kept aside, put back on exit)."""
    requires_grad = {name: p.requires_grad for name, p in hf_model.named_parameters()}
    originals = {}
    if dtype is not None:
        # Tied weights are one Parameter (named_parameters lists it once): cast once, still tied.
        for p in hf_model.parameters():
            if p.dtype == torch.float32:
                originals[p] = p.data
                p.data = p.data.to(dtype)
    was_training = hf_model.training
    had_checkpointing = _checkpointing_on(hf_model)
    if gradient_checkpointing and not had_checkpointing:
        enable = _checkpointing_method(hf_model, "enable")
        try:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        except TypeError:  # before transformers 5 the keyword had the old name too
            enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield hf_model
    finally:
        if _checkpointing_on(hf_model) and not had_checkpointing:
            _checkpointing_method(hf_model, "disable")()
        for p, data in originals.items():
            p.data = data
        for name, p in hf_model.named_parameters():
            p.requires_grad_(requires_grad.get(name, p.requires_grad))
        hf_model.train(was_training)


def _checkpointing_method(hf_model, verb: str):
    # transformers 5 renamed gradient_checkpointing_* to activation_checkpointing_* and warns
    # on the old names; older versions only have those.
    return getattr(hf_model, f"activation_checkpointing_{verb}", None) or getattr(
        hf_model, f"gradient_checkpointing_{verb}")


def _checkpointing_on(hf_model) -> bool:
    # transformers 5 renamed the flag; older versions only have the first name.
    for attr in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(hf_model), attr) or hasattr(hf_model, attr):
            return bool(getattr(hf_model, attr))
    return False


# ---------------------------------------------------------------------------------------------
# Checkpoints and the identity of a run


def _run_inputs(base, pairs, config: TrainConfig, lora: LoraSettings, init_adapter,
                preferences=()) -> dict:
    """What determines the result of a run; a checkpoint or finished run must match it."""
    digest = hashlib.sha256()
    for pair in (preferences if config.objective != "sft" else pairs):
        digest.update(json.dumps(list(pair)).encode())
    cfg = dataclasses.asdict(config)
    cfg.pop("checkpoint_every")  # how often we save does not change what we compute
    # `processes` says how many the loop launches; what counts is the world that trains,
    # which train_adapter adds once accelerate knows it.
    cfg.pop("processes")
    if config.objective == "sft":
        # An SFT run is the run it was before objectives existed: its checkpoints resume.
        cfg.pop("objective")
        cfg.pop("beta")
    return {
        "base": str(getattr(base, "fingerprint", "") or getattr(base, "name", "")),
        "pairs": digest.hexdigest()[:16],
        "config": cfg,
        "lora": {**dataclasses.asdict(lora), "target_modules": list(lora.target_modules)},
        "init_adapter": adapter_hash(init_adapter) if init_adapter is not None else None,
    }


def _check_same_inputs(saved: dict, inputs: dict, where: str) -> None:
    # Runs saved before the world size and the precision were recorded.
    saved = {"processes": 1, "precision": _saved_precision(saved), **saved}
    for key in inputs:
        if isinstance(inputs[key], dict) and isinstance(saved.get(key), dict):
            for sub in inputs[key]:
                if saved[key].get(sub) != inputs[key][sub]:
                    raise SelfplayError(
                        f"{where} is a run with {key}.{sub}={saved[key].get(sub)!r}, not "
                        f"{inputs[key][sub]!r}: use another out dir, or resume=False to start over")
        elif saved.get(key) != inputs[key]:
            raise SelfplayError(
                f"{where} is a run with a different {key} ({saved.get(key)!r}, not "
                f"{inputs[key]!r}): use another out dir, or resume=False to start over")


def read_train_log(out_dir: str | Path) -> list[dict]:
    """A finished run's steps: {"step", "loss", "lr", "grad_norm"} each, in order."""
    path = Path(out_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def existing_run(out_dir: str | Path) -> str | None:
    """What training run `out_dir` holds: "finished", "checkpoint at step N", or None."""
    out_dir = Path(out_dir)
    if (out_dir / SUMMARY_FILE).is_file():
        return "finished"
    checkpoint = _latest_checkpoint(out_dir)
    if checkpoint is not None:
        return f"checkpoint at step {int(checkpoint.name.split('-')[1])}"
    return None


def _finished_summary(out_dir: Path, inputs: dict) -> TrainSummary | None:
    path = out_dir / SUMMARY_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    _check_same_inputs(saved["inputs"], inputs, str(out_dir))
    summary = TrainSummary.from_dict(saved["summary"])
    adapter = run_adapter(out_dir)
    if (adapter / ADAPTER_FILES[0]).is_file() and adapter_hash(adapter) == summary.adapter_hash:
        return summary
    return None  # the adapter was removed or changed since: train again


def _saved_inputs(out_dir: Path) -> dict | None:
    """The inputs of the run out_dir holds (finished, else its latest checkpoint), or None."""
    if (out_dir / SUMMARY_FILE).is_file():
        return json.loads((out_dir / SUMMARY_FILE).read_text())["inputs"]
    checkpoint = _latest_checkpoint(out_dir)
    if checkpoint is not None:
        return json.loads((checkpoint / "state.json").read_text())["inputs"]
    return None


def _latest_checkpoint(out_dir: Path) -> Path | None:
    root = out_dir / "checkpoints"
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def _save_checkpoint(out_dir: Path, state: dict, inputs: dict, peft_model, optimizer, scheduler,
                     accelerator) -> None:
    """Write out_dir/checkpoints/step-NNNNNN atomically: built under a temporary name, renamed
    when complete, then older checkpoints removed. A crash at any point leaves a usable one."""

    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    root = out_dir / "checkpoints"
    final = root / f"step-{state['step']:06d}"
    tmp = root / f".tmp-step-{state['step']:06d}"
    if accelerator.is_main_process:
        _remove(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # Only the weights: the peft layout (config, model card) is for the final adapter.
        save_file(get_peft_model_state_dict(peft_model), str(tmp / "adapter.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        _write_json(tmp / "state.json", {**state, "inputs": inputs})
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
        os.replace(tmp, final)
        for old in root.glob("step-*"):
            if old != final:
                _remove(old)
    accelerator.wait_for_everyone()


def _load_checkpoint(path: Path, peft_model, optimizer, scheduler, rank: int, device) -> dict:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if not (path / f"rng_{rank}.pt").is_file():
        raise SelfplayError(f"{path} was written by fewer processes than this run uses")
    weights = load_file(str(path / "adapter.safetensors"), device=str(device))
    set_peft_model_state_dict(peft_model, weights)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device,
                                         weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    state = json.loads((path / "state.json").read_text())
    state.pop("inputs")
    return state


def _rng_state() -> dict:
    import numpy as np

    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _progress_bar(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="train", unit="step")


# ---------------------------------------------------------------------------------------------
# Measuring


def pair_loss(model, tokenizer, pairs: Sequence[tuple[str, str]], *, loss_on: str = "solution",
              block_size: int = 512, micro_batch: int = 8) -> float:
    """Mean loss per loss token of `model` (any causal LM, with or without adapter) on `pairs`,
    in eval mode: the held-out measure for comparing rounds and settings."""

    packing = build_blocks(tokenizer, pairs, block_size=block_size, loss_on=loss_on)
    if not packing.blocks:
        raise SelfplayError(f"no pair fits in a block of {block_size} tokens")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            loss_model = LossModel(model)
            for i in range(0, len(packing.blocks), micro_batch):
                tensors = {k: v.to(device)
                           for k, v in collate(packing.blocks[i:i + micro_batch]).items()}
                total += loss_model(**tensors).item()
                count += int((tensors["labels"][:, 1:] != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return total / count
