"""Evaluating any round of a run on demand (`selfplay eval`), outside the loop."""

from __future__ import annotations

from pathlib import Path

from puzzles.errors import SelfplayError
from puzzles.store import Store
from selfplay.context import Resources, RoundContext
from selfplay.evaluation.evaluate import evaluate_set
from selfplay.rundir import RunDir, close_logger, run_logger
from training.lora import check_adapter_dir


def last_trained_round(store: Store) -> int:
    rounds = [r for r, stage, _ in store.stages() if stage == "train"]
    return max(rounds, default=0)


def eval_run(path: str | Path, *, round: int | None = None, set_name: str | None = None,
             ks: list[int] | None = None, n: int | None = None,
             max_problems: int | None = None, adapter: str | Path | None = None,
             progress: bool = False) -> dict:
    """pass@k of round `round`'s model (default: the last trained) on one eval set. `adapter`,
    a PEFT adapter directory, is evaluated on the run's base model in place of the round's own
    (one committed beside a result, say); the round still decides the sampling seeds, so the
    adapter a round trained, given here, scores what that round's model scores."""
    run = RunDir(Path(path))
    config = run.load_config()
    if not run.store_file.exists():
        raise SelfplayError(f"{run.path} has no store yet: run it first")
    cfg = config.eval
    ks = ks or list(cfg.k)
    n = n or max(cfg.samples, max(ks))
    if max(ks) > n:
        raise SelfplayError(f"--n {n} is smaller than the largest k ({max(ks)}): pass@k needs "
                            "n >= k samples per problem")
    set_name = set_name or (cfg.sets[0] if cfg.sets else "heldout")
    log = run_logger(run)
    resources = Resources(config)
    try:
        with Store(run.store_file) as store:
            r = last_trained_round(store) if round is None else round
            if adapter is None:
                adapter = run.adapter(r)
                if adapter is not None and not adapter.exists():
                    raise SelfplayError(f"round {r} has no trained adapter in {run.path}")
            else:
                adapter = check_adapter_dir(adapter)
            ctx = RoundContext(r, config, store, run, resources, log, progress)
            result = evaluate_set(ctx, set_name, ks=ks, n=n,
                                  max_problems=cfg.max_problems if max_problems is None
                                  else max_problems, adapter=adapter)
            log.info("eval round %d%s on %s: %s", r, f" with adapter {adapter}" if adapter
                     else "", set_name, result.metric())
            return {"round": r, "set": set_name, "adapter": str(adapter) if adapter else "",
                    "metric": result.metric(), "rejected": result.rejected}
    finally:
        resources.close()
        close_logger(log)
