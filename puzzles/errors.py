"""The one exception type a user can cause.

It lives in `puzzles/` because that package sits at the bottom of the import graph: every other
package may raise it, and the CLI catches it to print a message without a traceback.
"""


class SelfplayError(Exception):
    """A problem the user can fix: bad file, bad config, missing model. The message names it."""


PUZZLE_REASONS = ("empty", "too_long", "too_deep", "syntax", "extra_code", "signature",
                  "answer_type", "no_return", "truncated", "invalid", "no_solution",
                  "no_input")
"""Why source was refused, as a code to count and branch on (the message is for people):
empty; too_long (over the size or literal-length limits, or constants that compiling would
fold into too many bytes); too_deep (nested deeper than puzzles.format.MAX_NESTING, or than
the parser itself goes); syntax; extra_code (more than one
function, other top-level code, async or decorated); signature (arguments, defaults,
annotations); answer_type (not one of the allowed types); no_return; truncated (a model's
completion ended mid-function); invalid (anything else: metadata, record shape); no_solution
(a proposed pair whose second function is not its solution `g`); no_input (a proposed
program whose input is not a literal of the type it takes: puzzles.programs)."""


class PuzzleError(SelfplayError):
    """Puzzle or solution source that does not follow the format; the message names the line
    and `reason` (one of PUZZLE_REASONS) says which rule it broke."""

    def __init__(self, message: str, reason: str = "invalid"):
        # Messages quote model text, and end up in stores and logs: a lone surrogate in one
        # (not text: UTF-8 cannot encode it) would fail the write, so it is kept as its escape.
        super().__init__(as_text(message))
        if reason not in PUZZLE_REASONS:
            raise ValueError(f"unknown PuzzleError reason {reason!r}")
        self.reason = reason

    def __reduce__(self):  # crosses process boundaries (pickled) with its reason
        return type(self), (str(self), self.reason)


def as_text(value: str) -> str:
    """`value` as valid text: an exact `str` (not a subclass whose methods could run code) that
    UTF-8 can encode, lone surrogates written as their backslash escapes. What leaves a sandbox
    worker or a parser goes into SQLite and JSON files, which accept nothing else."""
    text = str.__str__(value)  # an exact copy of a str subclass, calling none of its methods
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
