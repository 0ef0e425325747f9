"""The learning benchmark: the comparison on hand-made measurements, and the quick mode end to end
through its command (`bench/learn.py --quick`)."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from puzzles.errors import SelfplayError
from puzzles.store import Store
from selfplay.config import load_config
from selfplay.evaluation.evalsets import load_eval_set
from selfplay.learnbench import (ArmData, BenchSettings, arm_config, compare, compare_runs,
                                 eval_sets, markdown, plot, prepare, quick_settings)

ROOT = Path(__file__).resolve().parents[2]
P3 = ROOT.parent / "shared" / "data" / "p3" / "puzzles.json"


def _learn_command():
    spec = importlib.util.spec_from_file_location("bench_learn", ROOT / "bench" / "learn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _arm(by_round: dict[int, dict[str, tuple[int, int]]], parents=None) -> ArmData:
    counts = {("heldout", r): c for r, c in by_round.items()}
    return ArmData(counts, {key: {h: (parents or {}).get(h, ()) for h in c}
                            for key, c in counts.items()}, [])


def test_compare_pairs_rounds_and_arms_on_hand_made_counts(tmp_path):
    problems = ["a", "b", "c", "d"]
    none = {p: (20, 0) for p in problems}
    # Control: unchanged by its round. Self-play: every problem solved 10 times of 20 in round 1.
    control = _arm({0: none, 1: none})
    selfplay = _arm({0: none, 1: {p: (20, 10) for p in problems}}, parents={"a": ("x",)})
    settings = quick_settings()
    report = compare({"selfplay": selfplay, "control": control}, settings, ("heldout",))
    rows = {(r["arm"], r["round"]): r for r in report["rows"]}
    assert set(rows) == {("selfplay", 0), ("selfplay", 1), ("control", 0), ("control", 1)}
    up = rows[("selfplay", 1)]
    assert up["pass_at_k"] == {"1": 0.5, "10": pytest.approx(1 - 1 / 184756)}
    # A shift every problem shares: the interval is degenerate at the shift.
    for key in ("vs_round0", "vs_control"):
        i = up[key]["1"]
        assert (i["estimate"], i["low"], i["high"]) == (0.5, 0.5, 0.5)
        assert i["problems"] == 4 and i["level"] == 0.9
    # Identical measurements: degenerate at 0; the control is not compared with itself.
    same = rows[("selfplay", 0)]["vs_control"]["10"]
    assert (same["estimate"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert rows[("control", 1)]["vs_control"] is None
    assert rows[("control", 0)]["vs_round0"] is None
    assert rows[("control", 1)]["vs_round0"]["1"]["high"] == 0.0
    # The pairing checks see the one prompt whose few-shot examples differ.
    assert [c["prompts_with_other_examples"] for c in report["checks"]] == [1, 1]
    assert all(c["problems_only_one_arm_measured"] == 0 for c in report["checks"])

    text = markdown(report, "bench")
    assert "+0.500 [+0.500, +0.500] ↑" in text and "| heldout | control | 1 | 4 |" in text
    assert "heldout round 1: 1" in text
    assert plot(report, tmp_path / "p.png") == "p.png" and (tmp_path / "p.png").stat().st_size


def test_two_runs_compare_on_the_rounds_and_problems_both_measured():
    none = {p: (10, 0) for p in "abc"}
    before = _arm({0: none, 1: none, 2: none})
    # After: round 1 solves a and b 5 times of 10; round 3 only it measured; one problem more.
    after = _arm({0: none, 1: {"a": (10, 5), "b": (10, 5), "c": (10, 0), "d": (10, 10)},
                  3: none})
    rows = compare_runs(before, after)
    assert [(r["round"], r["problems"], r["only_one_measured"]) for r in rows] == [
        (0, 3, 0), (1, 3, 1)]
    one = rows[1]
    assert one["after"]["1"] == pytest.approx(1 / 3) and one["before"]["1"] == 0.0
    change = one["change"]["1"]
    assert change["estimate"] == pytest.approx(1 / 3) and change["low"] < change["estimate"]
    assert change["problems"] == 3 and change["level"] == 0.9
    same = rows[0]["change"]["10"]
    assert (same["estimate"], same["low"], same["high"]) == (0.0, 0.0, 0.0)


def test_settings_refuse_too_few_samples_and_unknown_arms():
    with pytest.raises(SelfplayError, match="n >= 10"):
        BenchSettings(samples=9)
    assert BenchSettings(samples=10).samples == 10
    with pytest.raises(SelfplayError, match="unknown arm 'base'"):
        BenchSettings(arms=("selfplay", "base"))


def test_arms_differ_only_in_the_synthetic_switch():
    settings = BenchSettings(preset="tiny", humaneval=False)
    selfplay, control = arm_config(settings, "selfplay"), arm_config(settings, "control")
    assert selfplay.select.synthetic and not control.select.synthetic
    assert dataclasses.replace(control, select=selfplay.select) == selfplay
    assert selfplay.eval.k == (1, 10) and selfplay.eval.samples == 20
    assert selfplay.eval.sets == ("heldout",)


def test_settings_apply_to_every_arm_and_bad_ones_are_named(tmp_path):
    settings = BenchSettings(preset="tiny", humaneval=False,
                             settings=("select.min_human=64", "generation.dtype=bfloat16"))
    selfplay, control = arm_config(settings, "selfplay"), arm_config(settings, "control")
    for config in (selfplay, control):
        assert config.select.min_human == 64 and config.generation.dtype == "bfloat16"
    assert not control.select.synthetic
    # A benchmark made with other settings is not continued with these.
    prepare(tmp_path / "b", settings)
    with pytest.raises(SelfplayError, match="settings"):
        prepare(tmp_path / "b", dataclasses.replace(settings, settings=()))
    for bad, why in (("select.min_humans=3", "no such key"), ("selects.x=1", "no table"),
                     ("select.min_human", "KEY=VALUE"), ("select.min_human='x'", "expected int"),
                     ("select.min_human=-1", "must be >= 0")):
        with pytest.raises(SelfplayError, match=why):
            arm_config(dataclasses.replace(settings, settings=(bad,)), "selfplay")


def test_the_dpo_arm_differs_only_in_the_objective():
    settings = BenchSettings(preset="tiny", humaneval=False, arms=("selfplay", "dpo"))
    selfplay, dpo = arm_config(settings, "selfplay"), arm_config(settings, "dpo")
    assert dpo.train.objective == "sft+dpo" and selfplay.train.objective == "sft"
    assert dataclasses.replace(dpo, train=selfplay.train) == selfplay
    assert BenchSettings().arms == ("selfplay", "control")


@pytest.mark.skipif(not P3.is_file(), reason=f"no P3 file at {P3}")
def test_the_p3_set_is_a_fixed_test_subset_of_at_least_100_problems():
    settings = BenchSettings(preset="tiny", humaneval=False, p3=str(P3))
    name = eval_sets(settings)[1]
    assert name == f"p3:{P3.resolve()}:test"
    config = arm_config(settings, "control")
    first = load_eval_set(name, max_problems=config.eval.max_problems, seed=config.seed)
    again = load_eval_set(name, max_problems=config.eval.max_problems, seed=config.seed)
    assert len(first.puzzles) == 100
    assert [p.hash for p in first.puzzles] == [p.hash for p in again.puzzles]
    assert all(p.split == "heldout" for p in first.puzzles)


@pytest.mark.slow
def test_quick_benchmark_writes_the_table_and_plot_and_continues(tmp_path, tiny_model, capsys):
    learn = _learn_command()
    bench = tmp_path / "bench"
    assert learn([str(bench), "--quick"]) == 0
    printed = capsys.readouterr().out
    assert "| heldout | selfplay | 1 | 8 |" in printed and "| heldout | control | 1 | 8 |" in printed
    # Round 0 (seed the store, evaluate the base model) ran once: the control arm took the
    # self-play arm's, the same samples, not a second eval.
    assert "== control: round 0 is selfplay's" in printed
    evals = {}
    for arm in ("selfplay", "control"):
        with Store(bench / arm / "store.sqlite") as store:
            evals[arm] = [(a.puzzle_hash, a.completion) for a in store.attempts(0)]
    assert evals["selfplay"] and evals["selfplay"] == evals["control"]

    report_dir = bench / "report"
    report = json.loads((report_dir / "learning.json").read_text())
    assert (report_dir / "learning.png").stat().st_size > 0
    assert "## pass@k" in (report_dir / "learning.md").read_text()
    rows = {(r["arm"], r["round"]): r for r in report["rows"]}
    assert set(rows) == {(a, r) for a in ("selfplay", "control") for r in (0, 1)}
    for key in ("vs_round0", "vs_control"):
        interval = rows[("selfplay", 1)][key]["10"]
        assert interval["low"] <= interval["estimate"] <= interval["high"]
        assert interval["problems"] == 8
    # Same base model, seed and problems: round 0 of the arms is one measurement.
    r0 = rows[("selfplay", 0)]["vs_control"]["1"]
    assert (r0["low"], r0["high"]) == (0.0, 0.0)
    assert all(c["problems_only_one_arm_measured"] == 0 for c in report["checks"])

    # The control arm sampled nothing to train on and trained on human pairs only.
    assert not load_config(bench / "control" / "config.toml").select.synthetic
    control = report["rounds"]["control"][0]
    assert control["funnel"]["proposed"] == 0 and control["funnel"]["attempts"] == 0
    assert control["trained"]["synthetic"] == 0 and control["trained"]["human"] > 0
    selfplay = report["rounds"]["selfplay"][0]
    assert selfplay["funnel"]["proposed"] > 0
    # The tiny model verified no pair of its own, so here the arms trained the same examples:
    # the same steps from the same seed made the same adapter.
    assert selfplay["trained"] == control["trained"] and selfplay["verified_synthetic_pairs"] == 0
    assert selfplay["train_loss"] == control["train_loss"]

    # A rerun continues the arms (here: nothing left to do) and writes the same table.
    before = (report_dir / "learning.md").read_text()
    assert learn([str(bench), "--quick"]) == 0
    assert (report_dir / "learning.md").read_text() == before
    # Other settings on the same directory are refused, naming what changed.
    capsys.readouterr()
    assert learn([str(bench), "--quick", "--seed", "1"]) == 1
    assert "seed: 0 -> 1" in capsys.readouterr().err


@pytest.mark.skipif(not P3.is_file(), reason=f"no P3 file at {P3}")
def test_the_p3_set_can_be_its_problems_one_instance_each_without_heldout():
    settings = BenchSettings(preset="tiny", humaneval=False, heldout=False, p3=str(P3),
                             p3_per_problem=1, eval_problems=0)
    assert eval_sets(settings) == (f"p3:{P3.resolve()}:test:1",)
    config = arm_config(settings, "selfplay")
    problems = load_eval_set(config.eval.sets[0], max_problems=config.eval.max_problems,
                             seed=config.seed).puzzles
    assert len({p.name.split(":")[0] for p in problems}) == len(problems) == 228
    with pytest.raises(SelfplayError, match="no eval set left"):
        BenchSettings(heldout=False, humaneval=False)


def test_an_arm_run_in_its_own_process_takes_round_0_from_another(tmp_path, tiny_model, capsys):
    # The arms may run as separate processes (one per core): an arm started on its own finds
    # the round 0 another arm's process finished, instead of computing it again.
    from selfplay.learnbench import run_bench
    settings = quick_settings(rounds=0, arms=("selfplay",))
    run_bench(tmp_path, settings)
    # Made later with more rounds planned, it still differs from the first only after round 0.
    run_bench(tmp_path, dataclasses.replace(settings, arms=("control",), rounds=1), echo=True)
    assert "control: round 0 is selfplay's" in capsys.readouterr().out
    with Store(tmp_path / "selfplay" / "store.sqlite") as a, \
            Store(tmp_path / "control" / "store.sqlite") as b:
        assert [x.completion for x in a.attempts(0)] == [x.completion for x in b.attempts(0)]
