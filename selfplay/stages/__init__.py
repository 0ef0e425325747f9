"""The stages of a round, in order: the one list the loop, its status and the benchmarks run.

Each is `run(ctx) -> summary` (its `selfplay.reports.summaries` type, `SUMMARY_TYPES[stage]`;
a test keeps the two in step), reads what earlier stages wrote to the store, writes its own
results there, and is safe to repeat after a crash."""

STAGES = ("propose", "filter", "dedup", "solve", "verify", "select", "train")
"""What makes a round's training data and its adapter (what bench/round.py times)."""

# Round 0 adds the seeds and measures the base model; rounds 1.. run every stage, then measure.
ROUND0_STAGES = ("seed", "eval")
ROUND_STAGES = STAGES + ("eval", "card")
