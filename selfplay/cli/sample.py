"""`selfplay sample`: n completions of one prompt, as JSON lines.

    selfplay sample --model tiny --prompt-file prompt.txt --n 4 --seed 0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from puzzles.errors import SelfplayError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample", help="sample completions of a prompt from a model",
        description="Print N JSON lines {\"completion\": ...}, each cut at the end of the "
                    "function the model writes.")
    p.add_argument("--model", default="smollm2-135m",
                   help="smollm2-135m (default), tiny, a hub id or a local model directory")
    p.add_argument("--adapter", default="", help="a LoRA adapter directory to apply")
    p.add_argument("--prompt-file", required=True, type=Path,
                   help="file holding the prompt ('-' reads standard input)")
    p.add_argument("--n", type=int, default=1, help="completions to sample (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--max-new-tokens", type=int, default=256,
                   help="most tokens a completion may have; one that hits it is cut off")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    p.add_argument("--top-p", type=float, default=0.95,
                   help="nucleus sampling: draw from the smallest set of tokens holding this "
                        "much probability (1 = all)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="completions decoded together (rows of one forward pass)")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda or cuda:N; auto takes the GPU when there is one")
    p.add_argument("--dtype", default="auto",
                   help="the model's weights: float32, bfloat16 or float16; auto is bfloat16 "
                        "on a GPU that has it, else float32")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all available)")
    p.add_argument("--details", action="store_true",
                   help="also print each completion's finish reason and token count")
    p.set_defaults(func=run)


def run(args) -> int:
    from training.models import ModelConfig, load_model
    from training.sampling import SamplingConfig, sample_completions

    prompt = _read_prompt(args.prompt_file)
    loaded = load_model(ModelConfig(name=args.model, device=args.device, dtype=args.dtype,
                                    threads=args.threads, adapter=args.adapter))
    config = SamplingConfig(temperature=args.temperature, top_p=args.top_p,
                            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
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
