"""The bias audit of a round: how far its puzzles have drifted from the human seeds.

Synthetic data drifts toward what the model finds easy, and nothing else in a round notices:
every puzzle passed the filter and the sandbox. So each round's data card compares three
populations along four dimensions:

- human: the human seeds, puzzles of origin seed or imported in the train split;
- generated: the round's proposals that entered the store;
- selected: the distinct puzzles of the round's synthetic training examples.

The dimensions are the family mix (a generated puzzle has no family of its own, so it counts
as the families of the few-shot parents its prompt showed), the answer type, and the length in
characters of the checker and of the solution. Lengths are binned at quantiles of the human
distribution, tails included, so a shift toward short (easy) puzzles shows in the lowest bins.
Each dimension gets the total variation distance between the human shares and the round's:
0 for the same distribution, 1 for disjoint ones.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from puzzles.store import Store, StoredPuzzle
from selfplay.compute.attempts import HUMAN_ORIGINS, train_puzzles_with_shortest_solution
from selfplay.config import AuditConfig
POPULATIONS = ("human", "generated", "selected")
COMPARED = ("generated", "selected")
"""The populations measured against the human one."""
DIMENSIONS = {"family": "family", "answer_type": "answer type",
              "checker_length": "checker length (chars)",
              "solution_length": "solution length (chars)"}
LENGTH_QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
"""Bin edges of the length histograms, as quantiles of the human lengths: the outer bins are
the tails, where drift toward trivial or bloated puzzles shows first."""
PERCENTILES = (0.5, 0.9, 0.99)
TABLE_ROWS = 8
"""Categories shown per table; the rest are summed into one row (distances use them all)."""

Shares = dict[str, float]


def total_variation(p: Shares, q: Shares) -> float:
    """Half the L1 distance between two distributions over named categories."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def shares(weights: dict[str, float]) -> Shares:
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()} if total else {}


def quantile(values: list[int], q: float) -> int:
    """Nearest-rank quantile: an actual value, so bin edges read as lengths."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def length_bins(human: list[int]) -> list[int]:
    """Upper edges of the bins (the last bin is open), from the human lengths' quantiles;
    repeated edges, common with few seeds, are merged."""
    return sorted({quantile(human, q) for q in LENGTH_QUANTILES}) if human else []


def bin_label(edges: list[int], i: int) -> str:
    if not edges:
        return "all"
    if i == 0:
        return f"<= {edges[0]}"
    if i == len(edges):
        return f"> {edges[-1]}"
    low, high = edges[i - 1] + 1, edges[i]
    return str(high) if low == high else f"{low}-{high}"


def binned(values: list[int], edges: list[int]) -> dict[str, float]:
    """Counts per bin, every bin present (in order) so tables line up across populations."""
    counts = {bin_label(edges, i): 0.0 for i in range(len(edges) + 1)}
    for v in values:
        i = next((j for j, edge in enumerate(edges) if v <= edge), len(edges))
        counts[bin_label(edges, i)] += 1
    return counts


# -- the populations ----------------------------------------------------------------------

def populations(store: Store, round: int) -> dict[str, list[StoredPuzzle]]:
    human = [sp for sp in store.puzzles(split="train") if sp.origin in HUMAN_ORIGINS]
    synthetic = {ex.puzzle_id for ex in store.train_examples(round) if ex.kind == "synthetic"}
    return {"human": human, "generated": store.puzzles(origin="generated", round=round),
            "selected": [store.puzzle_by_id(pid) for pid in sorted(synthetic)]}


def solution_lengths(store: Store, round: int,
                     puzzles: dict[str, list[StoredPuzzle]]) -> dict[str, list[int]]:
    """Human and generated puzzles count their shortest verified solution (a human solution for
    a human seed: later rounds may add the model's); selected ones the solutions that train."""
    shortest = {p.hash: len(s.source)
                for p, s in train_puzzles_with_shortest_solution(store, human_only=True)}
    generated: dict[int, int] = {}
    for s in store.solutions(round=round, origin="generated"):
        generated[s.puzzle_id] = min(len(s.source), generated.get(s.puzzle_id, math.inf))
    trained = {ex.solution_id for ex in store.train_examples(round) if ex.kind == "synthetic"}
    return {
        "human": [shortest[sp.hash] for sp in puzzles["human"] if sp.hash in shortest],
        "generated": [generated[sp.id] for sp in puzzles["generated"] if sp.id in generated],
        "selected": [len(store.solution(sid).source) for sid in sorted(trained)],
    }


def family_weights(puzzles: list[StoredPuzzle], families_of: dict[str, str]) -> dict[str, float]:
    """Each puzzle weighs 1: a human one on its family, a proposed one split evenly over its
    parents' families (a parent that was itself generated counts as its family, `generated`:
    the model learning from its own output is drift too)."""
    weights: dict[str, float] = defaultdict(float)
    for sp in puzzles:
        parents = [families_of[h] for h in sp.provenance.get("parents", []) if h in families_of]
        if sp.origin in HUMAN_ORIGINS or not parents:
            weights[sp.puzzle.family or "(none)"] += 1.0
        else:
            for family in parents:
                weights[family] += 1.0 / len(parents)
    return dict(weights)


# -- the audit ----------------------------------------------------------------------------

def bias_audit(store: Store, round: int, config: AuditConfig) -> dict:
    """The round's audit as a JSON-ready dict: per dimension the shares of each population, its
    size, the distance of generated and selected from human, and length percentiles."""
    puzzles = populations(store, round)
    families_of = {sp.hash: sp.puzzle.family or "(none)" for sp in store.puzzles()}
    weights = {
        "family": {k: family_weights(v, families_of) for k, v in puzzles.items()},
        # str of the parsed type: `list[int]` and `List[int]` count together.
        "answer_type": {k: dict(Counter(str(sp.puzzle.type) for sp in v))
                        for k, v in puzzles.items()},
    }
    sizes = {"family": {k: len(v) for k, v in puzzles.items()},
             "answer_type": {k: len(v) for k, v in puzzles.items()}}
    lengths = {"checker_length": {k: [len(sp.puzzle.source) for sp in v]
                                  for k, v in puzzles.items()},
               "solution_length": solution_lengths(store, round, puzzles)}
    percentiles = {}
    for dim, values in lengths.items():
        edges = length_bins(values["human"])
        weights[dim] = {k: binned(v, edges) for k, v in values.items()}
        sizes[dim] = {k: len(v) for k, v in values.items()}
        percentiles[dim] = {k: {f"p{round_pct(q)}": quantile(v, q) if v else None
                                for q in PERCENTILES} for k, v in values.items()}
    dims = {}
    for dim in DIMENSIONS:
        dist = {k: shares(w) for k, w in weights[dim].items()}
        dims[dim] = {
            "n": sizes[dim],
            "shares": dist,
            # No distance to or from an empty population: "no drift" would be a false comfort.
            "distance": {k: total_variation(dist["human"], dist[k])
                         if dist["human"] and dist[k] else None for k in COMPARED},
        }
        if dim in percentiles:
            dims[dim]["percentiles"] = percentiles[dim]
    return {"max_distance": config.max_distance, "min_puzzles": config.min_puzzles,
            "dimensions": dims}


def round_pct(q: float) -> str:
    return f"{q * 100:g}"


def audit_warnings(audit: dict, round: int) -> list[str]:
    """One warning per (dimension, population) whose distance passes the bound, for
    populations large enough that the distance is not mostly sampling noise."""
    out = []
    bound = audit["max_distance"]
    for dim, entry in audit["dimensions"].items():
        for who in COMPARED:
            d = entry["distance"][who]
            if d is not None and d > bound and entry["n"][who] >= audit["min_puzzles"]:
                out.append(f"audit: {DIMENSIONS[dim]} of round {round}'s {who} puzzles is "
                           f"{d:.2f} (total variation) from the human seeds', past the bound "
                           f"{bound:.2f} (audit.max_distance)")
    return out


# -- tables -------------------------------------------------------------------------------

Table = tuple[str, list[str], list[list[str]]]
"""(title, column headers, rows of cell text)."""


def audit_tables(audit: dict) -> list[Table]:
    """The audit as tables: distances per dimension first, then one table of shares each."""
    dims = audit["dimensions"]
    summary = [[DIMENSIONS[dim]] + [_dist(e["distance"][who], audit["max_distance"])
                                    for who in COMPARED] for dim, e in dims.items()]
    tables: list[Table] = [(
        f"Bias audit: total variation from the human seeds (bound {audit['max_distance']:.2f})",
        ["dimension", *COMPARED], summary)]
    for dim, e in dims.items():
        # An empty population shows "-", not 0%: it has no shares.
        rows = [[cat] + [_share(e["shares"][who].get(cat, 0.0) if e["shares"][who] else None)
                         for who in POPULATIONS]
                for cat in _categories(dim, e["shares"])]
        rest = [1.0 - sum(e["shares"][who].get(r[0], 0.0) for r in rows)
                if e["shares"][who] else None for who in POPULATIONS]
        if len(rows) < len({k for s in e["shares"].values() for k in s}):
            rows.append(["others"] + [_share(x) for x in rest])
        rows.append(["n"] + [str(e["n"][who]) for who in POPULATIONS])
        for p in (e.get("percentiles") or {}).get("human", {}):
            rows.append([p] + [_num(e["percentiles"][who][p]) for who in POPULATIONS])
        rows.append(["total variation", "-"] + [_dist(e["distance"][who], None)
                                                for who in COMPARED])
        tables.append((f"Bias audit: {DIMENSIONS[dim]}", [DIMENSIONS[dim], *POPULATIONS], rows))
    return tables


def _categories(dim: str, dist: dict[str, Shares]) -> list[str]:
    """Length bins in order; other categories by their largest share, at most TABLE_ROWS."""
    if dim.endswith("_length"):
        return list(dist["human"] or dist["generated"] or dist["selected"])
    every = {k for s in dist.values() for k in s}
    ranked = sorted(every, key=lambda k: (-max(s.get(k, 0.0) for s in dist.values()), k))
    return ranked[:TABLE_ROWS]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value) -> str:
    return "-" if value is None else str(value)


def _dist(value: float | None, bound: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" + (" (!)" if bound is not None and value > bound else "")
