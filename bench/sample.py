"""Sampling speed side by side, and the fast path checked against the reference path.

    python bench/sample.py                          # speed table: both shapes, fp32 and bf16
    python bench/sample.py --new-tokens 16 --reps 1 # a quick look
    python bench/sample.py --agreement              # old vs new path: greedy tokens, log-lik, pass@k

Speed (one table, every row measured in this run, each as a share of this run's bounds):
- shapes: `single` is n samples of one ~526-token solve prompt in one batch (`--single-n`);
  `many` is the loop's shape: `--many-prompts` solve prompts, k samples each, `--many-batch`
  slots, rows ending at their own lengths;
- engines (`ENGINES`, one row per engine and dtype; another engine is one more entry):
  `generate` is transformers' `model.generate` once per completion (its rate does not depend
  on the shape, so it runs only `--baseline-samples` completions); `reference` is our
  sampler's generic path (the model's own forward, as before the shared-prefix path);
  `sampler` is `training.sampling.sample_completions` (the shared-prefix path where it applies);
  `vllm` (where vllm is importable) is the same call with backend = "vllm";
- bounds: a large square matmul's FLOP rate in fp32 and in bf16, over 2 x parameters FLOPs a
  token: what the cores could do if sampling were nothing but the weights' matmuls.
tok/s counts generated tokens up to the end of each function. The machine may be shared:
compare the ratios, which are against bounds measured minutes apart in the same run.

Agreement (`--agreement`): for each dtype, the fast path against the fp32 reference path on
the same prompts: greedy (T=0) completions token by token, the log-likelihood of fixed
completions (teacher-forced through the decode step), and solve pass@k on a fixed puzzle set
(`--pass-set`: generator instances with sibling examples, or held-out seeds).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from training.models import ModelConfig, load_model, torch_threads  # noqa: E402
from training.prompts import PromptConfig, cut_at_function_end, solve_prompt  # noqa: E402
from training.sampling import SamplingConfig, sample_completions  # noqa: E402

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def seed_split():
    """(examples, problems): train seeds with a solution shown as few-shot examples, the other
    seeds as the fixed puzzle set."""
    from puzzles.format import parse_solution
    from puzzles.seeds import load_seeds
    train = [r for r in load_seeds("train") if r.solutions]
    examples = [(r.puzzle, parse_solution(r.solutions[0], r.puzzle)) for r in train]
    names = {r.puzzle.source for r in train}
    problems = [r.puzzle for r in load_seeds() if r.puzzle.source not in names]
    return examples, problems


def pass_set(kind: str, count: int):
    """(puzzles, solve prompts) of the fixed pass@k set. `seeds`: the seed puzzles outside the
    train split, two train seeds as examples (the base model solves about none of them).
    `generated`: generator instances, each shown two other instances of its family with their
    reference solutions (the cpu preset's `example_choice = "similar"` in spirit), which the
    base model solves often enough for pass@k to tell two paths apart."""
    if kind == "seeds":
        problems = seed_split()[1][:count]
        return problems, solve_prompts(count)
    from puzzles.format import parse_solution
    from puzzles.generators import generate
    records = [r for r in generate(3 * count, seed=7).records if r.solutions]
    by_family: dict[str, list] = {}
    for r in records:
        by_family.setdefault(r.puzzle.family, []).append(r)
    rng = random.Random(1)
    problems, prompts = [], []
    for r in records:
        siblings = [o for o in by_family[r.puzzle.family] if o is not r]
        if len(siblings) < 2 or len(problems) == count:
            continue
        shown = rng.sample(siblings, 2)
        examples = [(o.puzzle, parse_solution(o.solutions[0], o.puzzle)) for o in shown]
        problems.append(r.puzzle)
        prompts.append(solve_prompt(examples, r.puzzle, PromptConfig()))
    return problems, prompts


def bench_prompt() -> str:
    from puzzles.format import parse_solution
    from puzzles.seeds import load_seeds
    records = [r for r in load_seeds("train") if r.solutions]
    rng = random.Random(0)
    chosen = rng.sample(records, 3)
    examples = [(r.puzzle, parse_solution(r.solutions[0], r.puzzle)) for r in chosen[:2]]
    return solve_prompt(examples, chosen[2].puzzle, PromptConfig())


def solve_prompts(count: int, seed: int = 1) -> list[str]:
    """`count` solve prompts of the fixed puzzle set, two examples each (the cpu preset's)."""
    examples, problems = seed_split()
    rng = random.Random(seed)
    return [solve_prompt(rng.sample(examples, 2), p, PromptConfig())
            for p in problems[:count]]


def matmul_gflops(dtype: torch.dtype, threads: int, seconds: float = 1.0) -> float:
    """The FLOP rate of a large square matmul: what the cores can do at best."""
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    with torch_threads(threads):
        a @ b
        start, reps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            a @ b
            reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def count_tokens(tokenizer, ids: list[int]) -> int:
    """Generated tokens up to the end of the function, as the sampler counts them."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    cut, ended = cut_at_function_end(text)
    if not ended:
        return len(ids)
    return len(tokenizer(cut, add_special_tokens=False)["input_ids"]) + 1


# Engines: each draws n completions of each prompt and returns (tokens, seconds) ------------


def engine_generate(loaded, prompts: list[str], n: int, config: SamplingConfig, args):
    """`model.generate`, one completion per call (at most --baseline-samples of them)."""
    tok = loaded.tokenizer
    ids = tok(prompts[0], return_tensors="pt")
    tokens, start = 0, time.perf_counter()
    with torch.inference_mode(), torch_threads(loaded.threads):
        for i in range(args.baseline_samples):
            torch.manual_seed(i)
            out = loaded.model.generate(**ids, max_new_tokens=config.max_new_tokens,
                                        do_sample=True, temperature=config.temperature,
                                        top_p=config.top_p, pad_token_id=tok.pad_token_id)
            tokens += count_tokens(tok, out[0, ids["input_ids"].shape[1]:].tolist())
    return tokens, time.perf_counter() - start


def engine_sampler(loaded, prompts, n, config, args, reference: bool = False):
    start = time.perf_counter()
    rows = sample_completions(loaded, prompts, n, config, seed=0, fast=not reference)
    return sum(c.tokens for row in rows for c in row), time.perf_counter() - start


def engine_reference(loaded, prompts, n, config, args):
    return engine_sampler(loaded, prompts, n, config, args, reference=True)


def engine_vllm(loaded, prompts, n, config, args):
    """`training.vllm_backend` (one seeded request per sample, prefix caching); its engine is
    started, and its first prompt cached, before the clock starts."""
    config = dataclasses.replace(config, backend="vllm")
    sample_completions(loaded, prompts, 1, dataclasses.replace(config, max_new_tokens=2), seed=1)
    return engine_sampler(loaded, prompts, n, config, args)


ENGINES = {"generate": engine_generate, "reference": engine_reference,
           "sampler": engine_sampler}
if importlib.util.find_spec("vllm") is not None:
    ENGINES["vllm"] = engine_vllm


def speed(args) -> None:
    """The speed table. Each dtype's rows run in a fresh process, vLLM's after all the others:
    vLLM's in-process engine binds threads and leaves workers in its process, and a row run
    after it there (our bf16 sampler) measured 0.67 of the fp32 bound, below every run without
    it (0.74 to 0.92 the same afternoon)."""
    import concurrent.futures
    import multiprocessing

    engines = args.engines.split(",")
    print(f"# {cpu_name()}; {args.threads} threads; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; {args.new_tokens} new tokens max; T {args.temperature}, "
          f"top_p 0.95; best of {args.reps}; each dtype and engine group in its own process")
    header = (f"{'engine':10} {'dtype':5} {'shape':6} {'rows':>5} {'tokens':>6} {'sec':>7} "
              f"{'tok/s':>7} {'/fp32 bound':>11} {'/own bound':>10}")
    lines = [header, "-" * len(header)]
    bounds: dict[str, float] = {}
    passes = [[e for e in engines if e != "vllm"], [e for e in engines if e == "vllm"]]
    for group in passes:
        for short in DTYPES:
            if not group or short not in args.dtypes.split(","):
                continue
            with concurrent.futures.ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn")) as pool:
                rows, seen = pool.submit(speed_phase, args, short, group).result()
            lines += rows
            for b, rate in seen.items():
                bounds[b] = max(rate, bounds.get(b, 0))
    lines += [f"{'bound':10} {b:5} {'':6} {'':>5} {'':>6} {'':>7} {rate:>7.0f} "
              f"{rate / bounds['fp32']:>11.2f} {1:>10.3f}" for b, rate in bounds.items()]
    print("\n".join(["", "# summary (bounds: the best seen in the run)"] + lines))


def speed_phase(args, short: str, engines: list[str]) -> tuple[list[str], dict[str, float]]:
    """One dtype's rows for the given engines: (table lines, the best bounds seen)."""
    single = [bench_prompt()]
    many = solve_prompts(args.many_prompts)
    shapes = {"single": (single, args.single_n, args.single_n),
              "many": (many, args.many_k, args.many_batch)}
    threads = args.threads
    lines: list[str] = []
    bounds: dict[str, float] = {}
    loaded = load_model(ModelConfig(name=args.model, dtype=DTYPES[short], threads=threads))
    params = sum(p.numel() for p in loaded.model.parameters())
    n_prompt = len(loaded.tokenizer(single[0])["input_ids"])
    sample_completions(loaded, single, 2, SamplingConfig(max_new_tokens=4), seed=0, fast=True)
    for shape, (prompts, n, batch) in shapes.items():
        if shape not in args.shapes.split(","):
            continue
        config = SamplingConfig(temperature=args.temperature, max_new_tokens=args.new_tokens,
                                batch_size=batch)
        for engine in engines:
            if engine == "generate" and shape != "single":
                continue  # its rate is per completion, whatever the shape
            best = None
            for _ in range(args.reps if engine != "generate" else 1):
                # Bounds measured right before each row: the load may change in between.
                for b_short, b_dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                    rate = matmul_gflops(b_dtype, threads) * 1e9 / (2 * params)
                    bounds[b_short] = max(rate, bounds.get(b_short, 0))
                tokens, seconds = ENGINES[engine](loaded, prompts, n, config, args)
                run = (tokens / seconds, tokens, seconds, dict(bounds))
                best = run if best is None or run[0] > best[0] else best
            rate, tokens, seconds, b = best
            line = (f"{engine:10} {short:5} {shape:6} {len(prompts) * n:>5} {tokens:>6} "
                    f"{seconds:>7.2f} {rate:>7.1f} {rate / b['fp32']:>11.2f} "
                    f"{rate / b[short]:>10.3f}")
            print(line, flush=True)
            lines.append(line)
    # The many shape's prompts hold more tokens than its rows generate: its tok/s (which
    # counts generated tokens) is mostly set by the prompts' prefill.
    many_tokens = sum(len(loaded.tokenizer(p)["input_ids"]) for p in many)
    print(f"# {args.model} {short}: {params / 1e6:.1f}M parameters, single prompt "
          f"{n_prompt} tokens, many: {len(many)} prompts, {many_tokens} prompt tokens",
          flush=True)
    return lines, bounds


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines()
                             if l.startswith("flags")).split()
                extra = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
                return f"{name} ({', '.join(extra) or 'no bf16 units'})"
    except (OSError, StopIteration):
        pass
    return platform.processor() or "unknown CPU"


# Agreement: fast path against the reference path -----------------------------------------


def agreement(args) -> None:
    prompts = solve_prompts(args.prompts)
    greedy = SamplingConfig(temperature=0, max_new_tokens=args.new_tokens,
                            batch_size=args.many_batch)
    reference = load_model(ModelConfig(name=args.model, dtype="float32", threads=args.threads))
    tok = reference.tokenizer
    print(f"# {cpu_name()}; load average {os.getloadavg()[0]:.1f}; {len(prompts)} prompts, "
          f"{args.new_tokens} new tokens; reference = generic path, fp32")
    ref_rows = sample_completions(reference, prompts, 1, greedy, seed=0)
    ref_ids = [tok(row[0].text, add_special_tokens=False)["input_ids"] for row in ref_rows]
    fixed = [row[0].text for row in ref_rows]
    ref_ll = log_likelihoods(reference, prompts, fixed, fast=False)
    passk = pass_at_k(reference, args, reference_path=True)
    print(f"{'path':14} {'same greedy':>11} {'common prefix':>13} {'|dlogp|/tok':>11} "
          f"{'pass@1':>7} {'pass@' + str(args.k):>7} {'solved':>6}")
    print(f"{'reference fp32':14} {'-':>11} {'-':>13} {'-':>11} {passk[0]:>7.3f} "
          f"{passk[1]:>7.3f} {passk[2]:>6}", flush=True)
    for short, dtype in DTYPES.items():
        if short not in args.dtypes.split(","):
            continue
        loaded = reference if dtype == "float32" else load_model(
            ModelConfig(name=args.model, dtype=dtype, threads=args.threads))
        rows = sample_completions(loaded, prompts, 1, greedy, seed=0, fast=True)
        same, prefix = 0, []
        for row, want in zip(rows, ref_ids):
            got = tok(row[0].text, add_special_tokens=False)["input_ids"]
            same += got == want
            common = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                          min(len(got), len(want)))
            prefix.append(common / max(1, len(want)))
        ll = log_likelihoods(loaded, prompts, fixed, fast=True)
        dll = sum(abs(a - b) for a, b in zip(ll, ref_ll)) / sum(
            len(tok(t, add_special_tokens=False)["input_ids"]) for t in fixed)
        passk = pass_at_k(loaded, args, reference_path=False)
        print(f"{'sampler ' + short:14} {same:>5}/{len(rows):<5} {sum(prefix) / len(prefix):>13.3f} "
              f"{dll:>11.4f} {passk[0]:>7.3f} {passk[1]:>7.3f} {passk[2]:>6}", flush=True)


def log_likelihoods(loaded, prompts: list[str], completions: list[str], fast: bool
                    ) -> list[float]:
    """Sum of log p(completion token) per prompt: through the model's own forward, or through
    the shared-prefix decoder's prefill and decode steps (teacher forcing)."""
    from training.sampling import _decoder
    tok = loaded.tokenizer
    out = []
    with torch.inference_mode(), torch_threads(loaded.threads):
        decoder = _decoder(loaded) if fast else None
        for prompt, completion in zip(prompts, completions):
            p_ids = tok(prompt)["input_ids"]
            c_ids = tok(completion, add_special_tokens=False)["input_ids"]
            if decoder is None:
                logits = loaded.model(input_ids=torch.tensor([p_ids + c_ids])).logits[0].float()
                logits = logits[len(p_ids) - 1:-1]
            else:
                prefix = decoder.prefill(p_ids)
                suffix = decoder.suffix(1, len(c_ids))
                steps = [prefix.logits[None]]
                for i, t in enumerate(c_ids[:-1]):
                    steps.append(decoder.step(torch.tensor([t]), torch.tensor([0]),
                                              torch.tensor([i]), [(prefix, None)], suffix))
                logits = torch.cat(steps)
            logp = torch.log_softmax(logits, -1)
            out.append(float(logp[torch.arange(len(c_ids)), torch.tensor(c_ids)].sum()))
    return out


def pass_at_k(loaded, args, reference_path: bool) -> tuple[float, float, int]:
    """Mean pass@1 and pass@k over the fixed puzzle set, and problems solved at least once."""
    from puzzles.errors import PuzzleError
    from sandbox import Pair, Verifier, VerifierConfig
    from selfplay.evaluation.passk import mean_pass_at_k
    from training.prompts import parse_solution_completion
    problems, prompts = pass_set(args.pass_set, args.problems)
    config = SamplingConfig(temperature=args.temperature, max_new_tokens=args.pass_tokens,
                            batch_size=args.many_batch)
    rows = sample_completions(loaded, prompts, args.k, config, seed=0,
                              fast=not reference_path)
    pairs, owners = [], []
    for i, (puzzle, row) in enumerate(zip(problems, rows)):
        for c in row:
            try:
                pairs.append(Pair(puzzle.source, parse_solution_completion(c.text, puzzle).source))
                owners.append(i)
            except PuzzleError:
                pass
    passes = [0] * len(problems)
    if pairs:
        with Verifier(VerifierConfig()) as verifier:
            for owner, verdict in zip(owners, verifier.verify_many(pairs)):
                passes[owner] += verdict.verdict == "pass"
    counts = [(args.k, c) for c in passes]
    scores = mean_pass_at_k(counts, [1, args.k])
    return scores["1"] if "1" in scores else scores[1], \
        scores[str(args.k)] if str(args.k) in scores else scores[args.k], sum(c > 0 for c in passes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--shapes", default="single,many")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--single-n", type=int, default=64)
    parser.add_argument("--many-prompts", type=int, default=16)
    parser.add_argument("--many-k", type=int, default=8)
    parser.add_argument("--many-batch", type=int, default=64,
                        help="slots (generation.batch_size; the cpu preset's is 64)")
    parser.add_argument("--reps", type=int, default=2, help="runs per row; the best is shown")
    parser.add_argument("--baseline-samples", type=int, default=2)
    parser.add_argument("--agreement", action="store_true")
    parser.add_argument("--prompts", type=int, default=32, help="agreement: greedy prompts")
    parser.add_argument("--problems", type=int, default=24, help="agreement: pass@k puzzles")
    parser.add_argument("--k", type=int, default=8, help="agreement: samples per puzzle")
    parser.add_argument("--pass-tokens", type=int, default=128)
    parser.add_argument("--pass-set", choices=("generated", "seeds"), default="generated",
                        help="agreement: the fixed pass@k puzzle set")
    args = parser.parse_args(argv)
    if args.agreement:
        agreement(args)
    else:
        speed(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
