"""The HTML report of a hand-built run: plots exist and are PNGs, model-written code is escaped,
and rounds without a card file still get one."""

import re

import pytest

from puzzles.errors import SelfplayError
from puzzles.format import content_hash, parse_puzzle
from puzzles.store import Store
from selfplay.cli import main
from selfplay.config import RunConfig, config_toml
from selfplay.reports.cards import write_card
from selfplay.reports.report import write_report
from test_cards import card_of, hand_built_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "def f(s: str, t='</script><b>'): return s == t[::-1]"


def run_with_evil_puzzle(path):
    """The hand-built run plus a solved round-1 puzzle whose code and name hold HTML."""
    hand_built_run(path)
    with Store(path / "store.sqlite") as store, store.transaction():
        pid, _ = store.add_puzzle(parse_puzzle(EVIL, name="r1/<i>evil</i>", family="generated",
                                               split="train"), "generated", round=1)
        solution = "def g(t='</script><b>'): return t[::-1]"
        store.add_solution(pid, solution, content_hash(solution), "generated", round=1)
    return path


@pytest.fixture
def run_dir(tmp_path):
    return run_with_evil_puzzle(tmp_path / "run")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(run dir, page text) of one report, shared by the tests that only read it."""
    path = run_with_evil_puzzle(tmp_path_factory.mktemp("report") / "run")
    index = write_report(path)
    assert index == path / "report" / "index.html"
    return path, index.read_text()


def test_report_page_references_png_plots_that_exist(report):
    run_dir, page = report
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 3
    for name in images:
        assert "/" not in name  # relative, beside the page: opens with no server
        assert (run_dir / "report" / name).read_bytes().startswith(PNG_MAGIC)
    assert "<script" not in page.lower()


def test_report_escapes_model_written_code(report):
    _, page = report
    assert "</script><b>" not in page and "<i>evil</i>" not in page
    assert "t=&#x27;&lt;/script&gt;&lt;b&gt;&#x27;" in page  # the puzzle, shown as text
    assert "&lt;i&gt;evil&lt;/i&gt;" in page


def test_report_shows_cards_samples_pass_at_k_and_config(report):
    _, page = report
    assert page.count("<h3>Round 1</h3>") == 2 and page.count("<h3>Round 2</h3>") == 2
    assert "synthetic share 0.90 of the training examples" in page  # round 2's warning
    assert "heldout pass@1</td><td>0.120 (-0.030 from round 1)" in page
    assert "base model" in page  # round 0's row in the summary table
    assert "def g(n=5):" in page  # a solved round-1 puzzle's solution
    assert "[select]" in page and "human_share = 0.25" in page  # the run's config


def test_report_plots_the_bias_audit_and_shows_its_tables(report):
    run_dir, page = report
    assert '<img src="audit.png"' in page
    assert (run_dir / "report" / "audit.png").read_bytes().startswith(PNG_MAGIC)
    assert page.count("Bias audit: answer type</th>") == 2  # one table per round's card
    assert "<td>arith</td><td>50%</td>" in page  # the human seeds' family mix


def test_report_prefers_the_card_file_and_builds_missing_ones(run_dir):
    card = card_of(run_dir, 1)
    card["warnings"] = ["written by the card stage"]
    write_card(card, run_dir / "cards")
    page = write_report(run_dir).read_text()
    assert "written by the card stage" in page  # round 1 from its file
    assert "synthetic share 0.90" in page  # round 2 built on the fly
    assert not (run_dir / "cards" / "round-2.json").exists()


def test_report_command_prints_the_path(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report" / "index.html")


def test_report_of_a_run_that_has_not_started(tmp_path):
    (tmp_path / "config.toml").write_text(config_toml(RunConfig()))
    with pytest.raises(SelfplayError, match="no store yet"):
        write_report(tmp_path)


def test_report_of_a_run_with_only_the_base_model_evaluated(tmp_path):
    (tmp_path / "config.toml").write_text(config_toml(RunConfig()))
    with Store(tmp_path / "store.sqlite") as store, store.transaction():
        store.mark_stage_done(0, "seed", {"puzzles": 0})
        store.set_metric(0, "pass_at_k", {"1": 0.25})
    index = write_report(tmp_path)
    page = index.read_text()
    assert "No rounds have run yet." in page and "0.250" in page
    for name in re.findall(r'<img src="([^"]+)"', page):
        assert (index.parent / name).read_bytes().startswith(PNG_MAGIC)


def test_a_round_stopped_before_training_shows_in_progress(run_dir):
    with Store(run_dir / "store.sqlite") as store, store.transaction():
        store.mark_stage_done(3, "propose", {"proposed": 0, "prompts": 2})
    page = write_report(run_dir).read_text()
    [row] = [line for line in page.splitlines() if line.startswith("<tr><td>3</td>")]
    assert "in progress" in row and "0 (0 / 0)" not in row
    [row] = [line for line in page.splitlines() if line.startswith("<tr><td>2</td>")]
    assert "in progress" not in row


def test_a_panel_with_nothing_to_plot_says_no_data():
    from selfplay.reports.report import _figure, _note_if_no_data

    def texts(ax):
        return [t.get_text() for t in ax.texts]
    fig, (empty, full, bars) = _figure(6, 2, 3)
    empty.plot([1, 2], [float("nan")] * 2)
    empty.bar([1, 2], [0, 0])
    full.plot([1, 2], [float("nan"), 0.5])
    bars.bar([1, 2], [0, 3])
    for ax in (empty, full, bars):
        _note_if_no_data(ax)
    assert texts(empty) == ["no data"] and texts(full) == [] and texts(bars) == []
    _, (left,) = _figure(3, 2)
    left.bar([1], [0])
    twin = left.twinx()
    twin.plot([1], [2.0])
    _note_if_no_data(left, twin)  # the twin's line is data for the panel
    assert texts(left) == []
