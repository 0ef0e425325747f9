"""`selfplay eval DIR`: pass@k of a round's model on an evaluation set."""

from __future__ import annotations

import argparse
import json
import sys

from puzzles.errors import SelfplayError
from selfplay.evaluation.run_eval import eval_run


def register(sub) -> None:
    p = sub.add_parser("eval", help="pass@k of a round's model on a held-out set")
    p.add_argument("dir", help="the run directory")
    p.add_argument("--round", type=int, help="which round's model (default: the last trained; "
                                             "0 is the base model)")
    p.add_argument("--eval-set", default=None,
                   help="heldout (default: the config's first eval set), p3:PATH[:test|train|all], "
                        "or a JSONL file of puzzles")
    # `--set` means KEY=VALUE on every other verb; here it once named the eval set, so a
    # script that still says so is told, not misread.
    p.add_argument("--set", dest="old_set", default=None, help=argparse.SUPPRESS)
    p.add_argument("--k", default=None, help="comma-separated k values, e.g. 1,10,100 "
                                             "(default: the config's eval.k)")
    p.add_argument("--n", type=int, help="samples per problem, at least the largest k "
                                         "(default: the config's eval.samples)")
    p.add_argument("--max-problems", type=int, help="evaluate a fixed random subset of this "
                                                    "many problems (0: all; default: the "
                                                    "config's eval.max_problems)")
    p.add_argument("--adapter", default=None,
                   help="a PEFT adapter directory to evaluate on the run's base model instead "
                        "of the round's own (e.g. one committed beside a result); --round "
                        "still picks the sampling seeds")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    if args.old_set is not None:
        raise SelfplayError(f"selfplay eval names its eval set with --eval-set (--eval-set "
                            f"{args.old_set}); --set KEY=VALUE is a setting on the other verbs")
    ks = None
    if args.k:
        try:
            ks = [int(k) for k in args.k.split(",") if k.strip()]
        except ValueError:
            raise SelfplayError(f"--k takes comma-separated whole numbers, not {args.k!r}"
                                ) from None
        if not ks or min(ks) < 1:
            raise SelfplayError(f"--k takes whole numbers of at least 1, not {args.k!r}")
    # Refused here, before a model loads: a round below 0 would evaluate the base model under
    # its label, and 0 samples would fall back to the config's count without a word.
    for flag, value, least in (("--round", args.round, 0), ("--n", args.n, 1),
                               ("--max-problems", args.max_problems, 0)):
        if value is not None and value < least:
            raise SelfplayError(f"{flag} must be at least {least}, not {value}")
    result = eval_run(args.dir, round=args.round, set_name=args.eval_set, ks=ks, n=args.n,
                      max_problems=args.max_problems, adapter=args.adapter,
                      progress=sys.stderr.isatty())
    for line in result["rejected"]:
        print(f"selfplay: eval set {result['set']}: skipped {line}", file=sys.stderr)
    if not result["metric"]["problems"]:
        raise SelfplayError(f"eval set {result['set']} has no problems to evaluate: nothing "
                            "was scored")
    if args.json:
        print(json.dumps({"round": result["round"], "set": result["set"],
                          "adapter": result["adapter"], **result["metric"]}))
    else:
        m = result["metric"]
        scores = ", ".join(f"pass@{k} {v:.3f}" for k, v in m["pass_at_k"].items())
        model = f" with adapter {result['adapter']}" if result["adapter"] else ""
        print(f"round {result['round']}{model} on {result['set']}: {scores} "
              f"({m['problems']} problems x {m['samples']} samples, {m['solved']} solved, "
              f"{m['leaked']} leaked into training, {m['too_long']} too long to prompt)")
    return 0
