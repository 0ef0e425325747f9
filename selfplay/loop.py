"""The self-play loop: rounds of propose, filter, dedup, solve, verify, select, train, with
evaluation before the first round and after each one.

Every stage marks itself done in the store when it finishes; a restarted run skips what is
marked and redoes only the unfinished stage, whose partial writes are either in one
transaction or keyed so that a repeat is a no-op. That is the whole resume mechanism.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from pathlib import Path

from puzzles.errors import SelfplayError
from puzzles.records import atomic_write
from puzzles.store import Store
from selfplay.context import Resources, RoundContext
from selfplay.evaluation.evaluate import eval_changes
from selfplay.preflight import validate_run
from selfplay.reports.summaries import Funnel, round_records, summary_to_dict
from selfplay.reports.tracking import RunTracker, set_label
from selfplay.rundir import (RunDir, RunLock, check_fingerprint, close_logger, extend_rounds,
                             run_logger)
from selfplay.stages import ROUND0_STAGES, ROUND_STAGES
from selfplay.stages.dedup import decontamination_sources
from selfplay.stages.seed import SHAPED_BY as SEED_SHAPED_BY


def _stage_module(name: str):
    return importlib.import_module(f"selfplay.stages.{name}")


def run(path: str | Path, *, rounds: int | None = None, progress: bool = False,
        echo: bool = False, must_exist: bool = False) -> dict:
    """Run (or continue) the self-play loop in run directory `path` up to `rounds` rounds.

    `progress` shows progress bars; `echo` prints a line as each stage finishes. `rounds`
    above the config's extends the run: config.toml is updated to say so. One process at a
    time runs a directory (`RunLock`); another gets an error naming it.
    """
    run_dir = RunDir(Path(path))
    config = run_dir.load_config()
    if rounds is not None and rounds < 0:
        raise SelfplayError(f"--rounds must be >= 0, not {rounds}")
    if must_exist and not run_dir.store_file.exists():
        raise SelfplayError(f"nothing to resume in {run_dir.path}: start it with `selfplay run`")
    with RunLock(run_dir):
        if rounds is not None:
            if rounds > config.rounds:
                extend_rounds(run_dir, rounds)
            config = dataclasses.replace(config, rounds=rounds)
        finished, seeded, stored = _progress(run_dir)
        validate_run(config, seed_stage=not seeded)
        # Before any stage has finished, the recorded config may be replaced by a fixed one:
        # the settings the unfinished seed stage's partial writes depend on excepted.
        replaceable = (None if finished else
                       (lambda key: not _in_tables(key, SEED_SHAPED_BY)) if stored else
                       (lambda key: True))
        check_fingerprint(run_dir, config, replaceable=replaceable)
        return _run(run_dir, config, progress, echo, started=finished)


def _progress(run_dir: RunDir) -> tuple[bool, bool, bool]:
    """(whether any stage has finished, whether the seed stage has, whether the store holds
    any puzzle), read without creating a store."""
    if not run_dir.store_file.exists():
        return False, False, False
    with Store(run_dir.store_file) as store:
        return (bool(store.stages()), store.stage_summary(0, "seed") is not None,
                store.counts()["puzzles"] > 0)


def _in_tables(key: str, tables: tuple[str, ...]) -> bool:
    return any(key == t or key.startswith(t + ".") for t in tables)


def _run(run_dir: RunDir, config, progress: bool, echo: bool, *, started: bool) -> dict:
    log = run_logger(run_dir)
    resources = Resources(config)
    tracker = None
    log.info("run %s: up to %d rounds, model %s", run_dir.path, config.rounds, config.model.name)
    try:
        tracker = RunTracker.open(run_dir.path, config.track)
        with Store(run_dir.store_file) as store:
            # Pin what dedup decontaminates against before any round, so that eval settings
            # changed on a later resume do not change any round's data.
            decontamination_sources(store, config.eval, renew=not started)
            for r in range(0, config.rounds + 1):
                ctx = RoundContext(r, config, store, run_dir, resources, log, progress,
                                   tracker=tracker)
                ran = False
                for stage in (ROUND0_STAGES if r == 0 else ROUND_STAGES):
                    if store.stage_summary(r, stage) is not None:
                        continue
                    ran = True
                    started = time.monotonic()
                    summary = _stage_module(stage).run(ctx)
                    summary = {**summary_to_dict(summary),
                               "seconds": round(time.monotonic() - started, 3)}
                    with store.transaction():
                        store.mark_stage_done(r, stage, summary)
                    if echo:
                        print(f"round {r} {stage}: {_short(summary)}", flush=True)
                if ran and tracker is not None:
                    tracker.log_round(store, r)
            return status_of(store, config)
    finally:
        if tracker is not None:
            tracker.close()
        resources.close()
        log.info("run %s: stopped", run_dir.path)
        close_logger(log)


def _short(summary: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, (dict, list)))


def status_of(store: Store, config) -> dict:
    metrics = store.metrics()
    rounds = []
    for r, record in sorted(round_records(store).items()):
        entry = {"round": r, "stages_done": record.done,
                 "complete": all(s in record.summaries for s in (ROUND0_STAGES if r == 0
                                                                 else ROUND_STAGES))}
        # Round 0 only seeds and measures the base model: its funnel is all zeros, as is the
        # part of a round's funnel whose stages have not run yet.
        entry["funnel"] = Funnel.of(record, len(store.train_examples(r))).status()
        if r > 0:
            if (t := record.get("train")) is not None:
                entry["train"] = {"examples": t.examples, "steps": t.steps,
                                  "first_loss": t.first_loss, "last_loss": t.last_loss,
                                  "adapter_hash": t.adapter_hash}
            if (s := record.get("select")) is not None:
                entry["mix"] = {"synthetic": s.synthetic, "human": s.human}
        pass_at_k = metrics.get(r, {}).get("pass_at_k")
        if pass_at_k is not None:
            entry["pass_at_k"] = pass_at_k
        entry["seconds"] = round(sum(record.seconds.values()), 1)
        rounds.append(entry)
    done = sum(1 for e in rounds if e["round"] > 0 and e["complete"])
    changes = [{"set": set_label(c["set"]), "k": c["k"], "round": c["round"],
                "before": c["before"], "after": c["after"],
                "change": c["interval"].estimate, "low": c["interval"].low,
                "high": c["interval"].high, "level": c["interval"].level,
                "problems": c["interval"].problems}
               for c in eval_changes(store, config.eval.sets, config.eval.k)]
    return {"rounds_done": done, "rounds_planned": config.rounds, "rounds": rounds,
            "eval_changes": changes}


def status(path: str | Path) -> dict:
    run_dir = RunDir(Path(path))
    config = run_dir.load_config()
    if not run_dir.store_file.exists():
        return {"rounds_done": 0, "rounds_planned": config.rounds, "rounds": []}
    with Store(run_dir.store_file) as store:
        return status_of(store, config)


def export(path: str | Path, out: str | Path) -> int:
    """Write every round's training examples with full provenance as JSONL; returns the count.

    Each line also has `puzzle` and `solution`, so the file feeds `selfplay train` directly.
    """
    run_dir = RunDir(Path(path))
    run_dir.load_config()
    if not run_dir.store_file.exists():
        raise SelfplayError(f"{run_dir.path} has no store yet: run it first")
    lines = []
    with Store(run_dir.store_file) as store:
        rounds = sorted({r for r, _, _ in store.stages() if r > 0})
        for r in rounds:
            for ex in store.train_examples(r):
                sp = store.puzzle_by_id(ex.puzzle_id)
                sol = store.solution(ex.solution_id)
                lines.append(json.dumps({
                    "round": r, "kind": ex.kind, "puzzle": sp.puzzle.source,
                    "solution": sol.source, "puzzle_hash": sp.hash, "solution_hash": sol.hash,
                    "name": sp.puzzle.name, "family": sp.puzzle.family,
                    "puzzle_origin": sp.origin, "puzzle_round": sp.round,
                    "puzzle_provenance": sp.provenance, "solution_origin": sol.origin,
                    "solution_round": sol.round, "verdict": sol.verdict,
                    "verifier": sol.verifier, "solution_provenance": sol.provenance}))
    atomic_write(out, "".join(line + "\n" for line in lines))
    return len(lines)
