"""Typed stage summaries and the one funnel: status, data card and report show the same numbers,
all from `selfplay.reports.summaries.Funnel`, and summaries stored before they were typed still load."""

import dataclasses

import matplotlib.axes
import pytest

from puzzles.store import Store
from selfplay.config import RunConfig
from selfplay.loop import status, status_of
from selfplay.reports.cards import build_card, card_sections
from selfplay.reports.report import write_report
from selfplay.reports.summaries import (SUMMARY_TYPES, Funnel, TrainStageSummary, load_summary,
                                round_records, summary_to_dict)
from test_cards import hand_built_run

ROUND1 = {"proposed": 6, "valid": 4, "novel": 3, "solve_targets": 3, "attempts": 12,
          "parsed": 10, "passed": 5, "solved": 2, "new_pairs": 3, "selected": 2, "train_examples": 4,
          # A select summary stored before these counts read them as 0 (its dataclass default).
          "own_solved": 0, "own_solved_by_solver": 0, "human_solved": 0, "own_pairs": 0}


@pytest.fixture
def run_dir(tmp_path):
    return hand_built_run(tmp_path / "run")


def test_status_card_and_report_show_one_funnel(run_dir, monkeypatch):
    shown = [name for name, _, _ in Funnel().rows(only="status")]
    plotted = [label for _, label, _ in Funnel().rows(only="plot")]
    with Store(run_dir / "store.sqlite") as store:
        record = round_records(store)[1]
        funnel = Funnel.of(record, len(store.train_examples(1)))
        card = build_card(store, RunConfig(), 1)
    assert funnel.to_dict() == ROUND1
    # Status: the steps marked for it, with the funnel's numbers.
    line = status(run_dir)["rounds"][1]["funnel"]
    assert list(line) == shown and line == {k: ROUND1[k] for k in shown}
    # The card: every step, with the same numbers, and its Markdown/HTML rows from the labels.
    assert card["funnel"] == ROUND1
    [rows] = [rows for title, rows in card_sections(card) if title == "Funnel"]
    assert rows == [(label, str(n)) for _, label, n in funnel.rows()]
    # The report's funnel plot: the steps marked for it, labelled and counted alike.
    bars, ticks = [], []
    real_bar, real_ticks = matplotlib.axes.Axes.bar, matplotlib.axes.Axes.set_xticks
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", lambda ax, xs, values, *a, **kw: (
        bars.append(list(values)), real_bar(ax, xs, values, *a, **kw))[1])
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xticks", lambda ax, ticks_, labels=None,
                        **kw: (ticks.append(labels), real_ticks(ax, ticks_, labels, **kw))[1])
    write_report(run_dir)
    assert bars[0] == [ROUND1[name] for name, _, _ in funnel.rows(only="plot")]
    assert plotted in ticks


def test_round_zero_and_unfinished_stages_read_as_zero_in_status_and_none_on_the_card(run_dir):
    with Store(run_dir / "store.sqlite") as store:
        result = status_of(store, RunConfig())
        record = round_records(store)[0]
    assert result["rounds"][0]["funnel"] == dict.fromkeys(result["rounds"][0]["funnel"], 0)
    assert set(Funnel.of(record, 0).to_dict().values()) == {None}


def test_every_stage_summary_round_trips_through_the_store(tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        with store.transaction():
            for i, (stage, cls) in enumerate(SUMMARY_TYPES.items()):
                values = {f.name: {"a": i} if "dict" in str(f.type) else
                          f"x{i}" if f.type == "str" else i for f in dataclasses.fields(cls)}
                store.mark_stage_done(1, stage, {**summary_to_dict(cls(**values)),
                                                 "seconds": 1.5})
        record = round_records(store)[1]
    assert record.done == list(SUMMARY_TYPES)
    for i, (stage, cls) in enumerate(SUMMARY_TYPES.items()):
        assert type(record.get(stage)) is cls
        assert record.seconds[stage] == 1.5


def test_summaries_stored_by_earlier_versions_still_load():
    # Keys a summary type does not know are left; keys it lacks take their defaults.
    old = {"steps": 8, "first_loss": 2.0, "last_loss": 1.5, "lr": 1e-4, "seconds": 12.0}
    train = load_summary("train", old)
    assert train == TrainStageSummary(steps=8, first_loss=2.0, last_loss=1.5, seconds=12.0)
    assert load_summary("eval", {"heldout": {"pass_at_k": {}}}) == {"heldout": {"pass_at_k": {}}}
    assert load_summary("verify", None) is None
    # A card written before the funnel had `passed` and `train_examples`.
    older_card = {k: v for k, v in ROUND1.items() if k not in (
        "passed", "train_examples", "own_solved", "own_solved_by_solver", "human_solved",
        "own_pairs")}
    funnel = Funnel.from_dict(older_card)
    assert funnel.passed is None and funnel.proposed == 6 and funnel.own_solved is None
    assert [n for _, _, n in funnel.rows(only="plot")] == [6, 4, 3, 2, None, 2, None]


def test_each_stage_returns_the_summary_type_it_is_stored_as():
    # The stage list (selfplay.stages) and the summary types a store's rows load as
    # (SUMMARY_TYPES) are two tables; this keeps them in step: a stage added to a round without
    # its type, or a type whose stage is gone or returns something else, fails here.
    import importlib
    import typing

    from selfplay.stages import ROUND0_STAGES, ROUND_STAGES

    stages = dict.fromkeys(ROUND0_STAGES + ROUND_STAGES)
    assert set(SUMMARY_TYPES) == set(stages) - {"eval"}  # eval's is {set: metric}, a dict
    for stage in stages:
        returned = typing.get_type_hints(importlib.import_module(f"selfplay.stages.{stage}").run)
        assert returned["return"] is SUMMARY_TYPES.get(stage, dict), stage
