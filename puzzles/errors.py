"""The one exception type a user can cause.

It lives in `puzzles/` because that package sits at the bottom of the import graph: every other
package may raise it, and the CLI catches it to print a message without a traceback.
"""


class SelfplayError(Exception):
    """A problem the user can fix: bad file, bad config, missing model. The message names it."""


PUZZLE_REASONS = ("empty", "too_long", "syntax", "extra_code", "signature", "answer_type",
                  "no_return", "truncated", "invalid", "no_solution")
"""Why source was refused, as a code to count and branch on (the message is for people):
empty; too_long (over the size or literal-length limits); syntax; extra_code (more than one
function, other top-level code, async or decorated); signature (arguments, defaults,
annotations); answer_type (not one of the allowed types); no_return; truncated (a model's
completion ended mid-function); invalid (anything else: metadata, record shape); no_solution
(a proposed pair whose second function is not its solution `g`)."""


class PuzzleError(SelfplayError):
    """Puzzle or solution source that does not follow the format; the message names the line
    and `reason` (one of PUZZLE_REASONS) says which rule it broke."""

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        if reason not in PUZZLE_REASONS:
            raise ValueError(f"unknown PuzzleError reason {reason!r}")
        self.reason = reason

    def __reduce__(self):  # crosses process boundaries (pickled) with its reason
        return type(self), (str(self), self.reason)
