"""Paired bootstrap intervals over problems: is a change in pass@k more than sampling luck?

Two measurements of the same problems (round r against round 0 of one arm, or two arms at the
same round) give one difference per problem. Resampling the problems with replacement and
taking the mean difference each time gives the spread a different draw of problems would
have shown; the middle `level` of those means is the interval. Pairing matters: a hard
problem is hard for both sides, so the per-problem differences vary far less than the scores.

What it does not cover: the randomness of the samples within a problem (each problem's score is
taken as it was measured), and problems beyond the set (the set is the population). Seeded, so
the same inputs always give the same interval.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from selfplay.evaluation.passk import pass_at_k


@dataclass(frozen=True)
class Interval:
    """A mean difference (after - before) over problems with its bootstrap interval."""

    estimate: float
    low: float
    high: float
    level: float
    problems: int

    @property
    def above_zero(self) -> bool:
        return self.low > 0

    @property
    def below_zero(self) -> bool:
        return self.high < 0

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self, digits: int = 3) -> str:
        return (f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, "
                f"{self.high:+.{digits}f}]")


def paired_bootstrap(before: Sequence[float], after: Sequence[float], *, level: float = 0.9,
                     resamples: int = 2000, seed: int | str = 0) -> Interval:
    """The mean of after[i] - before[i] over problems i, with a percentile bootstrap interval
    from `resamples` resamplings of the problems (seeded by `seed`)."""
    if len(before) != len(after):
        raise ValueError(f"paired scores need the same problems: {len(before)} against "
                         f"{len(after)}")
    if not before:
        raise ValueError("no problems to compare")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    diffs = [b - a for a, b in zip(before, after)]
    n = len(diffs)
    rng = random.Random(_seed(seed))
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    return Interval(estimate=sum(diffs) / n, low=_quantile(means, tail),
                    high=_quantile(means, 1 - tail), level=level, problems=n)


def per_problem_pass_at_k(counts: Mapping[str, tuple[int, int]], k: int) -> dict[str, float]:
    """{problem: pass@k} from {problem: (samples n, passes c)}; the mean of the values is the
    set's pass@k (`selfplay.evaluation.passk.mean_pass_at_k`)."""
    return {key: pass_at_k(n, c, k) for key, (n, c) in counts.items()}


def paired_pass_at_k(before: Mapping[str, tuple[int, int]],
                     after: Mapping[str, tuple[int, int]], k: int, **bootstrap) -> Interval:
    """The change in pass@k from `before` to `after` ({problem: (n, c)} each) over the
    problems both measured, with its paired bootstrap interval."""
    shared = sorted(set(before) & set(after))
    a = per_problem_pass_at_k({p: before[p] for p in shared}, k)
    b = per_problem_pass_at_k({p: after[p] for p in shared}, k)
    return paired_bootstrap([a[p] for p in shared], [b[p] for p in shared], **bootstrap)


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly between order statistics (the
    default of numpy.quantile)."""
    position = q * (len(ordered) - 1)
    lo = math.floor(position)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def _seed(seed: int | str) -> int:
    # A label ("heldout:selfplay:r2:k10") seeds its own stream, the same in every process
    # (Python's str hash is salted per process).
    if isinstance(seed, int):
        return seed
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
