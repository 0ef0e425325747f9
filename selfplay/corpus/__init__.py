"""Human puzzles into the store: importing files (P3, JSONL) and the rule-based generators,
through the same sandbox gate."""
