"""Preference pairs for DPO: reading them, batching them, and the loss.

A preference pair is one puzzle with a chosen solution (the sandbox passed it) and a rejected
one (it ran and returned a wrong answer, or raised). Each side is tokenised as SFT tokenises an
example (training.data: the puzzle as the prompt, the solution and assert as the completion), so
the log-probability of a side is summed over exactly the tokens SFT would take loss on.

The loss is DPO's sigmoid loss (Rafailov et al. 2023):

    -logsigmoid(beta * ((logp(chosen) - ref(chosen)) - (logp(rejected) - ref(rejected))))

where the reference is the same model with its LoRA adapter disabled: the base weights, no
second copy in memory. Sides are not packed (DPO needs one log-probability per sequence): a micro
batch is its pairs' chosen rows, then their rejected rows, right-padded. With no attention mask a
causal model never lets a real token see the padding after it, so padding changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import parse_puzzle, parse_solution
from training.data import IGNORE_INDEX, Example, read_text_records, tokenize_pair

PREFERENCE_KEYS = ("puzzle", "chosen", "rejected")


@dataclass(frozen=True)
class TokenizedPair:
    chosen: Example
    rejected: Example

    @property
    def n_tokens(self) -> int:
        return len(self.chosen.input_ids) + len(self.rejected.input_ids)


@dataclass(frozen=True)
class PreferenceData:
    """The tokenised pairs of a dataset and what did not fit."""

    pairs: tuple[TokenizedPair, ...]
    n_dropped: int
    """Pairs with a side longer than a block: dropped whole (a cut solution teaches nothing)."""
    pad_id: int
    """Fills the rows after their tokens; never attended to, never a target."""


def read_preference_pairs(path: str | Path, *, validate: bool = True
                          ) -> list[tuple[str, str, str]]:
    """Read a JSONL file of `{"puzzle": ..., "chosen": ..., "rejected": ...}` lines.

    Blank lines are skipped. With `validate`, the puzzle and both solutions are parsed
    (puzzles.format), so a malformed line fails here, naming its line.
    """
    out = []
    for where, record in read_text_records(path, PREFERENCE_KEYS):
        if validate:
            try:
                puzzle = parse_puzzle(record["puzzle"])
                for key in ("chosen", "rejected"):
                    parse_solution(record[key], puzzle)
            except PuzzleError as e:
                raise SelfplayError(f"{where}: {e}") from None
        out.append((record["puzzle"], record["chosen"], record["rejected"]))
    if not out:
        raise SelfplayError(f"{path}: no preference pairs in the file")
    return out


def tokenize_preferences(tokenizer, triples: Sequence[tuple[str, str, str]],
                         max_tokens: int) -> PreferenceData:
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    kept, dropped = [], 0
    for puzzle, chosen, rejected in triples:
        pair = TokenizedPair(tokenize_pair(tokenizer, puzzle, chosen),
                             tokenize_pair(tokenizer, puzzle, rejected))
        if max(len(pair.chosen.input_ids), len(pair.rejected.input_ids)) > max_tokens:
            dropped += 1
        else:
            kept.append(pair)
    return PreferenceData(pairs=tuple(kept), n_dropped=dropped, pad_id=pad_id)


def collate_pairs(pairs: Sequence[TokenizedPair], pad_id: int):
    """Rows 0..n-1 are the chosen sides, n..2n-1 the rejected ones, right-padded."""
    rows = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    width = max(len(r.input_ids) for r in rows)
    ids, labels, positions = [], [], []
    for r in rows:
        pad = width - len(r.input_ids)
        ids.append(list(r.input_ids) + [pad_id] * pad)
        labels.append([t if m else IGNORE_INDEX for t, m in zip(r.input_ids, r.loss_mask)]
                      + [IGNORE_INDEX] * pad)
        positions.append(list(range(width)))
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "position_ids": torch.tensor(positions, dtype=torch.long),
    }


def sequence_logps(model, input_ids, labels, position_ids):
    """Per row, the sum of log p(label t+1 | tokens <= t) over positions whose label is not
    IGNORE_INDEX (labels unshifted, as training.data makes them). `model` is a causal LM.

    Full logits, unlike SFT's sliced loss: a DPO micro batch is a few unpacked pairs, and one
    forward per side keeps the reference pass identical in shape to the policy pass."""
    logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logp = -F.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                            targets.clamp(min=0).flatten(), reduction="none")
    return (logp.view(targets.shape) * keep).sum(-1)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """Per pair: DPO's sigmoid loss on the policy-vs-reference log-ratio margin."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin)


class PreferenceLossModel(torch.nn.Module):
    """Wraps the PeftModel being trained so DDP and autocast see one forward returning the loss.

    Returns (DPO loss summed over pairs, chosen sides' negative log-likelihood summed over their
    loss tokens); the caller weighs them by the objective. The reference pass runs the same
    model with the adapter disabled, under no_grad: it costs a forward, not a second model.
    """

    def __init__(self, peft_model, beta: float):
        super().__init__()
        self.lm = peft_model
        self.beta = beta

    def forward(self, input_ids, labels, position_ids):
        n = input_ids.shape[0] // 2
        hf = self.lm.get_base_model()
        policy = sequence_logps(hf, input_ids, labels, position_ids)
        with torch.no_grad(), self.lm.disable_adapter():
            reference = sequence_logps(hf, input_ids, labels, position_ids)
        losses = dpo_loss(policy[:n], policy[n:], reference[:n], reference[n:], self.beta)
        return torch.stack([losses.sum(), -policy[:n].sum()])
