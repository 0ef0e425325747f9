"""The stages of a round, in order. Each is `run(ctx) -> summary` (its `selfplay.reports.summaries`
type), reads what earlier stages wrote to the store, writes its own results there, and is safe
to repeat after a crash."""

STAGES = ("propose", "filter", "dedup", "solve", "verify", "select", "train")
