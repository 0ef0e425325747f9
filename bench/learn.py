"""The learning benchmark: an alias of `selfplay learn` (selfplay/cli/learn.py has its help).

    python bench/learn.py DIR --preset cpu --rounds 3 [--p3 PATH] [--arms selfplay,control]
    python bench/learn.py DIR --quick              # tiny model, one round, 8 problems a set
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfplay.cli import main as selfplay_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return selfplay_main(["learn", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
