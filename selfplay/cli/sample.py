"""`selfplay sample`: n completions of one prompt, as JSON lines.

    selfplay sample --model tiny --prompt-file prompt.txt --n 4 --seed 0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from puzzles.errors import SelfplayError
from selfplay.cli.fields import add_fields, given


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample", help="sample completions of a prompt from a model",
        description="Print N JSON lines {\"completion\": ...}, each cut at the end of the "
                    "function the model writes.")
    p.add_argument("--prompt-file", required=True, type=Path,
                   help="file holding the prompt ('-' reads standard input)")
    p.add_argument("--n", type=int, default=1, help="completions to sample (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    # The model's and the sampling's settings, generated from their dataclasses (the [model]
    # and [generation] tables of a run's config say the same).
    from training.settings import (BACKENDS, MODEL_DTYPES, SAMPLING_DTYPES, ModelConfig,
                                   SamplingConfig)
    p.set_defaults(
        model_fields=add_fields(p.add_argument_group("the model"), ModelConfig,
                                flags={"name": ("--model",)}, choices={"dtype": MODEL_DTYPES}),
        sampling_fields=add_fields(p.add_argument_group("sampling"), SamplingConfig,
                                   prefix="sampling-",
                                   flags={"temperature": ("--temperature",),
                                          "top_p": ("--top-p",),
                                          "max_new_tokens": ("--max-new-tokens",),
                                          "batch_size": ("--batch-size",),
                                          "backend": ("--backend",)},
                                   choices={"dtype": SAMPLING_DTYPES, "backend": BACKENDS}))
    p.add_argument("--details", action="store_true",
                   help="also print each completion's finish reason and token count")
    p.set_defaults(func=run)


def run(args) -> int:
    from training.models import ModelConfig, load_model
    from training.sampling import SamplingConfig, sample_completions

    prompt = _read_prompt(args.prompt_file)
    loaded = load_model(ModelConfig(**given(args, args.model_fields)))
    config = SamplingConfig(**given(args, args.sampling_fields))
    [completions] = sample_completions(loaded, [prompt], args.n, config, seed=args.seed)
    for c in completions:
        line = {"completion": c.text}
        if args.details:
            line.update(finish=c.finish, tokens=c.tokens)
        print(json.dumps(line), flush=True)
    return 0


def _read_prompt(path: Path) -> str:
    """The prompt, less the final newline an editor adds: a prompt ends mid-line (`def f2(`)."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as e:
        raise SelfplayError(f"prompt file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SelfplayError(f"prompt file {path} is not UTF-8 text") from None
    if not text.strip():
        raise SelfplayError(f"prompt file {path} is empty")
    return text.removesuffix("\n")
