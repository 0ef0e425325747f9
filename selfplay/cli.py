"""The `selfplay` command: a thin layer over the library.

Each verb lives in `selfplay/commands/<verb>.py`, which defines `register(subparsers)`. Command
modules keep heavy imports (torch, transformers) inside their handlers so that `selfplay --help`
and `selfplay puzzles list` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from puzzles.errors import SelfplayError

# Order is the order of `selfplay --help`.
COMMAND_MODULES = ("puzzles", "verify", "doctor", "sample", "train", "run", "eval", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfplay",
        description="A language model teaches itself to program: propose puzzles, solve them, "
                    "verify in a sandbox, fine-tune with LoRA, repeat.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"selfplay.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"selfplay.commands.{name}":
                continue  # a verb not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SelfplayError as e:
        print(f"selfplay: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("selfplay: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
