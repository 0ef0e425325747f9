"""What each stage reports when it finishes, typed, and the round's funnel built from it.

A stage's `run(ctx)` returns one of the summary dataclasses below; the loop stores it as JSON
(`summary_to_dict`, plus the stage's wall time as `seconds`) and every reader (status, cards,
report, later stages) gets it back typed through `round_records` or `load_summary`. Loading
takes the keys a summary type knows and leaves the rest, and a key a store lacks gets its
default, so summaries stored by earlier versions still load.

`Funnel` is the one definition of the funnel: which counts it has, where each comes from, and
which of them status and the report's plot show.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeedSummary:
    puzzles: int = 0
    """Shipped seed puzzles in the store."""
    solutions: int = 0
    rejected: int = 0
    imported: int = 0
    """Puzzles from `seeds.files` in the store."""


@dataclass(frozen=True)
class ProposeSummary:
    proposed: int = 0
    """Completions sampled."""
    prompts: int = 0


@dataclass(frozen=True)
class FilterSummary:
    valid: int = 0
    checked: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    """Rejected proposals per reason."""


@dataclass(frozen=True)
class DedupSummary:
    novel: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    """Duplicates, near-duplicates and contaminated puzzles per reason."""


@dataclass(frozen=True)
class SolveSummary:
    targets: int = 0
    attempts: int = 0
    parsed: int = 0


@dataclass(frozen=True)
class VerifySummary:
    verdicts: dict[str, int] = field(default_factory=dict)
    verifier: str = ""
    """The sandbox's version string."""


@dataclass(frozen=True)
class SelectSummary:
    solved: int = 0
    """Puzzles with at least one passing attempt this round."""
    selected: int = 0
    """Solved train puzzles within the solve-rate band (learnable)."""
    synthetic: int = 0
    human: int = 0
    new_pairs: int = 0
    """Distinct verified (puzzle, solution) pairs the model wrote this round that the store did
    not hold before (a human's solution written again does not count)."""
    on_solved: int = 0
    """Of `new_pairs`, those on puzzles that already had a solution (expert iteration)."""
    own_solved: int = 0
    """Of `solved`, the model's own puzzles (origin generated): a verified `g` from the solver
    or, for a pair proposal, from the proposer."""
    own_solved_by_solver: int = 0
    """Of `own_solved`, those the solver solved without the proposer's `g`."""
    own_pairs: int = 0
    """Of `new_pairs`, those on the model's own puzzles."""
    human_solved: int = 0
    """Of `solved`, human puzzles (seeds, imports, generator instances) the model solved."""


@dataclass(frozen=True)
class TrainStageSummary:
    """`training.trainer.TrainSummary`'s fields (paths relative to the run directory), and the
    adapter training continued from."""

    steps: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    useful_token_share: float = 0.0
    first_loss: float | None = None
    last_loss: float | None = None
    seconds: float = 0.0
    adapter: str = ""
    adapter_hash: str = ""
    examples: int = 0
    dropped: int = 0
    init_adapter: str = ""


@dataclass(frozen=True)
class CardSummary:
    warnings: int = 0
    card: str = ""


SUMMARY_TYPES = {"seed": SeedSummary, "propose": ProposeSummary, "filter": FilterSummary,
                 "dedup": DedupSummary, "solve": SolveSummary, "verify": VerifySummary,
                 "select": SelectSummary, "train": TrainStageSummary, "card": CardSummary}
"""The eval stage is not here: its summary is keyed by eval set name ({set: metric})."""


def summary_to_dict(summary) -> dict:
    return dataclasses.asdict(summary) if dataclasses.is_dataclass(summary) else dict(summary)


def load_summary(stage: str, data: dict | None):
    """A stored summary as its stage's type (a dict for a stage without one); None stays None."""
    cls = SUMMARY_TYPES.get(stage)
    if data is None or cls is None:
        return data
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class RoundRecord:
    """The finished stages of one round, with their typed summaries and wall times."""

    round: int
    summaries: dict[str, object] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def get(self, stage: str):
        return self.summaries.get(stage)

    @property
    def done(self) -> list[str]:
        return list(self.summaries)


def round_records(store, round: int | None = None) -> dict[int, RoundRecord]:
    """Every round's finished stages (or only `round`'s), in the order they finished."""
    out: dict[int, RoundRecord] = {}
    for r, stage, data in store.stages():
        if round is not None and r != round:
            continue
        record = out.setdefault(r, RoundRecord(r))
        record.summaries[stage] = load_summary(stage, data)
        if "seconds" in data:
            record.seconds[stage] = data["seconds"]
    return out


def _step(label: str, *, status: bool = False, plot: bool = False):
    return field(default=None, metadata={"label": label, "status": status, "plot": plot})


@dataclass(frozen=True)
class Funnel:
    """How many items survived each step of a round; None where the step's stage has not run.

    Status shows the steps marked `status` (0 for None); the report plots those marked `plot`;
    the data card shows all of them.
    """

    proposed: int | None = _step("proposed", status=True, plot=True)
    valid: int | None = _step("valid", status=True, plot=True)
    novel: int | None = _step("novel", status=True, plot=True)
    solve_targets: int | None = _step("solve targets")
    attempts: int | None = _step("attempts")
    parsed: int | None = _step("parsed")
    passed: int | None = _step("passed")
    solved: int | None = _step("solved", status=True, plot=True)
    own_solved: int | None = _step("own puzzles solved", status=True, plot=True)
    own_solved_by_solver: int | None = _step("own puzzles solved by the solver")
    human_solved: int | None = _step("human puzzles solved", status=True)
    new_pairs: int | None = _step("verified pairs", status=True)
    own_pairs: int | None = _step("verified pairs on own puzzles", status=True)
    selected: int | None = _step("selected", status=True, plot=True)
    train_examples: int | None = _step("train examples", plot=True)

    @classmethod
    def of(cls, record: RoundRecord, train_examples: int) -> Funnel:
        """The funnel of a round from its stage summaries and its stored training examples."""
        def get(stage: str, key: str):
            summary = record.get(stage)
            return getattr(summary, key) if summary is not None else None

        verdicts = get("verify", "verdicts")
        return cls(
            proposed=get("propose", "proposed"), valid=get("filter", "valid"),
            novel=get("dedup", "novel"), solve_targets=get("solve", "targets"),
            attempts=get("solve", "attempts"), parsed=get("solve", "parsed"),
            passed=verdicts.get("pass", 0) if verdicts is not None else None,
            solved=get("select", "solved"), own_solved=get("select", "own_solved"),
            own_solved_by_solver=get("select", "own_solved_by_solver"),
            human_solved=get("select", "human_solved"), own_pairs=get("select", "own_pairs"),
            new_pairs=get("select", "new_pairs"),
            selected=get("select", "selected"),
            train_examples=train_examples if train_examples or record.get("select")
            is not None else None)

    @classmethod
    def from_dict(cls, data: dict) -> Funnel:
        """A funnel as a card file holds it (a key an older card lacks reads as None)."""
        return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def status(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) or 0 for f in dataclasses.fields(self)
                if f.metadata["status"]}

    def rows(self, *, only: str | None = None) -> list[tuple[str, str, int | None]]:
        """(name, label, count) per step, or per step marked `only` ("status" or "plot")."""
        return [(f.name, f.metadata["label"], getattr(self, f.name))
                for f in dataclasses.fields(self) if only is None or f.metadata[only]]
