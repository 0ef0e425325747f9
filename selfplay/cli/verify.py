"""`selfplay verify PAIRS.jsonl --out VERDICTS.jsonl`: judge puzzle/solution pairs in the sandbox.

Malformed input lines get a `rejected` verdict naming the line (see `sandbox.files`) and are
listed on stderr; the exit code is 0 when every record got a verdict.
"""

from __future__ import annotations

import sys

from sandbox.config import VerifierConfig


def register(sub) -> None:
    parser = sub.add_parser("verify", help="verify puzzle/solution pairs in the sandbox",
                            description="Input: JSONL lines {id, puzzle, solution}. Output: "
                                        "JSONL lines {id, verdict, detail, seconds}, in order.")
    parser.add_argument("pairs", metavar="PAIRS.jsonl")
    parser.add_argument("--out", required=True, metavar="VERDICTS.jsonl",
                        help="where to write the verdicts, one JSON line per input line")
    parser.add_argument("--timeout", type=float,
                        help="seconds for g(), then for f(answer) (default: the sandbox's, "
                             f"{VerifierConfig.timeout:g})")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    parser.set_defaults(func=cmd_verify)


def cmd_verify(args) -> int:
    from dataclasses import replace

    from sandbox import Verifier, VerifierConfig
    from sandbox.files import verify_jsonl

    config = VerifierConfig()
    if args.timeout is not None:
        config = replace(config, timeout=args.timeout)
    if args.workers is not None:
        config = replace(config, workers=args.workers)
    with Verifier(config) as verifier:
        summary = verify_jsonl(verifier, args.pairs, args.out, progress=sys.stderr.isatty())
    print("\n".join(summary.lines()), file=sys.stderr)
    return 0
