"""The bias audit: its distance on distributions we can work out by hand, the card's audit of the
hand-built run (every share one we put in), its warnings, and a tiny real run's card and report."""

import dataclasses

import pytest

from puzzles.errors import SelfplayError
from puzzles.store import Store
from selfplay.config import AuditConfig, RunConfig, fingerprint
from selfplay.reports.audit import binned, length_bins, shares, total_variation
from selfplay.reports.cards import build_card, card_markdown
from test_cards import hand_built_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return hand_built_run(tmp_path_factory.mktemp("audit") / "run")


def card_of(run_dir, round, audit=AuditConfig()):
    with Store(run_dir / "store.sqlite") as store:
        return build_card(store, RunConfig(audit=audit), round)


def test_total_variation_is_0_for_identical_and_1_for_disjoint_distributions():
    p = {"int": 0.5, "str": 0.25, "List[int]": 0.25}
    assert total_variation(p, dict(p)) == 0.0
    assert total_variation(p, {"float": 0.6, "bool": 0.4}) == 1.0
    assert total_variation(p, {"int": 1.0}) == pytest.approx(0.5)
    assert total_variation(shares({"a": 3, "b": 1}), shares({"a": 1, "b": 3})) == 0.5


def test_length_bins_follow_the_human_quantiles_tails_included():
    human = list(range(1, 101))
    edges = length_bins(human)
    assert edges == [1, 10, 25, 50, 75, 90, 99]
    counts = binned(human, edges)
    assert list(counts) == ["<= 1", "2-10", "11-25", "26-50", "51-75", "76-90", "91-99", "> 99"]
    assert list(counts.values()) == [1, 9, 15, 25, 25, 15, 9, 1]
    # Everything shorter than the shortest human puzzle lands in the lowest tail: far off.
    short = binned([1] * 10, edges)
    assert total_variation(shares(counts), shares(short)) == pytest.approx(0.99)
    assert binned([5, 500], []) == {"all": 2}  # no human lengths: one bin, no edges


def test_card_audits_generated_and_selected_puzzles_against_the_human_seeds(run_dir):
    dims = card_of(run_dir, 1)["audit"]["dimensions"]
    family, types = dims["family"], dims["answer_type"]
    # Human: the four train seeds (s1, s2 arith; s3 strings; s4 lists), not the held-out one.
    assert family["n"] == {"human": 4, "generated": 3, "selected": 2}
    assert family["shares"]["human"] == {"arith": 0.5, "strings": 0.25, "lists": 0.25}
    # Proposals count as their parents' families, each puzzle weighing one: p0 (s1, s2),
    # p1 (s3), p2 (s4, s1). Selected: the two puzzles of the synthetic examples, p0 and p1.
    assert family["shares"]["generated"] == pytest.approx(
        {"arith": 0.5, "strings": 1 / 3, "lists": 1 / 6})
    assert family["shares"]["selected"] == {"arith": 0.5, "strings": 0.5}
    assert family["distance"] == pytest.approx({"generated": 1 / 12, "selected": 0.25})
    assert types["shares"]["generated"] == pytest.approx(
        {"int": 1 / 3, "str": 1 / 3, "List[int]": 1 / 3})
    assert types["distance"] == pytest.approx({"generated": 1 / 6, "selected": 0.25})
    # Solutions: the shortest per solved puzzle (two of three), the three that train.
    assert dims["solution_length"]["n"] == {"human": 4, "generated": 2, "selected": 3}
    checker = dims["checker_length"]
    assert sum(checker["shares"]["human"].values()) == pytest.approx(1.0)
    assert checker["percentiles"]["human"]["p50"] == 54
    # Round 2 proposed from s1 only: all arith, half the human mix away.
    assert card_of(run_dir, 2)["audit"]["dimensions"]["family"]["distance"][
        "generated"] == pytest.approx(0.5)


def test_card_markdown_shows_the_audit_tables(run_dir):
    md = card_markdown(card_of(run_dir, 1))
    assert "## Bias audit: total variation from the human seeds (bound 0.50)" in md
    assert "| dimension | generated | selected |" in md
    assert "| family | 0.08 | 0.25 |" in md
    assert "| family | human | generated | selected |" in md
    assert "| arith | 50% | 50% | 50% |" in md and "| lists | 25% | 17% | 0% |" in md
    assert "| List[int] | 25% | 33% | 0% |" in md
    assert "| n | 4 | 3 | 2 |" in md and "| p50 | 54 | 78 | 59 |" in md


def test_a_distance_past_the_bound_warns_when_the_population_is_large_enough(run_dir):
    # By default the hand-built rounds are too small to warn (min_puzzles 10).
    assert not any(w.startswith("audit:") for w in card_of(run_dir, 2)["warnings"])
    card = card_of(run_dir, 2, AuditConfig(max_distance=0.45, min_puzzles=1))
    warnings = [w for w in card["warnings"] if w.startswith("audit:")]
    assert ("audit: family of round 2's generated puzzles is 0.50 (total variation) from the "
            "human seeds', past the bound 0.45 (audit.max_distance)") in warnings
    assert all(card["audit"]["dimensions"][dim]["distance"][who] > 0.45
               for dim in ("family", "answer_type") for who in ("generated", "selected"))
    assert card_of(run_dir, 2, AuditConfig(max_distance=1.0, min_puzzles=1))["warnings"] \
        == card_of(run_dir, 2)["warnings"]
    # A flagged distance is marked in the table too.
    assert "| family | 0.50 (!) |" in card_markdown(card)


def test_audit_bounds_are_checked_and_free_to_change_on_resume():
    with pytest.raises(SelfplayError, match="audit.max_distance"):
        AuditConfig(max_distance=1.5)
    config = RunConfig()
    assert fingerprint(dataclasses.replace(config, audit=AuditConfig(0.2, 3))) \
        == fingerprint(config)


@pytest.mark.slow
def test_a_tiny_two_round_run_has_the_audit_in_its_cards_and_report(tmp_path, monkeypatch,
                                                                    tiny_model):
    import training.sampling
    from selfplay.cli import main
    from selfplay.loop import run
    from selfplay.reports.report import write_report
    from test_round_scripted import scripted_sample

    scripted_sample.proposed = []
    monkeypatch.setattr(training.sampling, "sample", scripted_sample)
    path = tmp_path / "run"
    assert main(["init", str(path), "--preset", "tiny"]) == 0
    run(path, rounds=2)
    for r in (1, 2):
        md = (path / "cards" / f"round-{r}.md").read_text()
        assert "## Bias audit: answer type" in md and "| total variation | - |" in md
    page = write_report(path).read_text()
    assert '<img src="audit.png"' in page and "Bias audit: checker length" in page
    assert (path / "report" / "audit.png").read_bytes().startswith(PNG_MAGIC)
