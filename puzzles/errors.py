"""The one exception type a user can cause.

It lives in `puzzles/` because that package sits at the bottom of the import graph: every other
package may raise it, and the CLI catches it to print a message without a traceback.
"""


class SelfplayError(Exception):
    """A problem the user can fix: bad file, bad config, missing model. The message names it."""


class PuzzleError(SelfplayError):
    """Puzzle or solution source that does not follow the format; the message names the line."""
