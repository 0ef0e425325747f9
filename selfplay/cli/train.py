"""`selfplay train PAIRS.jsonl --model NAME --out DIR`: one LoRA round, run on its own.

On several GPUs: `accelerate launch -m selfplay train ...` (each process takes its own GPU).
"""

from __future__ import annotations

import json


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
    p.add_argument("--steps", type=int, help="optimizer steps (default: one pass over the data)")
    p.add_argument("--epochs", type=float, help="passes over the data when --steps is not given")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--micro-batch", type=int, help="blocks per forward pass")
    p.add_argument("--grad-accum", type=int, help="micro batches per optimizer step")
    p.add_argument("--block-size", type=int, help="tokens per packed block")
    p.add_argument("--loss-on", choices=("solution", "all"), help="what takes loss")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (0: none)")
    p.add_argument("--gradient-checkpointing", action="store_true", default=None,
                   help="trade compute for memory")
    p.add_argument("--objective", choices=("sft", "dpo", "sft+dpo"),
                   help="sft (default): next-token loss on pairs; dpo: DPO on preference pairs "
                        "against the model without its adapter; sft+dpo: both summed")
    p.add_argument("--beta", type=float, help="DPO beta (default 0.1)")
    p.add_argument("--seed", type=int, help="seeds the adapter's initial weights, the data "
                                            "order and dropout (default 0)")
    p.add_argument("--rank", type=int, help="LoRA rank")
    p.add_argument("--alpha", type=float, help="LoRA alpha")
    p.add_argument("--dropout", type=float, help="LoRA dropout (0: the same result on any "
                                                 "number of processes)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_train)


_CONFIG_ARGS = {"steps": "steps", "epochs": "epochs", "lr": "learning_rate",
                "micro_batch": "micro_batch", "grad_accum": "grad_accum",
                "block_size": "block_size", "loss_on": "loss_on",
                "checkpoint_every": "checkpoint_every",
                "gradient_checkpointing": "gradient_checkpointing", "seed": "seed",
                "objective": "objective", "beta": "beta"}


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

    config = TrainConfig(**{field: getattr(args, arg) for arg, field in _CONFIG_ARGS.items()
                            if getattr(args, arg) is not None})
    if config.objective == "sft":
        pairs, preferences = read_pairs(args.pairs), ()
    else:
        pairs, preferences = (), read_preference_pairs(args.pairs)
    state = existing_run(args.out)
    if state and not args.resume:
        raise SelfplayError(f"{args.out} already holds a run ({state}): pass --resume to "
                            "continue it, or choose another --out")
    lora = LoraSettings(**{k: v for k, v in (("rank", args.rank), ("alpha", args.alpha),
                                             ("dropout", args.dropout)) if v is not None})
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
