"""The `tiny` model: a small Llama built from nothing, for tests and for watching a loop start.

A byte-level BPE tokenizer is trained on the train-split seed puzzles, then a 4-layer Llama is
pretrained for a few hundred steps on documents laid out exactly like the propose and solve
prompts, so that from the first round it writes text that looks like Python puzzles. Everything
is deterministic given the recipe, and the result is cached under a key hashed from the recipe
and the corpus: the first build takes well under a minute on two CPU cores, later loads are
instant. Held-out families never enter the corpus.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from training.cache import FINGERPRINT_FILE, cache_dir, publish_dir
from training.prompts import (PromptConfig, propose_prompt, rename_function, solve_prompt,
                              solved_example)
from training.threads import torch_threads

# Bump when the build procedure changes in a way the recipe does not capture.
BUILD_VERSION = 1
EOS = "<|endoftext|>"


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the tiny model; its hash keys the cache."""

    vocab_size: int = 2048
    """BPE vocabulary, special tokens included."""
    hidden_size: int = 128
    """Width of the residual stream."""
    layers: int = 3
    """Decoder layers."""
    heads: int = 4
    """Attention heads (head size = hidden_size / heads)."""
    intermediate_size: int = 256
    """Width of the SwiGLU MLP."""
    context_length: int = 2048
    """Positions the model supports (rotary, so this costs nothing until used)."""
    documents: int = 400
    """Prompt-shaped training documents generated from the seeds (half propose, half solve)."""
    steps: int = 250
    """Optimizer steps of pretraining."""
    batch_size: int = 8
    """Sequences per step."""
    seq_len: int = 128
    """Tokens per training sequence."""
    learning_rate: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay)."""
    seed: int = 0
    """Seeds the documents, the initial weights and the batches."""


def build_tiny(recipe: TinyRecipe = TinyRecipe(), *, corpus: list[str] | None = None,
               force: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """The directory of the tiny model for `recipe`, building and caching it if needed.

    `corpus` replaces the documents made from the train seeds; `force` rebuilds even when the
    cache has it; `log` receives progress lines. Load the result with `load_model(path)` (or
    `load_model("tiny")` for the default recipe).
    """
    key = _cache_key(recipe, corpus)
    target = cache_dir() / f"tiny-{key}"
    if (target / FINGERPRINT_FILE).is_file() and not force:
        return target
    say = log or (lambda line: None)

    def write(tmp: Path) -> None:
        start = time.perf_counter()
        documents = corpus if corpus is not None else seed_documents(recipe)
        tokenizer = train_tokenizer(documents, recipe)
        say(f"tokenizer: {len(tokenizer)} tokens")
        model = pretrain(tokenizer, documents, recipe, say)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "recipe.json").write_text(json.dumps(asdict(recipe), indent=1) + "\n")
        (tmp / FINGERPRINT_FILE).write_text(f"tiny-{key}\n")
        say(f"built in {time.perf_counter() - start:.1f}s")

    if force and target.exists():
        shutil.rmtree(target)
    return publish_dir(target, write)


def seed_documents(recipe: TinyRecipe = TinyRecipe()) -> list[str]:
    """Propose- and solve-shaped documents made from the train split of the seed corpus."""
    from puzzles.format import parse_solution
    from puzzles.seeds import load_seeds
    solved, puzzles = [], []
    for record in load_seeds(split="train"):
        puzzles.append(record.puzzle)
        for source in record.solutions:
            solved.append((record.puzzle, parse_solution(source, record.puzzle)))
    if not puzzles:
        puzzles, solved = _fallback_examples()
    rng = random.Random(recipe.seed)
    config = PromptConfig(max_prompt_tokens=recipe.seq_len * 8)
    docs = []
    for _ in range(recipe.documents // 2):
        # Propose: k examples, then one more puzzle written as the model should write it.
        prompt, shown = propose_prompt(puzzles, rng, config)
        head = f"def f{len(shown) + 1}("
        new = rng.choice(puzzles)
        docs.append(prompt.removesuffix(head)
                    + rename_function(new.source, "f", f"f{len(shown) + 1}"))
        # Solve: two solved examples, then a puzzle and its solution.
        examples = rng.sample(solved, min(3, len(solved)))
        *shown, (target, solution) = examples
        docs.append(solve_prompt(shown, target, config).rsplit("def g", 1)[0]
                    + solved_example(target, solution, config))
    return docs


def _fallback_examples():
    # Used only when the seed corpus is empty (a fresh checkout mid-build): a few classics.
    from puzzles.format import parse_puzzle, parse_solution
    pairs = [
        ("def f(x: int, a=7, b=30):\n    return a * x == b * 2 + 2\n",
         "def g(a=7, b=30):\n    return (b * 2 + 2) // a\n"),
        ("def f(s: str, n=5):\n    return len(s) == n and s == s[::-1]\n",
         "def g(n=5):\n    return 'a' * n\n"),
        ("def f(li: list[int], t=12):\n    return len(li) == 3 and sum(li) == t\n",
         "def g(t=12):\n    return [t - 2, 1, 1]\n"),
    ]
    solved = [(parse_puzzle(p), None) for p, _ in pairs]
    solved = [(pz, parse_solution(s, pz)) for (pz, _), (_, s) in zip(solved, pairs)]
    return [p for p, _ in solved], solved


def train_tokenizer(documents: list[str], recipe: TinyRecipe):
    """A byte-level BPE tokenizer (any text encodes) trained on the documents."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=recipe.vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(documents, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=EOS,
                                        model_max_length=recipe.context_length)
    tokenizer.padding_side = "left"
    return tokenizer


def pretrain(tokenizer, documents: list[str], recipe: TinyRecipe,
             say: Callable[[str], None] = lambda line: None):
    """A freshly initialised Llama trained for `recipe.steps` steps on the documents."""
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size, num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads, num_key_value_heads=recipe.heads,
        max_position_embeddings=recipe.context_length, tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, rope_theta=10000.0)
    eos = tokenizer.eos_token_id
    stream = []
    for doc in documents:
        stream.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
        stream.append(eos)
    data = torch.tensor(stream, dtype=torch.long)
    if len(data) <= recipe.seq_len + 1:
        data = data.repeat(recipe.seq_len // max(1, len(data)) + 2)
    say(f"corpus: {len(documents)} documents, {len(stream)} tokens")

    # Our own generator and a forked global RNG: building the model never disturbs the caller.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = LlamaForCausalLM(config)
    batches = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate,
                                  betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, recipe.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, recipe.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    # One thread: matrices this small gain nothing from a second one, and on a busy machine two
    # threads spin against each other (measured at load 10 on 2 cores: 10x the CPU per step).
    with torch_threads(1):
        _train_steps(model, optimizer, schedule, data, batches, recipe, say)
    model.eval()
    return model


def _train_steps(model, optimizer, schedule, data, batches, recipe, say) -> None:
    for step in range(recipe.steps):
        starts = torch.randint(0, len(data) - recipe.seq_len - 1, (recipe.batch_size,),
                               generator=batches)
        batch = torch.stack([data[s:s + recipe.seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == recipe.steps - 1:
            say(f"step {step:4d}  loss {loss.item():.3f}")


def _cache_key(recipe: TinyRecipe, corpus: list[str] | None) -> str:
    """Hash of the recipe and the corpus: the given documents, else the seed files' bytes
    (hashing files takes milliseconds; making the documents takes seconds)."""
    from puzzles.seeds import seed_files
    h = hashlib.sha256(json.dumps({"version": BUILD_VERSION, "recipe": asdict(recipe)},
                                  sort_keys=True).encode())
    parts = corpus if corpus is not None else [p.read_text() for p in seed_files()]
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


__all__ = ["TinyRecipe", "build_tiny", "pretrain", "seed_documents", "train_tokenizer"]
