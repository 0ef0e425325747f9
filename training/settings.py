"""The settings of model loading, training and sampling, apart from the code that uses them.

These dataclasses are what a run's config is made of (`selfplay.config`); keeping them in a
module that imports no torch lets `selfplay init`, `status` and every stage read a config
without loading torch. The modules that use them (`training.models`, `training.trainer`,
`training.sampling`) import them from here; so do the samplers' shared pieces
(`Completion`, `sample_seed`), which both backends (`training.sampling`,
`training.vllm_backend`) use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from puzzles.checks import check_choice, check_ranges
from puzzles.errors import SelfplayError
from training.data import LOSS_ON

SMOLLM2 = "smollm2-135m"
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
BACKENDS = ("auto", "transformers", "vllm")
OBJECTIVES = ("sft", "dpo", "sft+dpo")
MODEL_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelConfig:
    """Which model to load and where it runs."""

    name: str = SMOLLM2
    """`smollm2-135m`, `tiny`, a Hugging Face hub id, or a local directory with a tokenizer."""
    device: str = "auto"
    """`cpu`, `cuda`, `cuda:N`, or `auto` (cuda when available, else cpu)."""
    dtype: str = "auto"
    """`float32`, `bfloat16`, `float16`, or `auto` (bfloat16 on a GPU that supports it, float32
    on CPU)."""
    threads: int = 0
    """CPU threads for torch (a process-wide setting); 0 = automatic: 1 for models under 30M
    parameters, else one per CPU this process may use."""
    adapter: str = ""
    """A peft (LoRA) adapter directory to apply on top of the base weights; empty for none. A
    self-play run refuses one (its round adapters replace it): merge it into the weights
    (`selfplay merge`)."""

    def __post_init__(self):
        # The name and device are checked where they resolve (a run's preflight loads the
        # tokenizer): a hub id or a GPU is a fact of the machine, not of the file.
        if not self.name.strip():
            raise SelfplayError("model.name is empty: give smollm2-135m, tiny, a hub id or a "
                                "local directory")
        check_choice("model.dtype", self.dtype, MODEL_DTYPES)
        check_ranges(self, "model", threads=">= 0")


@dataclass(frozen=True)
class TrainConfig:
    """How one round trains. Defaults suit a few thousand pairs on a small model."""

    steps: int = 0
    """Optimizer steps; 0 means `epochs` passes over the packed data."""
    epochs: float = 1.0
    """Passes over the data when `steps` is 0."""
    learning_rate: float = 2e-4
    """Peak learning rate (LoRA wants ~10x a full fine-tune's)."""
    weight_decay: float = 0.0
    """AdamW weight decay on the adapter weights."""
    micro_batch: int = 4
    """Blocks per forward pass on each process: the knob for peak memory."""
    grad_accum: int = 4
    """Micro batches per optimizer step; the step sees micro_batch x grad_accum x processes blocks."""
    block_size: int = 512
    """Tokens per packed block (capped at the model's context length)."""
    warmup_ratio: float = 0.05
    """Share of the steps spent warming the learning rate up linearly, before the cosine decay."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this; 0 disables clipping."""
    loss_on: str = "solution"
    """"solution": loss on the solution and assert only; "all": on the puzzle too."""
    loss_chunk_tokens: int = 1024
    """Positions per slice of the sliced loss; 0 computes the full logits at once (plain HF)."""
    checkpoint_every: int = 50
    """Write a resumable checkpoint every this many steps; 0 never."""
    seed: int = 0
    """Seeds the adapter init, dropout and the data order."""
    mixed_precision: str = "auto"
    """"auto" (bf16 on a GPU that has it and on a CPU with bf16 matmul units, AMX or
    avx512_bf16; else float32), "no" (float32), "bf16" or "fp16" (GPU only). On a CPU bf16
    trains bf16 base weights under fp32 LoRA weights and optimizer state."""
    gradient_checkpointing: bool = False
    """Recompute layer activations in the backward pass: less memory, ~30% more compute."""
    objective: str = "sft"
    """"sft": next-token loss on verified pairs. "dpo": DPO's sigmoid loss on preference pairs
    (a passing and a failing attempt of one puzzle), the reference being the same model with
    the LoRA adapter disabled (the base weights, also when a round continues the previous
    adapter). "sft+dpo": the sum of the SFT loss (per token) on the chosen solutions of those
    pairs and the DPO loss (per pair). Preference log-probs are over the solution tokens
    whatever `loss_on` says."""
    beta: float = 0.1
    """DPO's beta: how strongly the policy is held to the reference (larger: closer)."""
    processes: int = 1
    """Processes that train the loop's rounds together (data parallel: one per GPU, or sharing
    the CPU over gloo); above 1 the train stage launches them with accelerate's launcher. Each
    step then sees micro_batch x grad_accum x processes blocks. `selfplay train` takes the
    processes of whatever launched it instead."""

    def __post_init__(self):
        check_ranges(self, "train", steps=">= 0", epochs="> 0", learning_rate="> 0",
                     weight_decay=">= 0", micro_batch=">= 1", grad_accum=">= 1",
                     block_size=">= 16", warmup_ratio="in [0, 1)", max_grad_norm=">= 0",
                     loss_chunk_tokens=">= 0", checkpoint_every=">= 0", beta="> 0",
                     processes=">= 1")
        check_choice("train.loss_on", self.loss_on, LOSS_ON)
        check_choice("train.objective", self.objective, OBJECTIVES)
        check_choice("train.mixed_precision", self.mixed_precision, MIXED_PRECISION)


SAMPLING_DTYPES = ("model", "auto", "float32", "bfloat16")


@dataclass(frozen=True)
class SamplingConfig:
    """How completions are drawn."""

    temperature: float = 0.8
    """Softmax temperature; 0 means greedy (every sample of a prompt is then the same)."""
    top_p: float = 0.95
    """Nucleus sampling: draw from the smallest set of tokens holding this much probability."""
    max_new_tokens: int = 256
    """Most tokens a completion may have; one that hits it is truncated (no final newline)."""
    batch_size: int = 16
    """Samples decoded together (rows of one forward pass)."""
    backend: str = "auto"
    """`transformers`, `vllm`, or `auto` (vllm on CUDA when installed, else transformers)."""
    dtype: str = "model"
    """The fast path's matmul dtype: `model` (the loaded model's), `float32`, `bfloat16`, or
    `auto` (bfloat16 on a CPU with bf16 matmul units, else the model's). The weights stay as
    loaded, so training is unaffected; the generic path always runs in the model's dtype."""
    functions: int = 1
    """Top-level blocks a completion may hold: it stops at the start of its `functions`-th
    non-indented line. 1: one function (the prompt began its `def`); 2: a pair, the function
    the prompt began and one more written after it (a puzzle `f` and its solution `g`)."""

    def __post_init__(self):
        if self.dtype not in SAMPLING_DTYPES:
            raise SelfplayError(f"sampling dtype {self.dtype!r} is not one of "
                                f"{', '.join(SAMPLING_DTYPES)}")
        check_ranges(self, "sampling", temperature=">= 0", top_p="in (0, 1]",
                     max_new_tokens=">= 1", batch_size=">= 1", functions=">= 1")
        check_choice("sampling.backend", self.backend, BACKENDS)


@dataclass(frozen=True)
class Completion:
    """One sampled completion and why it ended."""

    text: str
    """Cut at the end of the function; ends with a newline iff the function ended."""
    finish: str
    """`stop` (a non-indented line began), `eos` (the model ended the text), or `length`."""
    tokens: int
    """Tokens generated, including the one that ended the completion."""


def sample_seed(seed: int, prompt: str, index: int) -> int:
    """The seed of one sample: a function of the run seed, its prompt and its index only."""
    digest = hashlib.sha256(f"{seed}\0{index}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
