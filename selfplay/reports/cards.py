"""Data cards: one per round, saying what went into the round's training data and whether it
is still healthy.

A card holds the funnel of every stage with its rejection reasons, the synthetic/human mix of
the training set, the answer-type and family mix, the diversity of the round's new puzzles and
their novelty against everything stored before, held-out pass@k and its change from the
previous round, and provenance. Its `warnings` flag the two ways self-play data goes bad
quietly: diversity falling round over round, and synthetic data crowding out the human core.

`build_card` reads only the store and the config, so a card can be rebuilt for any finished
round of any run (the report does that for runs made before cards existed).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from puzzles.errors import PuzzleError
from puzzles.records import atomic_write
from puzzles.similarity import (ShingleIndex, ast_shape, distinct_ngrams,
                                 mean_pairwise_similarity)
from puzzles.store import Store, StoredPuzzle
from puzzles.types import parse_type
from selfplay.config import RunConfig
from selfplay.reports.audit import audit_tables, audit_warnings, bias_audit
from selfplay.reports.summaries import Funnel, RoundRecord, load_summary, round_records

NOVELTY_THRESHOLD = 0.5
"""A new puzzle counts as novel when its nearest earlier puzzle has 3-gram Jaccard below this."""
DIVERSITY_TOLERANCE = 0.10
"""Relative change in a diversity figure that is taken for noise rather than a fall."""


def build_card(store: Store, config: RunConfig, round: int, *,
               log: logging.Logger | None = None) -> dict:
    """The data card of `round` as a JSON-ready dict; warnings also go to `log` if given."""
    record = round_records(store, round).get(round) or RoundRecord(round)
    new = store.puzzles(origin="generated", round=round)
    card = {
        "round": round,
        "stages_done": record.done,
        "funnel": Funnel.of(record, len(store.train_examples(round))).to_dict(),
        "rejected": _rejections(record),
        "training": _training(store, config, round, record.get("train")),
        "new_puzzles": _new_puzzles(store, new),
        "diversity": diversity(new),
        "novelty": novelty(store, new, round),
        "audit": bias_audit(store, round, config.audit),
        "eval": _eval(store, round),
        "provenance": _provenance(store, config, round, record),
        "seconds": dict(record.seconds),
    }
    previous = diversity(store.puzzles(origin="generated", round=round - 1)) if round > 1 \
        else None
    card["warnings"] = (diversity_warnings(card["diversity"], previous, round)
                        + share_warnings(card["training"])
                        + audit_warnings(card["audit"], round))
    if log is not None:
        for warning in card["warnings"]:
            log.warning("round %d card: WARNING %s", round, warning)
    return card


# -- the parts of a card ------------------------------------------------------------------

def _rejections(record: RoundRecord) -> dict:
    """Why items fell out, per stage: filter and dedup reasons, and non-passing verdicts."""
    out = {}
    for stage in ("filter", "dedup"):
        if (summary := record.get(stage)) is not None:
            out[stage] = dict(summary.rejected)
    if (verify := record.get("verify")) is not None:
        out["verify"] = {v: n for v, n in verify.verdicts.items() if v != "pass"}
    return out


def _training(store: Store, config: RunConfig, round: int, train) -> dict:
    examples = store.train_examples(round)
    kinds = Counter(ex.kind for ex in examples)
    puzzles = {pid: store.puzzle_by_id(pid) for pid in {ex.puzzle_id for ex in examples}}
    types = Counter(answer_type_name(puzzles[ex.puzzle_id].puzzle.answer_type)
                    for ex in examples)
    families = Counter(puzzles[ex.puzzle_id].puzzle.family or "(none)" for ex in examples)
    out = {
        "examples": len(examples),
        "synthetic": kinds["synthetic"],
        "human": kinds["human"],
        "human_generated": sum(1 for ex in examples if ex.kind == "human"
                               and puzzles[ex.puzzle_id].origin == "generator"),
        "synthetic_share": kinds["synthetic"] / len(examples) if examples else None,
        "max_synthetic_share": 1 - config.select.human_share,
        "distinct_puzzles": len(puzzles),
        "preference_pairs": len(store.preference_pairs(round)),
        "answer_types": _sorted_counts(types),
        "families": _sorted_counts(families),
    }
    if train is not None:
        out.update(steps=train.steps, first_loss=train.first_loss, last_loss=train.last_loss)
    return out


def _new_puzzles(store: Store, new: list[StoredPuzzle]) -> dict:
    """The round's new puzzles: how many were solved, their answer types and families, and the
    families of the seed puzzles shown in the prompts that produced them."""
    families_of = {sp.hash: sp.puzzle.family or "(none)" for sp in store.puzzles()}
    parents = Counter(families_of[h] for sp in new for h in sp.provenance.get("parents", [])
                      if h in families_of)
    return {
        "count": len(new),
        "solved": sum(1 for sp in new if sp.n_solutions),
        "answer_types": _sorted_counts(Counter(answer_type_name(sp.puzzle.answer_type)
                                               for sp in new)),
        "families": _sorted_counts(Counter(sp.puzzle.family or "(none)" for sp in new)),
        "parent_families": _sorted_counts(parents),
    }


def diversity(puzzles: list[StoredPuzzle]) -> dict:
    """Distinct AST shapes and token 3-grams, and mean pairwise 3-gram Jaccard, of `puzzles`.

    The per-puzzle rates are what rounds are compared on: raw distinct counts grow with the
    number of puzzles, which changes from round to round for reasons unrelated to collapse.
    """
    sources = [sp.puzzle.source for sp in puzzles]
    n = len(sources)
    shapes = len({ast_shape(s) for s in sources})
    grams = distinct_ngrams(sources, 3)
    return {
        "puzzles": n,
        "distinct_ast_shapes": shapes,
        "distinct_3grams": grams,
        "ast_shapes_per_puzzle": shapes / n if n else None,
        "3grams_per_puzzle": grams / n if n else None,
        # One puzzle has no pairs: None, not 0.0, which would read as perfectly diverse.
        "mean_pairwise_similarity": mean_pairwise_similarity(sources) if n >= 2 else None,
    }


def novelty(store: Store, new: list[StoredPuzzle], round: int,
            threshold: float = NOVELTY_THRESHOLD) -> dict:
    """How far the round's new puzzles are from every puzzle stored before the round (seeds,
    imports and earlier rounds' puzzles): the nearest one's 3-gram Jaccard, per new puzzle."""
    index = ShingleIndex(3)
    for sp in store.puzzles():
        if sp.origin != "generated" or (sp.round is not None and sp.round < round):
            index.add(sp.hash, sp.puzzle.source)
    nearest = [index.most_similar(sp.puzzle.source)[1] for sp in new]
    return {
        "threshold": threshold,
        "earlier_puzzles": len(index.keys),
        "novel_share": sum(s < threshold for s in nearest) / len(nearest) if nearest else None,
        "mean_nearest_similarity": sum(nearest) / len(nearest) if nearest else None,
    }


def _eval(store: Store, round: int) -> dict:
    """pass@k of each evaluation set this round, with the previous round's and the change."""
    now = store.metrics(round).get(round, {})
    before = store.metrics(round - 1).get(round - 1, {}) if round > 0 else {}
    out = {}
    for name, entry in eval_sets(now).items():
        previous = eval_sets(before).get(name, {}).get("pass_at_k")
        current = entry.get("pass_at_k", {})
        out[name] = {
            "pass_at_k": current,
            "problems": entry.get("problems"),
            "samples": entry.get("samples"),
            # Evaluation puzzles that some round trained on: must stay 0.
            "leaked": entry.get("leaked"),
            "previous": previous,
            "change": {k: v - previous[k] for k, v in current.items() if previous
                       and k in previous} if previous else None,
        }
    return out


def eval_sets(metrics: dict) -> dict[str, dict]:
    """{set name: {"pass_at_k": ..., ...}} from one round's metrics (`eval/<set>` entries). A
    store with only the bare headline `pass_at_k` gets it as `heldout`, the default set."""
    sets = {name.removeprefix("eval/"): value for name, value in metrics.items()
            if name.startswith("eval/") and isinstance(value, dict)}
    if not sets and "pass_at_k" in metrics:
        sets = {"heldout": {"pass_at_k": metrics["pass_at_k"]}}
    return sets


def _provenance(store: Store, config: RunConfig, round: int, record: RoundRecord) -> dict:
    """Which model and adapter made the round's data, with which sampling settings."""
    proposals = store.proposals(round)
    attempts = store.attempts(round, "solve")
    proposed = proposals[0].provenance if proposals else {}
    solved = attempts[0].provenance if attempts else {}
    before = load_summary("train", store.stage_summary(round - 1, "train")) if round > 1 \
        else None
    train, verify = record.get("train"), record.get("verify")
    return {
        "model": proposed.get("model") or solved.get("model") or config.model.name,
        "model_fingerprint": proposed.get("model_fingerprint")
        or solved.get("model_fingerprint") or "",
        "sampled_from_adapter": (before.adapter_hash if before else "") or "base model",
        "trained_adapter": train.adapter_hash if train else "",
        "propose_sampling": proposed.get("sampling") or {},
        "solve_sampling": solved.get("sampling") or {},
        "verifier": verify.verifier if verify else "",
        "seed": config.seed,
    }


# -- warnings -----------------------------------------------------------------------------

def diversity_warnings(current: dict, previous: dict | None, round: int,
                       tolerance: float = DIVERSITY_TOLERANCE) -> list[str]:
    """A warning for each diversity figure of `round` worse than the previous round's by more
    than `tolerance` (relative)."""
    if not previous or previous["puzzles"] < 2:
        return []
    if current["puzzles"] == 0:
        return [f"diversity: round {round} produced no new puzzles (round {round - 1}: "
                f"{previous['puzzles']})"]
    if current["puzzles"] < 2:
        return [f"diversity: round {round} produced a single new puzzle (round {round - 1}: "
                f"{previous['puzzles']})"]
    out = []
    for key, label in (("ast_shapes_per_puzzle", "distinct AST shapes per new puzzle"),
                       ("3grams_per_puzzle", "distinct token 3-grams per new puzzle")):
        if current[key] < previous[key] * (1 - tolerance):
            out.append(f"diversity: {label} fell from {previous[key]:.2f} in round "
                       f"{round - 1} to {current[key]:.2f}")
    now, then = current["mean_pairwise_similarity"], previous["mean_pairwise_similarity"]
    if now > then * (1 + tolerance) and now - then > 0.01:
        out.append(f"diversity: mean pairwise similarity of new puzzles rose from {then:.2f} "
                   f"in round {round - 1} to {now:.2f}")
    return out


def share_warnings(training: dict) -> list[str]:
    share, bound = training["synthetic_share"], training["max_synthetic_share"]
    if share is None or share <= bound + 1e-9:
        return []
    return [f"synthetic share {share:.2f} of the training examples ({training['synthetic']} "
            f"of {training['examples']}) passes the bound {bound:.2f} (1 - select.human_share)"]


# -- writing ------------------------------------------------------------------------------

def write_card(card: dict, cards_dir: str | Path) -> tuple[Path, Path]:
    """Write `cards_dir/round-N.md` and `round-N.json`; returns both paths."""
    cards_dir = Path(cards_dir)
    md = cards_dir / f"round-{card['round']}.md"
    js = cards_dir / f"round-{card['round']}.json"
    atomic_write(js, json.dumps(card, indent=1, sort_keys=False) + "\n")
    atomic_write(md, card_markdown(card))
    return md, js


def read_card(cards_dir: str | Path, round: int) -> dict | None:
    path = Path(cards_dir) / f"round-{round}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def card_sections(card: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """The card as (section title, [(label, value text)]), for Markdown and HTML alike."""
    f, t, n = card["funnel"], card["training"], card["new_puzzles"]
    d, nov, p = card["diversity"], card["novelty"], card["provenance"]
    sections = [("Funnel", [(label, _num(v)) for _, label, v in Funnel.from_dict(f).rows()])]
    sections.append(("Rejections", [
        (f"{stage}: {reason}", _num(count))
        for stage, reasons in card["rejected"].items() for reason, count in reasons.items()]
        or [("none", "")]))
    sections.append(("Training data", [
        ("examples", _num(t["examples"])),
        ("synthetic / human", f"{t['synthetic']} / {t['human']}"
         + (f" (human (generated): {t['human_generated']})" if t.get("human_generated") else "")),
        ("synthetic share", f"{_num(t['synthetic_share'])} (bound {t['max_synthetic_share']:.2f})"),
        ("distinct puzzles", _num(t["distinct_puzzles"])),
        ("preference pairs", _num(t.get("preference_pairs", 0))),
        ("answer types", _mix(t["answer_types"])),
        ("families", _mix(t["families"])),
    ] + [(k.replace("_", " "), _num(t[k])) for k in ("steps", "first_loss", "last_loss")
         if k in t]))
    sections.append(("New puzzles", [
        ("count", _num(n["count"])), ("solved", _num(n["solved"])),
        ("answer types", _mix(n["answer_types"])), ("families", _mix(n["families"])),
        ("families of prompt examples", _mix(n["parent_families"]))]))
    sections.append(("Diversity of new puzzles", [
        ("distinct AST shapes", _num(d["distinct_ast_shapes"])),
        ("distinct token 3-grams", _num(d["distinct_3grams"])),
        ("AST shapes per puzzle", _num(d["ast_shapes_per_puzzle"])),
        ("3-grams per puzzle", _num(d["3grams_per_puzzle"])),
        ("mean pairwise similarity", _num(d["mean_pairwise_similarity"]))]))
    sections.append(("Novelty against earlier puzzles", [
        ("earlier puzzles compared", _num(nov["earlier_puzzles"])),
        (f"share with nearest similarity < {nov['threshold']}", _num(nov["novel_share"])),
        ("mean nearest similarity", _num(nov["mean_nearest_similarity"]))]))
    rows = []
    for name, e in card["eval"].items():
        for k, v in e["pass_at_k"].items():
            change = (e["change"] or {}).get(k)
            text = _num(v) + (f" ({change:+.3f} from round {card['round'] - 1})"
                              if change is not None else "")
            rows.append((f"{name} pass@{k}", text))
        if e["problems"] is not None:
            rows.append((f"{name} problems x samples",
                         f"{e['problems']} x {_num(e['samples'])}, leaked into training: "
                         f"{_num(e['leaked'])}"))
    sections.append(("Held-out evaluation", rows or [("not evaluated", "")]))
    sections.append(("Provenance", [
        ("model", f"{p['model']} {p['model_fingerprint']}".strip()),
        ("sampled from adapter", p["sampled_from_adapter"]),
        ("trained adapter", p["trained_adapter"] or "-"),
        ("propose sampling", _settings(p["propose_sampling"])),
        ("solve sampling", _settings(p["solve_sampling"])),
        ("verifier", p["verifier"] or "-"), ("run seed", str(p["seed"]))]))
    seconds = card.get("seconds") or {}
    if seconds:
        sections.append(("Time (seconds)", [(stage, f"{s:.1f}") for stage, s in seconds.items()]
                         + [("total", f"{sum(seconds.values()):.1f}")]))
    return sections


def card_markdown(card: dict) -> str:
    lines = [f"# Data card: round {card['round']}", ""]
    if card["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in card["warnings"]] + [""]
    for title, rows in card_sections(card):
        lines += [f"## {title}", "", "| | |", "|---|---|"]
        lines += [f"| {_md(label)} | {_md(value)} |" for label, value in rows]
        lines.append("")
    # Cards written before the audit existed have none.
    for title, header, rows in audit_tables(card["audit"]) if "audit" in card else []:
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


# -- small helpers ------------------------------------------------------------------------

def answer_type_name(annotation: str) -> str:
    """One spelling per type (`list[int]` and `List[int]` count together)."""
    try:
        return str(parse_type(annotation))
    except PuzzleError:
        return annotation


def _sorted_counts(counts: Counter) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _num(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _mix(counts: dict[str, int], top: int = 8) -> str:
    """`name n (share)` for the `top` largest entries, then the rest together."""
    total = sum(counts.values())
    if not total:
        return "-"
    items = list(counts.items())
    parts = [f"{k} {v} ({v / total:.0%})" for k, v in items[:top]]
    if len(items) > top:
        rest = sum(v for _, v in items[top:])
        parts.append(f"{len(items) - top} others {rest} ({rest / total:.0%})")
    return ", ".join(parts)


def _settings(sampling: dict) -> str:
    keys = ("temperature", "top_p", "max_new_tokens")
    return ", ".join(f"{k}={sampling[k]}" for k in keys if k in sampling) or "-"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
