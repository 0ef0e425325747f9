"""One self-play round of the default model at GPU scale under a deadline, then pass@k of round
0 and round 1 on P3's test problems if time is left: `bench/gpu_check.py --round`.

    python bench/gpu_check.py --payload .gpu-payload --round --p3 .gpu-payload/p3/puzzles.json \\
        --out-dir "$OUT"

The round is the library's, not a copy: `init_run` writes the `gpu` preset with ROUND_SETTINGS
(and the caller's `--round-set KEY=VALUE`) on top, then `python -m selfplay run DIR --rounds 1`
runs round 0 (seeds; an eval of one sample) and round 1 (propose .. train, card) in a child
process, and `python -m selfplay eval` measures each round. Children, because a stage cannot be
stopped halfway from inside: at the deadline the child's process group is killed and what the
store says had finished is reported (each stage marks itself done as it ends), so a round that
runs long still leaves its table instead of using up a machine lent for minutes.

Without CUDA (`--cpu-only`, or no device) DRY_RUN_SETTINGS size the same config down to the
`tiny` model on the CPU: the dry run the tests take, through the same code.

What comes back (`run_round`) is data: the settings, every finished stage with its seconds and
summary, the round's funnel, sampled tokens and tokens/s of propose, solve and train, and the
eval results or why each was skipped; `report_lines` formats it for bench/results/gpu_*.txt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ROUND_SETTINGS = (
    "rounds=1",
    # Our sampler, as the lent machines have no vLLM; a machine with it may --round-set
    # generation.backend=auto. bf16 comes from the preset (model.dtype = "bfloat16" on cuda).
    "generation.backend=transformers",
    "generation.batch_size=256",
    # The cpu preset's lever for new pairs: generator instances stored without their solution
    # are solve targets known to be solvable (round 0 verifies 600 instances: seconds here).
    "seeds.generated=600", "seeds.withheld=400",
    "propose.prompts=64", "propose.per_prompt=8",          # 512 proposals
    "solve.attempts=32", "solve.unsolved_train=128",       # ~130-190 targets x 32 attempts
    # The loop's own eval stages (before and after the round) take one sample of one problem:
    # the full pass@k runs afterwards, only if time is left. eval.sets still names P3 (when
    # given) because dedup keeps the eval sets named when a run starts out of training.
    "eval.samples=1", "eval.k=[1]", "eval.max_problems=1",
)
"""What the `gpu` preset (5 rounds, 4096 proposals, 100 attempts) becomes for one round sized
for about 6 minutes of one GPU: hundreds of proposals, tens of attempts, one training epoch
(the preset's `train.epochs = 1`). Guesses: nothing had run on a GPU when they were chosen."""

DRY_RUN_SETTINGS = (
    "model.name=tiny", "model.device=cpu", "model.dtype=float32",
    "generation.batch_size=32", "seeds.generated=8", "seeds.withheld=4",
    "prompts.propose_examples=2", "prompts.solve_examples=1", "prompts.max_prompt_tokens=320",
    "prompts.completion_tokens=128",
    "propose.prompts=4", "propose.per_prompt=4", "propose.max_new_tokens=48",
    "solve.attempts=2", "solve.max_new_tokens=32", "solve.unsolved_train=4",
    "select.min_examples=8", "eval.max_new_tokens=32",
    "train.steps=2", "train.micro_batch=4", "train.grad_accum=1", "train.block_size=256",
    "train.checkpoint_every=0",
)
"""The same round on the CPU with the `tiny` model, sized to take seconds (the tiny preset's
prompt sizes): what `--cpu-only --round` and the tests run."""

SAMPLED_STAGES = ("propose", "solve")


def round_settings(*, cuda: bool, p3: str | None, extra: list[str]) -> list[str]:
    """Every KEY=VALUE applied on top of the `gpu` preset, in order (later ones win)."""
    sets = [f"p3:{Path(p3).resolve()}:test:1"] if p3 else ["heldout"]
    return (list(ROUND_SETTINGS) + ([] if cuda else list(DRY_RUN_SETTINGS))
            + [f"eval.sets={json.dumps(sets)}"] + list(extra))


def run_round(work: Path, settings: list[str], budget_s: float, *, p3: str | None = None,
              eval_k: tuple[int, ...] = (1, 10), eval_n: int = 10, say=None,
              on_update=None) -> dict:
    """Run one round in `work/run` within `budget_s` seconds from now, then (with `p3`, if the
    round finished and time is left) pass@k of rounds 0 and 1 on its test problems, one
    instance each. `say(line)` gets the children's output as it comes; `on_update(result)` the
    result so far, after the round and after each eval (to save it where a kill cannot take it).
    Returns the result (see the module docstring); never raises for a child that failed: the
    result says so (`error`)."""
    from selfplay.config import preset, with_settings
    from selfplay.rundir import init_run

    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    on_update = on_update or (lambda result: None)
    deadline = time.monotonic() + budget_s
    config = with_settings(preset("gpu"), settings)
    path = work / "run"
    init_run(path, config)
    result = {"settings": settings, "budget_s": budget_s, "model": config.model.name,
              "device": config.model.device, "dtype": config.model.dtype,
              "backend": config.generation.backend, "complete": False, "stopped": None,
              "error": None, "eval": []}
    started = time.monotonic()
    code, lines = _child(["run", str(path), "--rounds", "1"], deadline, say)
    result["wall_s"] = round(time.monotonic() - started, 1)
    if code is None:
        result["stopped"] = f"the {budget_s:g} s budget ran out"
    elif code != 0:
        result["error"] = _last_error(lines)
    result.update(_read_store(path, config))
    result["complete"] = code == 0 and result["rounds_done"] == 1
    on_update(result)
    if p3:
        result["eval"] = _evaluate(path, result, deadline, p3, eval_k, eval_n, say, on_update)
    return result


def _child(args: list[str], deadline: float, say) -> tuple[int | None, list[str]]:
    """Run `python -m selfplay ARGS` until it ends or the deadline; (exit code or None if it
    was stopped, its output lines). Its own process group, so the sandbox workers and
    tokenizer threads under it go too."""
    env = dict(os.environ)
    # The checkout first, as `python bench/gpu_check.py` has it; the payload's site (already
    # on PYTHONPATH, see gpu_check.use_payload) after it.
    env["PYTHONPATH"] = ":".join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(":")
                                                if p])
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' bars too: not in a log
    proc = subprocess.Popen([sys.executable, "-m", "selfplay", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=_die_with_parent)
    lines: list[str] = []

    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            say(f"  | {lines[-1]}")
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        proc.wait()
        reader.join(timeout=5)
        return None, lines
    reader.join(timeout=5)
    return proc.returncode, lines


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies. Its own session keeps it out of
    the signals a lent machine's time limit sends the command's group, and an orphaned round
    would go on holding the GPU into the next command."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the deadline still stops it while this process lives


def _last_error(lines: list[str]) -> str:
    picked = [line for line in lines if line.strip()] or ["(no output)"]
    return picked[-1][:300]


def _read_store(path: Path, config) -> dict:
    """What the store says the finished stages did: their seconds and summaries, the round's
    funnel, and the tokens each sampling stage wrote (its completions, tokenized again)."""
    from puzzles.store import Store
    from selfplay.rundir import RunDir
    from selfplay.reports.summaries import Funnel, round_records

    store_file = RunDir(path).store_file
    out = {"stages": [], "funnel": {}, "tokens": {}, "rounds_done": 0}
    if not store_file.exists():
        return out
    with Store(store_file) as store:
        records = round_records(store)
        raw = {(r, stage): data for r, stage, data in store.stages()}
        for r, record in sorted(records.items()):
            for stage in record.done:
                summary = {k: v for k, v in raw[(r, stage)].items() if k != "seconds"}
                out["stages"].append({"round": r, "stage": stage,
                                      "seconds": record.seconds.get(stage, 0.0),
                                      "summary": summary})
        one = records.get(1)
        if one is None:
            return out
        out["rounds_done"] = int(one.get("card") is not None)
        out["funnel"] = Funnel.of(one, len(store.train_examples(1))).to_dict()
        texts = {}
        if one.get("propose") is not None:
            texts["propose"] = [p.completion for p in store.proposals(1)]
        if one.get("solve") is not None:
            texts["solve"] = [a.completion for a in store.attempts(1, "solve")]
    if texts:
        from training.models import model_identity
        tokenizer = model_identity(config.model).tokenizer
        for stage, batch in texts.items():
            tokens = sum(len(ids) for ids in tokenizer(batch, add_special_tokens=False)
                         ["input_ids"]) if batch else 0
            out["tokens"][stage] = _rate(tokens, one.seconds.get(stage, 0.0))
    train = one.get("train")
    if train is not None:
        out["tokens"]["train"] = _rate(train.tokens, train.seconds)
    return out


def _rate(tokens: int, seconds: float) -> dict:
    return {"tokens": tokens, "seconds": round(seconds, 3),
            "tok_s": round(tokens / seconds, 1) if seconds > 0 else None}


def _evaluate(path: Path, result: dict, deadline: float, p3: str, ks: tuple[int, ...], n: int,
              say, on_update) -> list[dict]:
    """pass@k of round 0 (the base model), then round 1, each only if its guessed time fits."""
    from selfplay.evaluation.evalsets import load_eval_set

    name = f"p3:{Path(p3).resolve()}:test:1"
    rows: list[dict] = []
    if not result["complete"]:
        return [{"round": r, "set": name, "skipped": "the round did not finish"} for r in (0, 1)]
    problems = len(load_eval_set(name).puzzles)
    guess = _eval_guess(result, problems * n)
    for r in (0, 1):
        left = deadline - time.monotonic()
        # Round 0 starts only if both fit: one figure without the other compares nothing.
        need = guess * (2 if r == 0 else 1)
        if guess and need > left:
            rows.append({"round": r, "set": name, "skipped": f"needs ~{need:.0f} s by the "
                         f"round's solve and verify rate, {max(0, left):.0f} s left"})
            if r == 0:
                rows.append({"round": 1, "set": name, "skipped": "round 0 was not measured"})
                break
            continue
        started = time.monotonic()
        code, lines = _child(["eval", str(path), "--round", str(r), "--eval-set", name, "--k",
                              ",".join(map(str, ks)), "--n", str(n), "--max-problems", "0",
                              "--json"], deadline, say)
        seconds = round(time.monotonic() - started, 1)
        row = {"round": r, "set": name, "seconds": seconds}
        if code is None:
            row["skipped"] = f"stopped at the deadline after {seconds:.0f} s"
        elif code != 0:
            row["error"] = _last_error(lines)
        else:
            found = [line for line in lines if line.startswith("{")]
            try:
                row.update(json.loads(found[-1]))
                guess = seconds  # round 1 costs about what round 0 did
            except (IndexError, json.JSONDecodeError):
                row["error"] = f"no JSON result in its output: {_last_error(lines)}"
        rows.append(row)
        on_update({**result, "eval": rows})
    return rows


def _eval_guess(result: dict, attempts: int) -> float:
    """Seconds `attempts` eval attempts may take, by round 1's solve and verify rate plus the
    child's start-up (the round's wall time beyond its stages); 0 when there is no rate."""
    seconds = {s["stage"]: s["seconds"] for s in result["stages"] if s["round"] == 1}
    made = result["funnel"].get("attempts") or 0
    if not made:
        return 0.0
    startup = max(0.0, result["wall_s"] - sum(s["seconds"] for s in result["stages"]))
    return attempts * (seconds.get("solve", 0) + seconds.get("verify", 0)) / made + startup


# Formatting -----------------------------------------------------------------------------------


def report_lines(result: dict) -> list[str]:
    """The round's part of bench/results/gpu_*.txt."""
    lines = textwrap.wrap(f"## one self-play round: preset gpu + {' '.join(result['settings'])}",
                          100, subsequent_indent="#   ", break_on_hyphens=False,
                          break_long_words=False)
    lines.append(f"model {result['model']} on {result['device']} in {result['dtype']}, sampling "
                 f"backend {result['backend']}; budget {result['budget_s']:g} s")
    lines.append(f"{'round':>5}  {'stage':<8} {'seconds':>8}  summary")
    for s in result["stages"]:
        summary = s["summary"]
        if s["stage"] == "eval":  # keyed by eval set name: a P3 set's is a long path
            summary = {_label(k): v for k, v in summary.items()}
        lines.append(f"{s['round']:>5}  {s['stage']:<8} {s['seconds']:>8.1f}  "
                     + _short(summary))
    stage_s = sum(s["seconds"] for s in result["stages"])
    lines.append(f"round: {result['wall_s']:.0f} s wall, {stage_s:.0f} s in stages (the rest: "
                 "start-up, imports, model loads)"
                 + ("" if result["complete"] else
                    f"; NOT COMPLETE: {result['stopped'] or result['error']}"))
    funnel = result["funnel"]
    if funnel:
        lines.append("funnel: " + " > ".join(f"{k.replace('_', ' ')} {v}"
                                             for k, v in funnel.items() if v is not None))
    if result["tokens"]:
        lines.append("tokens: " + "; ".join(
            f"{stage} {t['tokens']} in {t['seconds']:.1f} s = "
            + (f"{t['tok_s']:.0f} tok/s" if t["tok_s"] is not None else "-")
            for stage, t in result["tokens"].items())
            + " (propose and solve: the stored completions tokenized again)")
    for row in result["eval"]:
        head = f"eval round {row['round']} on {_label(row['set'])}: "
        if "pass_at_k" in row:
            scores = ", ".join(f"pass@{k} {v:.3f}" for k, v in row["pass_at_k"].items())
            lines.append(head + f"{scores} ({row['problems']} problems x {row['samples']} "
                         f"samples, {row['solved']} solved, {row['leaked']} leaked; "
                         f"{row['seconds']:.0f} s)")
        else:
            lines.append(head + ("skipped: " + row["skipped"] if "skipped" in row
                                 else "FAIL " + row.get("error", "?")))
    return lines


def _short(summary: dict) -> str:
    parts = []
    for k, v in summary.items():
        if isinstance(v, dict):
            v = "{" + ", ".join(f"{a}: {b}" for a, b in v.items()) + "}"
        elif isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k}={v}")
    return ", ".join(parts)[:200]


def _label(name: str) -> str:
    from selfplay.reports.tracking import set_label
    return set_label(name)
