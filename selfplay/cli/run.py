"""`selfplay init|run|resume|status|export`: create, drive and inspect a self-play run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from puzzles.errors import SelfplayError
from selfplay import loop
from selfplay.config import flat_settings, preset, with_settings
from selfplay.rundir import RunDir, check_preset, init_run


SET_HELP = ("change one setting of the new config, VALUE in TOML syntax (repeatable): "
            "--set solve.attempts=16 --set 'eval.sets=[\"heldout\"]' (keys: docs/config.md)")


def register(sub) -> None:
    init = sub.add_parser("init", help="create a run directory with a documented config.toml")
    init.add_argument("dir")
    init.add_argument("--model", help="model name, hub id or local path (default: the preset's)")
    init.add_argument("--preset", choices=("tiny", "cpu", "gpu"), default="cpu",
                      help="starting point sized for a machine (default: cpu)")
    init.add_argument("--seed", type=int, help="the run's seed (default: the preset's)")
    init.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help=SET_HELP)
    init.set_defaults(func=cmd_init)

    run = sub.add_parser("run", help="run self-play rounds (continues a run that has started)")
    run.add_argument("dir")
    run.add_argument("--rounds", type=int, help="run up to this many rounds (default: config)")
    run.add_argument("--preset", choices=("tiny", "cpu", "gpu"),
                     help="if DIR has no config yet, create it from this preset first "
                          "(refused where DIR has a different config)")
    run.add_argument("--model", help="with --preset: the model to use")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help=SET_HELP + "; where DIR has a config already, only what it holds")
    run.set_defaults(func=cmd_run, must_exist=False)

    resume = sub.add_parser("resume", help="continue an interrupted run where it stopped")
    resume.add_argument("dir")
    resume.add_argument("--rounds", type=int, help="run up to this many rounds (default: config)")
    resume.set_defaults(func=cmd_run, must_exist=True)

    status = sub.add_parser("status", help="rounds done and the funnel of each round")
    status.add_argument("dir")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(func=cmd_status)

    export = sub.add_parser("export", help="write the verified training data with provenance",
                            description=EXPORT_DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("dir")
    export.add_argument("--out", required=True, help="the JSONL file to write")
    export.set_defaults(func=cmd_export)


EXPORT_FIELDS = (
    ("round", "the round whose training set held the example (1, 2, ...)"),
    ("kind", "synthetic (a solution the model wrote that round) or human (a stored human "
             "reference solution)"),
    ("puzzle", "the checker's source, def f(x: T, ...) -> bool"),
    ("solution", "the solver's source, def g(...) returning x with f(x) is True"),
    ("puzzle_hash", "the puzzle's canonical content hash (names and layout do not count)"),
    ("solution_hash", "the solution's content hash"),
    ("name", "the puzzle's name (rN/HASH for a puzzle the model proposed in round N)"),
    ("family", "the puzzle's family (\"generated\" for a puzzle the model proposed)"),
    ("puzzle_origin", "seed, imported, generated (by the model) or generator (rule-based)"),
    ("puzzle_round", "the round that proposed the puzzle; null for human puzzles"),
    ("puzzle_provenance", "where the puzzle came from: model, adapter round, sampling and "
                          "proposal, or the file or generator a human puzzle came from"),
    ("solution_origin", "the solution's origin, as puzzle_origin"),
    ("solution_round", "the round whose solve stage wrote it; null for human solutions"),
    ("verdict", "the sandbox's verdict on the solution (always pass: only verified pairs "
                "train)"),
    ("verifier", "the sandbox version that gave the verdict"),
    ("solution_provenance", "how a model's solution was made: model, adapter round, "
                            "sampling, attempt, solve rate"),
)
"""The fields of each line `selfplay export` writes (`selfplay.loop.export`), in its order."""

EXPORT_DESCRIPTION = (
    "Write every round's training examples as JSONL, one object a line, in training order; "
    "the file\nfeeds `selfplay train` directly. Fields:\n\n"
    + "\n".join(f"  {name:<20} {what}" for name, what in EXPORT_FIELDS))


def _run_path(path: str) -> Path:
    """DIR as a run directory; a file there is refused before anything is written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SelfplayError(f"{path} is a file, not a run directory")
    return path


def _check_store_kept(path: Path) -> None:
    """Refuse to start over where a run has rounds/ or cards/ but its store is gone or empty:
    the store was lost (truncated, deleted), and a fresh one would silently redo round 0."""
    run_dir = RunDir(path)
    store = run_dir.store_file
    if store.exists() and store.stat().st_size > 0:
        return
    left = [d.name + "/" for d in (path / "rounds", run_dir.cards_dir) if d.exists()]
    if left:
        state = "is empty (0 bytes)" if store.exists() else "is missing"
        raise SelfplayError(f"{store} {state} although {path} holds {' and '.join(left)} of "
                            "earlier rounds: the run's store was lost. Restore it from a copy, "
                            "or start a new run directory; nothing was changed")


def cmd_init(args) -> int:
    _run_path(args.dir)
    config = preset(args.preset, model=args.model)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.set:  # only then: a round trip through TOML writes 32 as 32.0
        config = with_settings(config, args.set)
    run = init_run(args.dir, config)
    print(f"created {run.config_file} (preset {args.preset}, model {config.model.name}); "
          f"start it with: selfplay run {args.dir}")
    return 0


def cmd_run(args) -> int:
    preset_name = getattr(args, "preset", None)
    _check_store_kept(_run_path(args.dir))
    settings = getattr(args, "set", None) or []
    if preset_name and not (Path(args.dir) / "config.toml").exists():
        config = preset(preset_name, model=args.model)
        init_run(args.dir, with_settings(config, settings) if settings else config)
        print(f"created {args.dir}/config.toml from preset {preset_name}")
    else:
        if preset_name or getattr(args, "model", None):
            check_preset(RunDir(Path(args.dir)), preset_name, args.model)
        if settings:
            _check_settings_held(RunDir(Path(args.dir)), settings)
    result = loop.run(args.dir, rounds=args.rounds, progress=sys.stderr.isatty(), echo=True,
                      must_exist=args.must_exist)
    _print_status(result)
    return 0


def _check_settings_held(run: RunDir, settings: list[str]) -> None:
    """`selfplay run DIR --set ...` where DIR has its config: like --preset, --set only creates
    a config, so it is refused unless DIR's config holds those values already."""
    if not run.config_file.exists():
        raise SelfplayError(f"{run.path} has no config: --set applies to a new one, so give "
                            "--preset too (or run selfplay init DIR --set ... first)")
    have = flat_settings(run.load_config())
    wanted = flat_settings(with_settings(run.load_config(), settings))
    differ = [f"{k}: {have[k]!r} -> {wanted[k]!r}" for k in sorted(wanted) if have[k] != wanted[k]]
    if differ:
        raise SelfplayError(
            f"{run.path} has a config already, which --set would change "
            f"({', '.join(differ[:4])}{', ...' if len(differ) > 4 else ''}): --set only "
            f"creates a config; edit {run.config_file}, or choose a new directory")


def cmd_status(args) -> int:
    _run_path(args.dir)
    result = loop.status(args.dir)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _print_status(result)
    return 0


def _print_status(result: dict) -> None:
    print(f"rounds done: {result['rounds_done']} of {result['rounds_planned']}")
    for r in result["rounds"]:
        parts = [f"round {r['round']}:"]
        if "funnel" in r:
            parts.append(" -> ".join(f"{k} {v if v is not None else '-'}"
                                     for k, v in r["funnel"].items()))
        if "pass_at_k" in r:
            parts.append("pass@k " + ", ".join(f"@{k} {v:.3f}" for k, v in r["pass_at_k"].items()))
        if not r["complete"]:
            parts.append(f"(in progress: done {', '.join(r['stages_done'])})")
        parts.append(f"[{r['seconds']:.0f} s]")
        print(" ".join(parts))
    # The run's own answer to "did the rounds help?": paired over the same problems and seeds.
    for c in result.get("eval_changes", []):
        print(f"{c['set']} pass@{c['k']}: round 0 {c['before']:.3f} -> round {c['round']} "
              f"{c['after']:.3f}, change {c['change']:+.3f} "
              f"[{c['low']:+.3f}, {c['high']:+.3f}] ({c['level']:.0%} paired bootstrap "
              f"interval over {c['problems']} problems)")


def cmd_export(args) -> int:
    _run_path(args.dir)
    n = loop.export(args.dir, args.out)
    print(f"wrote {n} training examples to {args.out}")
    return 0
