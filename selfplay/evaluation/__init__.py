"""Measuring a model: eval sets, pass@k with paired bootstrap intervals, HumanEval, and
evaluating a run's rounds on demand (`selfplay eval`)."""
