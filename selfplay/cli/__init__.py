"""The `selfplay` command: a thin layer over the library.

Each verb lives in `selfplay/cli/<verb>.py`, which defines `register(subparsers)`. Command
modules keep heavy imports (torch, transformers) inside their handlers so that `selfplay --help`
and `selfplay puzzles list` start fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import io
import os
import signal
import sqlite3
import sys

from puzzles.errors import SelfplayError

# Order is the order of `selfplay --help`.
COMMAND_MODULES = ("puzzles", "verify", "doctor", "sample", "train", "merge", "run", "eval",
                   "learn", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfplay",
        description="A language model teaches itself to program: propose puzzles, solve them, "
                    "verify in a sandbox, fine-tune with LoRA, repeat.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"selfplay.cli.{name}").register(sub)
    _show_defaults(parser)
    return parser


class _DefaultsShown:
    """Adds "(default: X)" to an option's help where it has a default and does not say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, "", argparse.SUPPRESS)
                and "default" not in text and text != argparse.SUPPRESS):
            text += (" " if text else "") + "(default: %(default)s)"
        return text


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    # Set after the verbs registered, on every parser below this one, keeping a verb's own
    # formatter (the raw description of `export`).
    parser.formatter_class = type("Formatter", (_DefaultsShown, parser.formatter_class), {})
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _show_defaults(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return rc
    except SelfplayError as e:
        print(f"selfplay: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("selfplay: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _broken_pipe()
    except Exception as e:
        message = environment_error(e)
        if message is None:
            raise  # a bug: keep its traceback
        print(f"selfplay: error: {message}", file=sys.stderr)
        return 1


def _broken_pipe() -> int:
    # The reader went away (`selfplay status | head`): stop quietly, as other tools do. Point
    # stdout at devnull so the interpreter's flush at exit does not raise again
    # (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is not a real file (tests capture it): nothing left to flush
    return 128 + signal.SIGPIPE


# What the disk says when it is full or read-only, in each layer that writes: the OS, SQLite,
# torch's zip writer (which reports a short write as "unexpected pos" or "file write failed")
# and safetensors (the OS message inside its own error type).
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = ("database or disk is full",)
_SQLITE_READ_ONLY = ("readonly database", "unable to open database file")
_TORCH_SHORT_WRITE = ("unexpected pos", "file write failed")
_AGAIN = "free some space, then run the command again (a run resumes where it stopped)"


def environment_error(exc: BaseException) -> str | None:
    """A one-line message for an error the machine, not the code, caused (a full disk, a
    read-only or missing path), looking through the exceptions `exc` was raised from; None for
    anything else, which is a bug and keeps its traceback."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = " ".join(str(exc).split())  # one line, whatever the library wrote
        lowered = text.lower()
        if isinstance(exc, OSError) and exc.errno is not None:
            where = f": {exc.filename}" if exc.filename else ""
            if exc.errno in _FULL_ERRNOS:
                return f"the disk is full ({exc.strerror}{where}): {_AGAIN}"
            if exc.errno == errno.EROFS:
                return (f"{exc.filename or 'a path'} is on a read-only file system (this "
                        "command writes there)")
            if exc.filename:  # a path the user gave or the run holds; not a socket, say
                return f"{exc.strerror}{where}"
        if isinstance(exc, sqlite3.OperationalError):
            if any(s in lowered for s in _SQLITE_FULL):
                return f"the disk is full (SQLite: {text}): {_AGAIN}"
            if any(s in lowered for s in _SQLITE_READ_ONLY):
                return (f"the store cannot be opened or written (SQLite: {text}): check "
                        "that its folder exists and is writable")
        if "no space left on device" in lowered:  # safetensors' and others' own wrappers
            return f"the disk is full ({text}): {_AGAIN}"
        if isinstance(exc, RuntimeError) and any(s in lowered for s in _TORCH_SHORT_WRITE):
            return (f"writing a file failed, most likely because the disk is full ({text}): "
                    f"{_AGAIN}")
        exc = exc.__cause__ or exc.__context__
    return None


if __name__ == "__main__":
    sys.exit(main())
