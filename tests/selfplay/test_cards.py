"""Data cards checked against a small hand-built run: every number on the card is one we put in."""

import json
import logging

import pytest

from puzzles.format import content_hash, parse_puzzle
from puzzles.store import Attempt, Proposal, Store
from selfplay.config import RunConfig, config_toml
from selfplay.context import Resources, RoundContext
from selfplay.reports.cards import build_card, write_card
from selfplay.reports.summaries import CardSummary
from selfplay.rundir import RunDir
from selfplay.stages import card as card_stage

SEEDS = {  # name: (family, split, source, solution)
    "s1": ("arith", "train", "def f(x: int, a=17, b=5): return a * x + b == 107",
           "def g(a=17, b=5): return (107 - b) // a"),
    "s2": ("arith", "train", "def f(n: int, t=50): return n * n > t and (n - 1) * (n - 1) <= t",
           "def g(t=50): return 8"),
    "s3": ("strings", "train", "def f(s: str, c='ab', k=3): return s == c * k",
           "def g(c='ab', k=3): return c * k"),
    "s4": ("lists", "train",
           "def f(li: list[int], n=4): return len(li) == n and sorted(li) == li "
           "and len(set(li)) == n", "def g(n=4): return list(range(n))"),
    "h1": ("geometry", "heldout",
           "def f(p: list[float], r=2.0): return abs(p[0] ** 2 + p[1] ** 2 - r * r) < 1e-6",
           "def g(r=2.0): return [r, 0.0]"),
}
# Round 1: three unlike puzzles. Round 2: four near-copies of one another, and a one-constant
# edit of round 1's first puzzle.
ROUND1 = [
    ("def f(x: int, m=7, r=3): return x % m == r and x > 100", ["s1", "s2"],
     ["def g(m=7, r=3): return 101 + (r - 101) % m", "def g(m=7, r=3): return 7 * 15 + r"]),
    ("def f(s: str, n=5): return len(s) == n and s.upper() == s and s.isalpha()", ["s3"],
     ["def g(n=5): return 'A' * n"]),
    ("def f(li: List[int], t=20): return sum(li) == t and all(v % 2 == 0 for v in li) "
     "and len(li) >= 3", ["s4", "s1"], []),
]
ROUND2 = [(f"def f(x: int, a={i}): return x + a == 10", ["s1"], [f"def g(a={i}): return 10 - a"])
          for i in range(1, 5)]
ROUND2.append(("def f(x: int, m=7, r=4): return x % m == r and x > 100", ["s1"], []))

SUMMARIES = {
    1: {"propose": {"proposed": 6, "prompts": 2, "seconds": 3.5},
        "filter": {"valid": 4, "checked": 6, "rejected": {"invalid:syntax": 1, "trivial": 1}},
        "dedup": {"novel": 3, "rejected": {"duplicate": 1}},
        "solve": {"targets": 3, "attempts": 12, "parsed": 10},
        "verify": {"verdicts": {"fail": 5, "pass": 5, "rejected": 2}, "verifier": "sandbox-1"},
        "select": {"solved": 2, "new_pairs": 3, "selected": 2, "synthetic": 3, "human": 1},
        "train": {"steps": 8, "first_loss": 2.0, "last_loss": 1.5, "examples": 4,
                  "adapter_hash": "adapter-r1", "seconds": 12.0}},
    2: {"propose": {"proposed": 8, "prompts": 2},
        "filter": {"valid": 6, "checked": 8,
                   "rejected": {"invalid:truncated": 1, "nondeterministic": 1}},
        "dedup": {"novel": 5, "rejected": {"near_duplicate": 1}},
        "solve": {"targets": 5, "attempts": 20, "parsed": 18},
        "verify": {"verdicts": {"fail": 8, "pass": 10, "rejected": 2}, "verifier": "sandbox-1"},
        "select": {"solved": 4, "new_pairs": 9, "selected": 4, "synthetic": 9, "human": 1},
        "train": {"steps": 8, "first_loss": 1.4, "last_loss": 1.1, "examples": 10,
                  "adapter_hash": "adapter-r2"}},
}
HELDOUT = {0: {"1": 0.10, "10": 0.30}, 1: {"1": 0.15, "10": 0.40}, 2: {"1": 0.12, "10": 0.35}}
P3 = {0: {"1": 0.02, "10": 0.05}, 1: {"1": 0.03, "10": 0.08}, 2: {"1": 0.03, "10": 0.09}}
PROPOSE_SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 96}
SOLVE_SAMPLING = {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 64}


def hand_built_run(path):
    """A run directory whose store holds seeds, two rounds and three evaluations, built by
    hand; returns (run dir, {name: puzzle id}, {name: [solution ids]})."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.toml").write_text(config_toml(RunConfig()))
    ids, sols, hashes = {}, {}, {}

    def add(store, name, source, family, split, origin, round, solutions, parents=()):
        puzzle = parse_puzzle(source, name=name, family=family, split=split)
        provenance = {} if origin == "seed" else {
            "model": "tiny", "model_fingerprint": "fp123", "adapter_round": round - 1,
            "sampling": PROPOSE_SAMPLING, "parents": [hashes[p] for p in parents]}
        ids[name], _ = store.add_puzzle(puzzle, origin, round=round, provenance=provenance)
        hashes[name] = puzzle.hash
        sols[name] = []
        for s in solutions:
            store.add_solution(ids[name], s, content_hash(s), origin, round=round)
            sols[name].append(store.solutions(ids[name])[-1].id)
        return puzzle

    with Store(path / "store.sqlite") as store, store.transaction():
        for name, (family, split, source, solution) in SEEDS.items():
            add(store, name, source, family, split, "seed", None, [solution])
        store.mark_stage_done(0, "seed", {"puzzles": 5, "solutions": 5, "rejected": 0})
        for r, puzzles in ((1, ROUND1), (2, ROUND2)):
            for i, (source, parents, solutions) in enumerate(puzzles):
                name = f"r{r}/p{i}"
                puzzle = add(store, name, source, "generated", "train", "generated", r,
                             solutions, parents)
                store.add_proposals([Proposal(r, i, 0, source, puzzle.source, puzzle.hash,
                                              "novel", provenance={"model": "tiny",
                                              "model_fingerprint": "fp123",
                                              "sampling": PROPOSE_SAMPLING})])
                # Four attempts each: as many passes as the puzzle has solutions.
                store.add_attempts([Attempt(
                    r, "solve", puzzle.hash, a, "completion",
                    verdict="pass" if a < len(solutions) else "fail",
                    provenance={"model": "tiny", "sampling": SOLVE_SAMPLING}) for a in range(4)])
            for stage, summary in SUMMARIES[r].items():
                store.mark_stage_done(r, stage, summary)
        store.set_train_examples(1, [
            (ids["r1/p0"], sols["r1/p0"][0], "synthetic"),
            (ids["r1/p0"], sols["r1/p0"][1], "synthetic"),
            (ids["r1/p1"], sols["r1/p1"][0], "synthetic"),
            (ids["s1"], sols["s1"][0], "human")])
        store.set_train_examples(2, [(ids[f"r2/p{i % 4}"], sols[f"r2/p{i % 4}"][0], "synthetic")
                                     for i in range(9)] + [(ids["s3"], sols["s3"][0], "human")])
        for r in (0, 1, 2):
            store.set_metric(r, "pass_at_k", HELDOUT[r])
            store.set_metric(r, "eval/heldout", {"pass_at_k": HELDOUT[r], "problems": 12,
                                                 "samples": 10})
            store.set_metric(r, "eval/p3", {"pass_at_k": P3[r], "problems": 50, "samples": 10})
    return path


@pytest.fixture
def run_dir(tmp_path):
    return hand_built_run(tmp_path / "run")


def card_of(run_dir, round, **kw):
    with Store(run_dir / "store.sqlite") as store:
        return build_card(store, RunConfig(), round, **kw)


def test_card_funnel_and_rejection_reasons_match_the_stage_summaries(run_dir):
    card = card_of(run_dir, 1)
    assert card["funnel"] == {"proposed": 6, "valid": 4, "novel": 3, "solve_targets": 3,
                              "attempts": 12, "parsed": 10, "passed": 5, "solved": 2, "new_pairs": 3,
                              "selected": 2, "train_examples": 4, "own_solved": 0,
                              "own_solved_by_solver": 0, "human_solved": 0, "own_pairs": 0}
    assert card["rejected"] == {"filter": {"invalid:syntax": 1, "trivial": 1},
                                "dedup": {"duplicate": 1}, "verify": {"fail": 5, "rejected": 2}}
    assert card_of(run_dir, 2)["rejected"]["dedup"] == {"near_duplicate": 1}


def test_card_training_mix_counts_the_rounds_examples(run_dir):
    one, two = card_of(run_dir, 1)["training"], card_of(run_dir, 2)["training"]
    assert (one["examples"], one["synthetic"], one["human"]) == (4, 3, 1)
    assert one["synthetic_share"] == 0.75 and one["max_synthetic_share"] == 0.75
    assert one["families"] == {"generated": 3, "arith": 1}
    assert one["answer_types"] == {"int": 3, "str": 1}
    assert (two["synthetic"], two["human"], two["synthetic_share"]) == (9, 1, 0.9)
    assert two["distinct_puzzles"] == 5


def test_card_new_puzzles_mix_diversity_and_novelty(run_dir):
    one, two = card_of(run_dir, 1), card_of(run_dir, 2)
    assert one["new_puzzles"]["count"] == 3 and one["new_puzzles"]["solved"] == 2
    # `List[int]` and `list[int]` are one type.
    assert one["new_puzzles"]["answer_types"] == {"List[int]": 1, "int": 1, "str": 1}
    assert one["new_puzzles"]["parent_families"] == {"arith": 3, "lists": 1, "strings": 1}
    assert one["diversity"]["distinct_ast_shapes"] == 3
    assert two["diversity"]["distinct_ast_shapes"] == 2 and two["diversity"]["puzzles"] == 5
    assert two["diversity"]["mean_pairwise_similarity"] > one["diversity"][
        "mean_pairwise_similarity"]
    # Round 2 is compared with the 5 seeds and round 1's 3 puzzles, not with itself: the four
    # near-copies are new, the one-constant edit of a round-1 puzzle is not.
    assert one["novelty"]["earlier_puzzles"] == 5 and one["novelty"]["novel_share"] == 1.0
    assert two["novelty"]["earlier_puzzles"] == 8 and two["novelty"]["novel_share"] == 0.8


def test_card_pass_at_k_with_change_from_previous_round(run_dir):
    one, two = card_of(run_dir, 1)["eval"], card_of(run_dir, 2)["eval"]
    assert set(one) == {"heldout", "p3"}
    assert one["heldout"]["pass_at_k"] == HELDOUT[1] and one["heldout"]["previous"] == HELDOUT[0]
    assert one["heldout"]["change"] == pytest.approx({"1": 0.05, "10": 0.10})
    assert two["heldout"]["change"] == pytest.approx({"1": -0.03, "10": -0.05})
    assert two["p3"]["change"] == pytest.approx({"1": 0.0, "10": 0.01})
    assert one["heldout"]["problems"] == 12


def test_card_provenance_and_stage_times(run_dir):
    p1, p2 = card_of(run_dir, 1)["provenance"], card_of(run_dir, 2)["provenance"]
    assert (p1["model"], p1["model_fingerprint"]) == ("tiny", "fp123")
    assert p1["sampled_from_adapter"] == "base model" and p1["trained_adapter"] == "adapter-r1"
    assert p2["sampled_from_adapter"] == "adapter-r1" and p2["trained_adapter"] == "adapter-r2"
    assert p1["propose_sampling"] == PROPOSE_SAMPLING and p1["solve_sampling"] == SOLVE_SAMPLING
    assert p1["verifier"] == "sandbox-1"
    assert card_of(run_dir, 1)["seconds"] == {"propose": 3.5, "train": 12.0}


def test_warnings_for_diversity_drop_and_synthetic_share(run_dir):
    assert card_of(run_dir, 1)["warnings"] == []  # 0.75 synthetic is at the bound, not past
    warnings = card_of(run_dir, 2)["warnings"]
    assert any("AST shapes per new puzzle fell from 1.00 in round 1 to 0.40" in w
               for w in warnings)
    assert any("mean pairwise similarity" in w for w in warnings)
    assert any(w.startswith("synthetic share 0.90") and "bound 0.75" in w for w in warnings)


def test_card_stage_writes_markdown_and_json_and_logs_warnings(run_dir, caplog):
    log = logging.getLogger("test_cards.run")
    with Store(run_dir / "store.sqlite") as store:
        ctx = RoundContext(2, RunConfig(), store, RunDir(run_dir), Resources(RunConfig()), log)
        with caplog.at_level(logging.WARNING, logger="test_cards.run"):
            summary = card_stage.run(ctx)
    card = json.loads((run_dir / "cards" / "round-2.json").read_text())
    assert summary == CardSummary(len(card["warnings"]), "cards/round-2.md")
    assert card == card_of(run_dir, 2)
    assert len([r for r in caplog.records if "WARNING synthetic share" in r.getMessage()]) == 1
    md = (run_dir / "cards" / "round-2.md").read_text()
    assert "## Warnings" in md and "| synthetic / human | 9 / 1 |" in md
    assert "| heldout pass@1 | 0.120 (-0.030 from round 1) |" in md


def test_write_card_round_trips(tmp_path, run_dir):
    card = card_of(run_dir, 1)
    md, js = write_card(card, tmp_path / "cards")
    assert md.name == "round-1.md" and js.name == "round-1.json"
    assert json.loads(js.read_text()) == card
    assert "## Warnings" not in md.read_text() and "| proposed | 6 |" in md.read_text()
