"""Where sampling and checks run: here or on Ray actors (executors, samplers), and the
attempts of a model at a set of problems, sampled and verified in chunks."""
