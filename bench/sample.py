"""Sampling speed: the batched sampler against a per-sample `generate` loop, same prompt, one run.

    python bench/sample.py                       # tiny and smollm2-135m, batch 1/16/64 (~5 min)
    python bench/sample.py --models tiny --batches 1,16 --new-tokens 32   # a quick look

For each model and batch size B, B completions of one solve prompt (built from the seeds) are
drawn by
- `per-sample`: `model.generate` called once per completion (the baseline);
- `hf-batched`: one `model.generate` call with B return sequences (left padding, KV cache);
- `sampler`: `training.sampling.sample` (shared prefill, rows leave when their function ends).
tok/s counts generated tokens, up to the end of each function. The per-sample rate does not
depend on B, so it is measured on at most `--baseline-samples` completions. `bound` is the
arithmetic bound: a measured large-matmul FLOP rate divided by 2 x parameters FLOPs a token.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from training.models import ModelConfig, load_model, torch_threads  # noqa: E402
from training.prompts import PromptConfig, cut_at_function_end, solve_prompt  # noqa: E402
from training.sampling import SamplingConfig, sample_completions  # noqa: E402


def bench_prompt() -> str:
    from puzzles.format import parse_solution
    from puzzles.seeds import load_seeds
    records = [r for r in load_seeds("train") if r.solutions]
    rng = random.Random(0)
    chosen = rng.sample(records, 3)
    examples = [(r.puzzle, parse_solution(r.solutions[0], r.puzzle)) for r in chosen[:2]]
    return solve_prompt(examples, chosen[2].puzzle, PromptConfig())


def matmul_gflops(dtype: torch.dtype, threads: int) -> float:
    """The FLOP rate of a large square matmul: what the cores can do at best."""
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    with torch_threads(threads):
        a @ b
        start, reps = time.perf_counter(), 0
        while time.perf_counter() - start < 1.0:
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


def per_sample(loaded, prompt: str, count: int, new_tokens: int, temperature: float) -> tuple[int, float]:
    tok = loaded.tokenizer
    ids = tok(prompt, return_tensors="pt")
    tokens, start = 0, time.perf_counter()
    with torch.inference_mode(), torch_threads(loaded.threads):
        for i in range(count):
            torch.manual_seed(i)
            out = loaded.model.generate(**ids, max_new_tokens=new_tokens, do_sample=True,
                                        temperature=temperature, top_p=0.95,
                                        pad_token_id=tok.pad_token_id)
            tokens += count_tokens(tok, out[0, ids["input_ids"].shape[1]:].tolist())
    return tokens, time.perf_counter() - start


def hf_batched(loaded, prompt: str, batch: int, new_tokens: int, temperature: float
               ) -> tuple[int, float]:
    tok = loaded.tokenizer
    ids = tok(prompt, return_tensors="pt")
    start = time.perf_counter()
    with torch.inference_mode(), torch_threads(loaded.threads):
        torch.manual_seed(0)
        out = loaded.model.generate(**ids, max_new_tokens=new_tokens, do_sample=True,
                                    temperature=temperature, top_p=0.95,
                                    num_return_sequences=batch, pad_token_id=tok.pad_token_id)
    seconds = time.perf_counter() - start
    width = ids["input_ids"].shape[1]
    return sum(count_tokens(tok, row[width:].tolist()) for row in out), seconds


def ours(loaded, prompt: str, batch: int, new_tokens: int, temperature: float
         ) -> tuple[int, float]:
    config = SamplingConfig(temperature=temperature, max_new_tokens=new_tokens, batch_size=batch)
    start = time.perf_counter()
    [row] = sample_completions(loaded, [prompt], batch, config, seed=0)
    return sum(c.tokens for c in row), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,smollm2-135m")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--baseline-samples", type=int, default=2,
                        help="completions the per-sample loop draws (its rate is per sample)")
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    parser.add_argument("--threads", type=int, default=0, help="0 = the loader's choice")
    parser.add_argument("--hf-batched-max", type=int, default=16,
                        help="largest batch to run hf-batched at (it prefills the prompt once "
                             "a row, which dominates at batch 64); 0 = never")
    args = parser.parse_args(argv)

    prompt = bench_prompt()
    batches = [int(b) for b in args.batches.split(",")]
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"{args.new_tokens} new tokens max; temperature {args.temperature}, top_p 0.95")
    header = f"{'model':14} {'dtype':8} {'thr':>3} {'batch':>5} {'method':11} {'tokens':>6} " \
             f"{'sec':>7} {'tok/s':>8} {'speedup':>7} {'bound':>8} {'%bound':>6}"
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        loaded = load_model(ModelConfig(name=name, dtype=args.dtype, threads=args.threads))
        params = sum(p.numel() for p in loaded.model.parameters())
        threads = loaded.threads or torch.get_num_threads()
        bound = matmul_gflops(loaded.dtype, threads) * 1e9 / (2 * params)
        n_prompt = len(loaded.tokenizer(prompt)["input_ids"])
        print(f"# {name}: {params / 1e6:.1f}M parameters, prompt {n_prompt} tokens, "
              f"bound {bound:.0f} tok/s")
        ours(loaded, prompt, 2, 4, args.temperature)  # warm-up: stop tables, allocator
        base_tokens, base_seconds = per_sample(loaded, prompt, args.baseline_samples,
                                               args.new_tokens, args.temperature)
        base_rate = base_tokens / base_seconds
        dtype = str(loaded.dtype).removeprefix("torch.")

        def row(batch, method, tokens, seconds):
            rate = tokens / seconds
            print(f"{name:14} {dtype:8} {threads:>3} {batch:>5} {method:11} {tokens:>6} "
                  f"{seconds:>7.2f} {rate:>8.1f} {rate / base_rate:>6.1f}x {bound:>8.0f} "
                  f"{100 * rate / bound:>5.1f}%", flush=True)

        row(1, "per-sample", base_tokens, base_seconds)
        for batch in batches:
            if 1 < batch <= args.hf_batched_max:
                row(batch, "hf-batched", *hf_batched(loaded, prompt, batch, args.new_tokens,
                                                     args.temperature))
            row(batch, "sampler", *ours(loaded, prompt, batch, args.new_tokens,
                                        args.temperature))
        del loaded
    return 0


if __name__ == "__main__":
    sys.exit(main())
