"""Training data from verified pairs: one example per pair, packed into fixed-length blocks.

An example is the shape of the ICLR 2023 self-play paper (Haluptzok et al., "Language Models Can
Teach Themselves to Program Better"): the puzzle `f`, the solution `g`, then `assert f(g())`.

    def f(x: int, a=3):
        return x + a == 10

    def g(a=3):
        return 10 - a

    assert f(g())
    <eos>

The text splits into a prompt (the puzzle, exactly what the sampler shows the model) and a
completion (the solution and the assert, what the model learns to write). The loss covers either
the completion only or the whole example (`loss_on`).

Examples are packed whole into blocks of `block_size` tokens; each example's position ids restart
at 0. Transformers reads those resets as sequence boundaries and gives each packed example its
own causal mask (models built on `masking_utils.create_causal_mask`: Llama, Qwen, Mistral, GPT-2,
GPT-NeoX...), so packing costs no cross-talk between examples. Models that ignore position ids
for masking still see an EOS between examples: plain packing, the classic fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import parse_puzzle, parse_solution
from puzzles.records import read_json_lines

LOSS_ON = ("solution", "all")

IGNORE_INDEX = -100
"""Label of a position that takes no loss (the value torch's cross entropy skips)."""


def example_prompt(puzzle: str) -> str:
    """The part of an example the model is given: the puzzle source and a blank line."""
    return puzzle.rstrip() + "\n\n"


def example_completion(solution: str) -> str:
    """The part of an example the model learns to write: the solution, then the check."""
    return solution.rstrip() + "\n\nassert f(g())\n"


@dataclass(frozen=True)
class Example:
    """One tokenised pair."""

    input_ids: tuple[int, ...]
    loss_mask: tuple[bool, ...]
    """True where the token is a target of the loss; never the first token."""


@dataclass(frozen=True)
class Block:
    """A fixed-length row of packed examples, ready for the model."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    """The input id where the token takes loss, `IGNORE_INDEX` elsewhere (unshifted)."""
    position_ids: tuple[int, ...]
    """Restart at 0 for every example (and for the padding tail)."""
    n_tokens: int
    """Tokens that belong to examples; the rest of the block is padding."""
    n_loss: int
    """Tokens that take loss."""


def tokenize_pair(tokenizer, puzzle: str, solution: str, *, loss_on: str = "solution") -> Example:
    """Tokenise one pair as prompt + completion + EOS.

    Prompt and completion are tokenised separately so the boundary falls between tokens exactly
    where it falls at sampling time (the sampler tokenises the prompt alone and generates on).
    """
    if loss_on not in LOSS_ON:
        raise SelfplayError(f"loss_on must be one of {', '.join(LOSS_ON)}, not {loss_on!r}")
    prompt = tokenizer(example_prompt(puzzle), add_special_tokens=True)["input_ids"]
    completion = tokenizer(example_completion(solution), add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        completion = completion + [tokenizer.eos_token_id]
    ids = list(prompt) + list(completion)
    if loss_on == "all":
        mask = [False] + [True] * (len(ids) - 1)
    else:
        mask = [False] * len(prompt) + [True] * len(completion)
    return Example(input_ids=tuple(ids), loss_mask=tuple(mask))


def tokenize_pairs(tokenizer, pairs: Iterable[tuple[str, str]], *, loss_on: str = "solution",
                   ) -> list[Example]:
    return [tokenize_pair(tokenizer, p, s, loss_on=loss_on) for p, s in pairs]


@dataclass(frozen=True)
class Packing:
    """The blocks of a dataset and what packing cost."""

    blocks: tuple[Block, ...]
    n_examples: int
    n_dropped: int
    """Examples longer than a block: dropped whole, since a cut solution teaches a broken one."""

    @property
    def n_tokens(self) -> int:
        return sum(b.n_tokens for b in self.blocks)

    @property
    def useful_share(self) -> float:
        """Share of block positions that hold example tokens rather than padding."""
        total = sum(len(b.input_ids) for b in self.blocks)
        return self.n_tokens / total if total else 0.0


def pack(examples: Sequence[Example], block_size: int, pad_id: int) -> Packing:
    """Pack whole examples into blocks of `block_size` tokens, best-fit decreasing.

    Best-fit decreasing (longest first, into the fullest block it fits) leaves little padding
    and is deterministic, so a resumed run rebuilds exactly the same blocks.
    """
    if block_size < 2:
        raise SelfplayError(f"block_size must be at least 2, not {block_size}")
    kept = [e for e in examples if len(e.input_ids) <= block_size]
    order = sorted(range(len(kept)), key=lambda i: (-len(kept[i].input_ids), i))
    bins: list[list[Example]] = []
    room: list[int] = []
    for i in order:
        need = len(kept[i].input_ids)
        best = -1
        for b, free in enumerate(room):
            if need <= free and (best < 0 or free < room[best]):
                best = b
        if best < 0:
            bins.append([])
            room.append(block_size)
            best = len(bins) - 1
        bins[best].append(kept[i])
        room[best] -= need
    blocks = tuple(_block(members, block_size, pad_id) for members in bins)
    return Packing(blocks=blocks, n_examples=len(kept), n_dropped=len(examples) - len(kept))


def _block(members: list[Example], block_size: int, pad_id: int) -> Block:
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for e in members:
        ids.extend(e.input_ids)
        labels.extend(t if m else IGNORE_INDEX for t, m in zip(e.input_ids, e.loss_mask))
        positions.extend(range(len(e.input_ids)))
    n_tokens = len(ids)
    pad = block_size - n_tokens
    ids.extend([pad_id] * pad)
    labels.extend([IGNORE_INDEX] * pad)
    # The padding tail is one more "sequence" from the mask's point of view: it attends only to
    # itself and takes no loss, so it cannot leak into the examples.
    positions.extend(range(pad))
    return Block(input_ids=tuple(ids), labels=tuple(labels), position_ids=tuple(positions),
                 n_tokens=n_tokens, n_loss=sum(t != IGNORE_INDEX for t in labels))


def build_blocks(tokenizer, pairs: Iterable[tuple[str, str]], *, block_size: int,
                 loss_on: str = "solution") -> Packing:
    """Pairs to packed blocks in one call: what the trainer uses."""
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return pack(tokenize_pairs(tokenizer, pairs, loss_on=loss_on), block_size, pad_id)


def collate(blocks: Sequence[Block]):
    """Stack blocks into the model's tensors: input_ids, labels, position_ids.

    There is no attention mask on purpose: with none, no KV cache (call with use_cache=False)
    and restarting position ids, transformers builds each example's own causal mask.
    """
    import torch

    return {
        "input_ids": torch.tensor([b.input_ids for b in blocks], dtype=torch.long),
        "labels": torch.tensor([b.labels for b in blocks], dtype=torch.long),
        "position_ids": torch.tensor([b.position_ids for b in blocks], dtype=torch.long),
    }


def read_text_records(path: str | Path, keys: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """Each non-blank line of a JSONL file as (where, record), where names the line and record
    is an object whose `keys` hold non-empty strings; a line that is not raises SelfplayError
    naming it. The shared reading of pairs files (SFT pairs, preference pairs)."""
    for line in read_json_lines(path):
        where = f"{path} line {line.lineno}"
        if line.error:
            raise SelfplayError(f"{where}: {line.error}")
        record = line.value
        if not isinstance(record, dict):
            raise SelfplayError(f"{where}: expected an object with keys {' and '.join(keys)}")
        for key in keys:
            if key not in record:
                raise SelfplayError(f"{where}: missing key {key!r}")
            if not isinstance(record[key], str) or not record[key].strip():
                raise SelfplayError(f"{where}: {key!r} must be a non-empty string")
        yield where, record


def read_pairs(path: str | Path, *, validate: bool = True) -> list[tuple[str, str]]:
    """Read a JSONL file of verified pairs, one `{"puzzle": ..., "solution": ...}` per line.

    Blank lines are skipped. With `validate`, each puzzle and solution is parsed (puzzles.format)
    so a malformed one fails here, naming its line, rather than deep inside training.
    """
    pairs = []
    for where, record in read_text_records(path, ("puzzle", "solution")):
        if validate:
            try:
                puzzle = parse_puzzle(record["puzzle"])
                parse_solution(record["solution"], puzzle)
            except PuzzleError as e:
                raise SelfplayError(f"{where}: {e}") from None
        pairs.append((record["puzzle"], record["solution"]))
    if not pairs:
        raise SelfplayError(f"{path}: no pairs in the file")
    return pairs
