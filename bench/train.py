"""LoRA training speed and memory: a plain setup against ours, same pairs, one run.

    python bench/train.py                        # tiny and smollm2-135m, 3 setups (~4 min idle)
    python bench/train.py --models tiny --steps 4
    python bench/train.py --experiment loss-on   # held-out loss: solution-only vs whole example
    python bench/train.py --experiment rounds    # round 2: continue the adapter vs a fresh one
    python bench/train.py --precision-ab --out bench/results/train_bf16_<cpu>.txt
                                                 # fp32 vs bf16 on the cpu preset's train shape

Every setup trains the same global batch, 16 blocks of 256 tokens a step (the issue's figure),
on pairs of the seed corpus:
- `plain`: micro batch 16, full logits, cross entropy over them (what a plain script does; the
  baseline);
- `micro4`: 4 micro batches of 4, the loss computed from hidden states in slices, only where
  there is loss;
- `micro4+gc`: the same with gradient checkpointing (not in the default run);
- `micro1+gc`: 16 micro batches of 1, gradient checkpointing: the least memory.
Each setup runs in its own process, so `peak RSS` is its own (`load RSS` is the process after
loading the model, before training). tok/s counts example tokens (padding excluded) over the
training loop; `useful` is the share of block positions that hold example tokens.

Measured 2026-11-22 on 2 shared CPU cores (load 4-7 from other jobs, so s/step is slow and
noisy; peak RSS is not affected):

    model         setup          tok/s  s/step  useful  peak RSS
    tiny          plain           2352    1.48   85.1%     0.93G
    tiny          micro4          3790    0.92   85.1%     0.51G
    tiny          micro4+gc       1568    2.22   85.1%     0.46G
    tiny          micro1+gc       1173    2.97   85.1%     0.40G
    smollm2-135m  plain             22  150.68   82.2%    15.55G
    smollm2-135m  micro4            19  181.21   82.2%     5.29G
    smollm2-135m  micro4+gc          7  486.65   86.7%     3.02G
    smollm2-135m  micro1+gc          5  650.41   86.7%     1.63G

`--precision-ab` trains smollm2-135m with the cpu preset's train settings (16 steps of 8 x 384
tokens) on the seed pairs with mixed_precision "no" and "bf16", interleaved (fp32, bf16, fp32,
bf16 by default: the machine is shared, so each pair of runs sees about the same load), each
in its own process, and prints every run (tok/s, seconds, peak RSS, first and last loss), both
loss curves, the first-step loss difference, the CPU and the load average.

The experiments train `tiny` on the P3 train split (/work/shared/data/p3 or --p3) and measure
the mean loss per solution token on P3 held-out pairs, whose families tiny never saw.
Measured (599 train pairs, 300 held-out, 2 epochs = 23 steps, defaults otherwise):

    held-out loss: base 4.2716 | loss on solution 4.1536 | loss on all 4.1567
    round 2 on all pairs: fresh adapter 4.1536 | continuing round 1's adapter 4.1016
                          (round 1 alone, on half the pairs: 4.2022)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETUPS = {
    "plain": {"micro_batch": 16, "grad_accum": 1, "loss_chunk_tokens": 0},
    "micro4": {"micro_batch": 4, "grad_accum": 4},
    "micro4+gc": {"micro_batch": 4, "grad_accum": 4, "gradient_checkpointing": True},
    "micro1+gc": {"micro_batch": 1, "grad_accum": 16, "gradient_checkpointing": True},
}
P3_DIR = Path("/work/shared/data/p3")


def seed_pairs() -> list[tuple[str, str]]:
    from puzzles.seeds import load_seeds

    return [(r.puzzle.source, s) for r in load_seeds() for s in r.solutions]


def rss_gb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def run_setup(spec: dict) -> dict:
    """One setup, in this process: load, train a few steps, measure."""
    from training.models import load_model
    from training.trainer import TrainConfig, train_adapter

    base = load_model(spec["model"])
    load_rss = rss_gb()
    config = TrainConfig(steps=spec["steps"], block_size=256, checkpoint_every=0,
                         warmup_ratio=0.0, **SETUPS[spec["setup"]])
    with tempfile.TemporaryDirectory() as out:
        summary = train_adapter(base, seed_pairs(), out, config)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"tok_s": summary.tokens / summary.seconds, "s_step": summary.seconds / summary.steps,
            "useful": summary.useful_token_share, "load_rss": load_rss, "peak_rss": peak,
            "loss": summary.last_loss}


def run_precision(spec: dict) -> dict:
    """One precision run of the A/B, in this process: the cpu preset's train shape."""
    import dataclasses

    from selfplay.config import preset
    from training.models import load_model
    from training.trainer import read_train_log, resolve_mixed_precision, train_adapter

    base = load_model(spec["model"])
    load_rss = rss_gb()
    config = dataclasses.replace(preset("cpu").train, steps=spec["steps"], checkpoint_every=0,
                                 mixed_precision=spec["precision"])
    with tempfile.TemporaryDirectory() as out:
        summary = train_adapter(base, seed_pairs(), out, config, resume=False)
        curve = [row["loss"] for row in read_train_log(out)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"tok_s": summary.tokens / summary.seconds, "seconds": summary.seconds,
            "load_rss": load_rss, "peak_rss": peak, "curve": curve, "tokens": summary.tokens,
            "auto": resolve_mixed_precision("auto", "cpu"), "threads": base.threads}


def cpu_name() -> str:
    import platform

    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def precision_ab(model: str, order: list[str], steps: int, out: Path | None) -> None:
    import datetime

    from training.models import cpu_has_bf16

    lines = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)
        if out is not None:
            out.write_text("\n".join(lines) + "\n")

    say(f"LoRA training, fp32 vs bf16 interleaved: {model}, cpu preset train shape "
        f"({steps} steps of 8 x 384 tokens), seed pairs")
    say(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_name()}, "
        f"{os.cpu_count()} CPUs, bf16 units: {cpu_has_bf16()}, "
        f"load average at start {os.getloadavg()[0]:.1f}")
    say(f"{'run':<5}{'precision':<11}{'tok/s':>8}{'seconds':>9}{'load RSS':>10}{'peak RSS':>10}"
        f"{'first loss':>12}{'last loss':>11}{'load avg':>10}")
    runs = []
    for i, precision in enumerate(order, 1):
        spec = json.dumps({"model": model, "precision": precision, "steps": steps})
        proc = subprocess.run([sys.executable, __file__, "--child-precision", spec], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            say(f"{i:<5}{precision:<11} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["precision"] = precision
        runs.append(r)
        say(f"{i:<5}{precision:<11}{r['tok_s']:>8.0f}{r['seconds']:>9.0f}{r['load_rss']:>9.2f}G"
            f"{r['peak_rss']:>9.2f}G{r['curve'][0]:>12.5f}{r['curve'][-1]:>11.5f}"
            f"{os.getloadavg()[0]:>10.1f}")
    by = {p: [r for r in runs if r["precision"] == p] for p in ("no", "bf16")}
    if not (by["no"] and by["bf16"]):
        return
    say(f"(threads {runs[0]['threads']}; mixed_precision auto resolves to "
        f"{runs[0]['auto']!r} here)")
    best = {p: max(r["tok_s"] for r in rs) for p, rs in by.items()}
    peak = {p: max(r["peak_rss"] for r in rs) for p, rs in by.items()}
    pairwise = ", ".join(f"{b['tok_s'] / a['tok_s']:.2f}x" for a, b in zip(by["no"], by["bf16"]))
    say(f"bf16 / fp32 tok/s: best {best['bf16'] / best['no']:.2f}x, pairwise {pairwise}; "
        f"peak RSS bf16 {peak['bf16']:.2f}G vs fp32 {peak['no']:.2f}G")
    first = {p: rs[0]["curve"][0] for p, rs in by.items()}
    say(f"first-step loss: fp32 {first['no']:.5f}, bf16 {first['bf16']:.5f}, "
        f"diff {(first['bf16'] - first['no']) / first['no']:+.3%}")
    same = {p: all(r["curve"] == rs[0]["curve"] for r in rs) for p, rs in by.items()}
    say(f"curves repeat exactly across runs of a precision: fp32 {same['no']}, "
        f"bf16 {same['bf16']}")
    say(f"{'step':<6}{'fp32 loss':>11}{'bf16 loss':>11}{'diff':>9}")
    for step, (a, b) in enumerate(zip(by["no"][0]["curve"], by["bf16"][0]["curve"]), 1):
        say(f"{step:<6}{a:>11.5f}{b:>11.5f}{(b - a) / a:>+9.2%}")


def throughput_table(models: list[str], setups: list[str], steps: int) -> None:
    print(f"LoRA r16, {steps} steps of 16 x 256 tokens, seed pairs, "
          f"{os.cpu_count()} CPUs, float32")
    print(f"{'model':<14}{'setup':<12}{'tok/s':>8}{'s/step':>8}{'useful':>8}"
          f"{'load RSS':>10}{'peak RSS':>10}{'vs plain':>10}")
    for model in models:
        plain = None
        for setup in setups:
            spec = json.dumps({"model": model, "setup": setup, "steps": steps})
            proc = subprocess.run([sys.executable, __file__, "--child", spec], cwd=ROOT,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{model:<14}{setup:<12} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            plain = plain or (r if setup == "plain" else None)
            ratio = f"{r['peak_rss'] / plain['peak_rss']:.2f}x" if plain else "-"
            print(f"{model:<14}{setup:<12}{r['tok_s']:>8.0f}{r['s_step']:>8.2f}"
                  f"{r['useful']:>8.1%}{r['load_rss']:>9.2f}G{r['peak_rss']:>9.2f}G{ratio:>10}",
                  flush=True)


def p3_pairs(p3_dir: Path) -> tuple[list, list]:
    from puzzles.p3 import read_p3

    records, _ = read_p3(p3_dir / "puzzles.json")
    train = [(r.puzzle.source, s) for r in records if r.puzzle.split == "train"
             for s in r.solutions[:1]]
    heldout = [(r.puzzle.source, s) for r in records if r.puzzle.split == "heldout"
               for s in r.solutions[:1]]
    return train, heldout


def heldout_loss(base, adapter, pairs) -> float:
    from peft import PeftModel

    from training.trainer import pair_loss

    model = base.model if adapter is None else PeftModel.from_pretrained(base.model, adapter)
    try:
        return pair_loss(model, base.tokenizer, pairs, loss_on="solution", block_size=512)
    finally:
        if adapter is not None:
            model.unload()


def experiment_loss_on(p3_dir: Path, epochs: float, n_heldout: int) -> None:
    from training.models import load_model
    from training.trainer import TrainConfig, train_adapter

    base = load_model("tiny")
    train, heldout = p3_pairs(p3_dir)
    heldout = heldout[:n_heldout]
    print(f"tiny, {len(train)} P3 train pairs, {epochs} epochs; loss per solution token on "
          f"{len(heldout)} held-out pairs")
    print(f"{'loss on':<12}{'steps':>6}{'train loss':>12}{'held-out':>10}{'seconds':>9}")
    print(f"{'(base)':<12}{'':>6}{'':>12}{heldout_loss(base, None, heldout):>10.4f}")
    for loss_on in ("solution", "all"):
        config = TrainConfig(epochs=epochs, loss_on=loss_on, checkpoint_every=0)
        with tempfile.TemporaryDirectory() as out:
            s = train_adapter(base, train, out, config)
            loss = heldout_loss(base, s.adapter, heldout)
        print(f"{loss_on:<12}{s.steps:>6}{s.last_loss:>12.4f}{loss:>10.4f}{s.seconds:>9.0f}",
              flush=True)


def experiment_rounds(p3_dir: Path, epochs: float, n_heldout: int) -> None:
    """Round 1 trains on half the pairs; round 2 has all of them and either continues the
    round-1 adapter or starts a fresh one; both round-2 runs take the same steps."""
    from training.models import load_model
    from training.trainer import TrainConfig, train_adapter

    base = load_model("tiny")
    train, heldout = p3_pairs(p3_dir)
    heldout = heldout[:n_heldout]
    first = train[: len(train) // 2]
    config = TrainConfig(epochs=epochs, checkpoint_every=0)
    print(f"tiny, round 1 on {len(first)} P3 train pairs, round 2 on all {len(train)}, "
          f"{epochs} epochs each; loss per solution token on {len(heldout)} held-out pairs")
    print(f"{'round 2':<22}{'steps':>6}{'train loss':>12}{'held-out':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        r1 = train_adapter(base, first, Path(tmp) / "r1", config)
        print(f"{'(after round 1)':<22}{r1.steps:>6}{r1.last_loss:>12.4f}"
              f"{heldout_loss(base, r1.adapter, heldout):>10.4f}", flush=True)
        for name, init in (("fresh on all pairs", None), ("continue on all pairs", r1.adapter)):
            s = train_adapter(base, train, Path(tmp) / name.replace(" ", "_"), config,
                              init_adapter=init)
            print(f"{name:<22}{s.steps:>6}{s.last_loss:>12.4f}"
                  f"{heldout_loss(base, s.adapter, heldout):>10.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,smollm2-135m")
    parser.add_argument("--setups", default="plain,micro4,micro1+gc")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--experiment", choices=("loss-on", "rounds"))
    parser.add_argument("--epochs", type=float, default=2.0, help="for the experiments")
    parser.add_argument("--heldout", type=int, default=300, help="held-out pairs to score")
    parser.add_argument("--p3", type=Path, default=P3_DIR, help="directory of P3 puzzles.json")
    parser.add_argument("--precision-ab", action="store_true",
                        help="fp32 vs bf16 on the cpu preset's train shape, interleaved")
    parser.add_argument("--order", default="no,bf16,no,bf16",
                        help="for --precision-ab: mixed_precision of each run, in order")
    parser.add_argument("--ab-steps", type=int, default=16, help="for --precision-ab")
    parser.add_argument("--ab-model", default="smollm2-135m", help="for --precision-ab")
    parser.add_argument("--out", type=Path, help="for --precision-ab: also write the table here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-precision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_setup(json.loads(args.child))))
    elif args.child_precision:
        print(json.dumps(run_precision(json.loads(args.child_precision))))
    elif args.precision_ab:
        precision_ab(args.ab_model, args.order.split(","), args.ab_steps, args.out)
    elif args.experiment == "loss-on":
        experiment_loss_on(args.p3, args.epochs, args.heldout)
    elif args.experiment == "rounds":
        experiment_rounds(args.p3, args.epochs, args.heldout)
    else:
        throughput_table(args.models.split(","), args.setups.split(","), args.steps)


if __name__ == "__main__":
    main()
