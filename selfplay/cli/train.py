"""`selfplay train PAIRS.jsonl --model NAME --out DIR`: one LoRA round, run on its own.

On several GPUs: `accelerate launch -m selfplay train ...` (each process takes its own GPU).
"""

from __future__ import annotations

import json

from selfplay.cli.fields import add_fields, given


def register(sub) -> None:
    p = sub.add_parser("train", help="train a LoRA adapter on verified pairs (JSONL)")
    p.add_argument("pairs", help='JSONL file, one {"puzzle": ..., "solution": ...} a line; '
                                 'for --objective dpo or sft+dpo one {"puzzle": ..., '
                                 '"chosen": ..., "rejected": ...} a line')
    p.add_argument("--model", default="smollm2-135m",
                   help="base model: smollm2-135m (default), tiny, a hub id or a directory")
    p.add_argument("--out", required=True,
                   help="output directory: the adapter itself (PeftModel.from_pretrained loads "
                        "it), summary.json, train_log.jsonl")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (or return it if "
                        "finished); without it an existing run in --out is an error")
    p.add_argument("--init-adapter", help="continue training this adapter instead of a fresh one")
    # Every train and LoRA setting, generated from the dataclasses (their docstrings are the
    # help); `processes` is the launcher's (accelerate), not a flag.
    from training.data import LOSS_ON
    from training.lora import LoraSettings
    from training.settings import MIXED_PRECISION, OBJECTIVES, TrainConfig
    train = p.add_argument_group("training (the [train] table of a run's config)")
    lora = p.add_argument_group("the adapter (the [lora] table)")
    p.set_defaults(train_fields=add_fields(
        train, TrainConfig, skip=("processes",),
        flags={"learning_rate": ("--learning-rate", "--lr")},
        choices={"loss_on": LOSS_ON, "objective": OBJECTIVES,
                 "mixed_precision": MIXED_PRECISION}),
        lora_fields=add_fields(lora, LoraSettings))
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import os
    import sys

    from puzzles.errors import SelfplayError
    from training.data import read_pairs
    from training.job import process_model
    from training.lora import LoraSettings
    from training.models import ModelConfig, load_model
    from training.preference import read_preference_pairs
    from training.trainer import TrainConfig, existing_run, train_adapter

    config = TrainConfig(**given(args, args.train_fields))
    if config.objective == "sft":
        pairs, preferences = read_pairs(args.pairs), ()
    else:
        pairs, preferences = (), read_preference_pairs(args.pairs)
    state = existing_run(args.out)
    if state and not args.resume:
        raise SelfplayError(f"{args.out} already holds a run ({state}): pass --resume to "
                            "continue it, or choose another --out")
    lora = LoraSettings(**given(args, args.lora_fields))
    # Under `accelerate launch` every process takes its own GPU, or its share of the CPU.
    base = load_model(process_model(ModelConfig(name=args.model)))
    summary = train_adapter(base, pairs, args.out, config, lora, init_adapter=args.init_adapter,
                            resume=True, progress=sys.stderr.isatty(), preferences=preferences)
    if os.environ.get("RANK", "0") != "0":
        return 0
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        rate = summary.tokens / summary.seconds if summary.seconds else 0.0
        what = "pairs" if config.objective == "sft" else f"preference pairs ({config.objective})"
        print(f"trained {summary.steps} steps on {summary.examples} {what} "
              f"({summary.dropped} too long), loss {summary.first_loss:.4f} -> "
              f"{summary.last_loss:.4f}, {summary.tokens} tokens "
              f"({summary.useful_token_share:.1%} useful) at {rate:.0f} tokens/s")
        print(f"adapter {summary.adapter} ({summary.adapter_hash})")
    return 0
