"""`selfplay merge ADAPTER OUT --model NAME`: fold a LoRA adapter into its base model's weights.

The result is a plain transformers model directory (weights and tokenizer): set `model.name`
to it to start a run from a trained adapter (a run refuses `model.adapter`), or load it anywhere
with `AutoModelForCausalLM.from_pretrained`. The merge runs in float32 on the CPU
(`training.lora.export_merged`).
"""

from __future__ import annotations

from training.settings import MODEL_DTYPES, SMOLLM2


def register(sub) -> None:
    p = sub.add_parser("merge", help="fold a LoRA adapter into its base model's weights",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("adapter", help="the adapter directory (a run's RUN/adapters/rN, or what "
                                   "`selfplay train --out` wrote)")
    p.add_argument("out", help="the directory to write (replaced if it exists)")
    p.add_argument("--model", default=SMOLLM2,
                   help="the adapter's base model: smollm2-135m (default), tiny, a hub id or a "
                        "directory")
    p.add_argument("--dtype", default="float32",
                   choices=[d for d in MODEL_DTYPES if d != "auto"],
                   help="what the merged weights are stored as")
    p.set_defaults(func=cmd_merge)


def cmd_merge(args) -> int:
    from training.lora import check_adapter_dir, export_merged
    from training.models import load_model
    from training.settings import ModelConfig

    check_adapter_dir(args.adapter)
    loaded = load_model(ModelConfig(name=args.model, device="cpu", dtype="float32"))
    print(export_merged(loaded, args.adapter, args.out, dtype=args.dtype))
    return 0
