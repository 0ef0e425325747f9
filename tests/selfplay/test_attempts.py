"""The one attempt sampler (`selfplay.compute.attempts.sample_attempts`): the solve stage and evaluation
sample, reject and parse alike, for puzzles and HumanEval problems, and a resumed stage draws
what an uninterrupted one would."""

import hashlib
import logging
from dataclasses import replace
from types import SimpleNamespace

import pytest

from puzzles.format import Solution, parse_puzzle
from puzzles.seeds import load_seeds
from puzzles.store import Store
from sandbox import Pair
from selfplay.compute.attempts import (TOO_LONG, PuzzleProblem, sample_attempts,
                               train_puzzles_with_shortest_solution)
from selfplay.compute.work import sampling_config
from selfplay.config import preset
from selfplay.context import Resources, RoundContext
from selfplay.evaluation.evaluate import evaluate
from selfplay.evaluation.humaneval import HumanEvalProblem
from selfplay.rundir import RunDir
from selfplay.stages import solve
import training.sampling

LOADED = SimpleNamespace(tokenizer=None, name="fake", fingerprint="fp")
BODIES = ["    return 1\n", "    ret(", "    return x + 1\n"]
LONG = ("def f(x: int, a=17):\n    return x % a == 5 and "
        + " and ".join(f"x != {i}" for i in range(400)) + "\n")


def fake_sample(loaded, prompts, n, config, seed):
    """Completions that are a function of prompt, seed and index only, as the real sampler's."""
    fake_sample.calls.append((list(prompts), n, seed))
    out = []
    for prompt in prompts:
        digest = lambda i: hashlib.sha256(f"{seed}:{i}:{prompt}".encode()).digest()[0]  # noqa
        out.append([BODIES[digest(i) % len(BODIES)] for i in range(n)])
    return out


@pytest.fixture
def sampler(monkeypatch):
    fake_sample.calls = []
    monkeypatch.setattr(training.sampling, "sample", fake_sample)
    return fake_sample


@pytest.fixture
def ctx(tmp_path):
    config = preset("tiny")
    config = replace(config, solve=replace(config.solve, unsolved_train=0, attempts=3))
    store = Store(tmp_path / "store.sqlite")
    with store.transaction():
        for record in load_seeds("train")[:6]:
            pid, _ = store.add_puzzle(record.puzzle, "seed")
            source = record.solutions[0]
            store.add_solution(pid, source, Solution(source).hash, "seed")
        for i in range(5):
            store.add_puzzle(parse_puzzle(f"def f(x: int, a={i + 3}):\n    return x % a == 1\n"),
                             "generated", round=1)
        store.add_puzzle(parse_puzzle(LONG), "generated", round=1)
    resources = Resources(config)
    resources.model = lambda adapter: LOADED
    yield RoundContext(1, config, store, RunDir(tmp_path), resources, logging.getLogger("t"))
    store.close()


class PassThrough:
    """A verifier that leaves every parsed attempt as the sampler made it."""

    def __init__(self):
        self.pairs = []

    def verify_many(self, pairs, progress=False):
        self.pairs += pairs
        return [SimpleNamespace(verdict="pending", detail="", seconds=0.0) for _ in pairs]


def _key(a):
    return (a.puzzle_hash, a.attempt, a.completion, a.solution, a.solution_hash, a.verdict,
            a.detail, a.provenance.get("parents"))


def test_solve_stage_and_evaluation_sample_the_same_attempts_for_the_same_seed(ctx, sampler):
    problems = [PuzzleProblem(sp.puzzle) for sp in solve.targets(ctx)]
    solve.run(ctx)
    solved = sorted(map(_key, ctx.store.attempts(1, "solve")))
    solve_calls, sampler.calls = sampler.calls, []
    # The seeds solve drew from, for an eval set named "solve" (its stage is `eval:solve`).
    same_seed = lambda stage, *parts: ctx.seed(stage.removeprefix("eval:"), *parts)  # noqa
    result = evaluate(LOADED, problems, train_puzzles_with_shortest_solution(ctx.store),
                      PassThrough(), set_name="solve", n=3, ks=[1],
                      sampling=sampling_config(ctx, ctx.config.solve),
                      prompt_config=ctx.config.prompts, seed=same_seed, round=1)
    assert sampler.calls == solve_calls
    assert sorted(map(_key, result.attempts)) == solved
    verdicts = {a.verdict for a in result.attempts}
    assert verdicts == {"pending", "rejected"}
    too_long = [a for a in result.attempts if a.detail.startswith(TOO_LONG)]
    assert len(too_long) == 3 and result.too_long == 1
    assert all("unparsable" in a.detail for a in result.attempts
               if a.verdict == "rejected" and a not in too_long)
    assert all(a.provenance["parents"] for a in result.attempts if a not in too_long)


def test_a_humaneval_problem_goes_through_the_same_sampler_without_examples(ctx, sampler):
    he = HumanEvalProblem("HumanEval/0", "def add(a, b):\n", "def check(c):\n    assert c(1, 2) "
                          "== 3\n", "add")
    puzzle = PuzzleProblem(ctx.store.puzzles(origin="generated")[0].puzzle)
    verifier = PassThrough()
    result = evaluate(LOADED, [he, puzzle], train_puzzles_with_shortest_solution(ctx.store),
                      verifier, set_name="mixed", n=3, ks=[1],
                      sampling=sampling_config(ctx, ctx.config.solve),
                      prompt_config=ctx.config.prompts, seed=ctx.seed, round=1)
    [(prompts, _, _)] = sampler.calls
    assert prompts[0] == he.prompt and prompts[1] != he.prompt
    mine = [a for a in result.attempts if a.puzzle_hash == he.hash]
    assert len(mine) == 3 and all(a.verdict == "pending" and not a.solution and
                                  a.provenance["parents"] == [] for a in mine)
    # What the sandbox is asked to run: the HumanEval program, and each parsed puzzle pair.
    assert verifier.pairs[0].id == he.hash and "def g():" in verifier.pairs[0].solution
    parsed = [a for a in result.attempts if a.puzzle_hash == puzzle.hash and a.solution]
    assert verifier.pairs[3:] == [Pair(puzzle.source, a.solution) for a in parsed]


def test_a_resumed_sampler_draws_what_an_uninterrupted_one_would(ctx, sampler):
    problems = [PuzzleProblem(sp.puzzle) for sp in solve.targets(ctx)]
    kwargs = dict(k=3, sampling=replace(sampling_config(ctx, ctx.config.solve), batch_size=6),
                  prompt_config=ctx.config.prompts, seed=ctx.seed, stage="solve", round=1,
                  provenance={})
    examples = train_puzzles_with_shortest_solution(ctx.store)
    whole = [list(map(_key, rows)) for rows in sample_attempts(LOADED, problems, examples,
                                                               **kwargs)]
    assert len(whole) == 1 + 3  # the too-long problem's rejections, then chunks of 2
    first_chunk = {problems[0].hash, problems[1].hash}
    resumed = [list(map(_key, rows)) for rows in sample_attempts(
        LOADED, problems, examples, done=first_chunk | {problems[-1].hash}, **kwargs)]
    assert resumed == whole[2:]


def test_evaluation_examples_are_human_solutions_whatever_the_rounds_solved(ctx):
    # The model's own (shorter) solution becomes a solve example, never an eval example: what
    # evaluation shows the model must not depend on what earlier rounds solved.
    record = load_seeds("train")[0]
    pid = ctx.store.puzzle_id(record.puzzle.hash)
    mine = "def g():\n    return 1\n"
    with ctx.store.transaction():
        ctx.store.add_solution(pid, mine, Solution(mine).hash, "generated", round=1)
    solve_examples = dict((p.hash, s.source)
                          for p, s in train_puzzles_with_shortest_solution(ctx.store))
    eval_examples = dict((p.hash, s.source) for p, s in
                         train_puzzles_with_shortest_solution(ctx.store, human_only=True))
    assert solve_examples[record.puzzle.hash] == mine
    assert eval_examples[record.puzzle.hash] == record.solutions[0]
    assert eval_examples.keys() == solve_examples.keys()


def test_similar_examples_are_the_puzzles_most_like_the_target(ctx, sampler):
    family = [parse_puzzle(f"def f(s: str, n={n}):\n    return s.count('a') == n and len(s) < {n + 9}\n")
              for n in range(3, 7)]
    examples = train_puzzles_with_shortest_solution(ctx.store)
    examples += [(p, Solution(f"def g(n={3 + i}):\n    return 'a' * n\n"))
                 for i, p in enumerate(family[:3])]
    target = PuzzleProblem(family[3])
    kwargs = dict(k=1, sampling=sampling_config(ctx, ctx.config.solve), seed=ctx.seed,
                  stage="solve", round=1, provenance={})
    similar = replace(ctx.config.prompts, solve_examples=2, example_choice="similar")
    [rows] = sample_attempts(LOADED, [target], examples, prompt_config=similar, **kwargs)
    assert set(rows[0].provenance["parents"]) <= {p.hash for p in family[:3]}
    assert len(rows[0].provenance["parents"]) == 2
    # Asked for more examples than share a shingle, the rest are drawn at random.
    [rows] = sample_attempts(LOADED, [target], examples[:2] + examples[-1:],
                             prompt_config=replace(similar, solve_examples=3), **kwargs)
    assert rows[0].provenance["parents"][-1] == family[2].hash
    assert len(set(rows[0].provenance["parents"])) == 3
    with pytest.raises(Exception, match="example_choice"):
        replace(similar, example_choice="nearest")


def test_evaluation_advances_a_progress_bar_over_its_problems(ctx, sampler, monkeypatch,
                                                              tmp_path):
    import json

    import selfplay.evaluation.evaluate
    from selfplay.evaluation.evaluate import evaluate_set

    bars = []

    class Bar:
        def __init__(self, ctx, total, desc):
            self.total, self.desc, self.n = total, desc, 0
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(selfplay.evaluation.evaluate, "progress_bar", Bar)
    ctx.resources.verifier = lambda: PassThrough()
    eval_file = tmp_path / "set.jsonl"
    eval_file.write_text("".join(json.dumps({"puzzle": f"def f(x: int, a={a}):\n    return "
                                             "x == a\n"}) + "\n" for a in range(3)))
    evaluate_set(ctx, str(eval_file), ks=[1], n=2, max_problems=0, adapter=None)
    [bar] = bars
    assert (bar.total, bar.n, bar.desc) == (3, 3, f"eval {eval_file}")


HOSTILE = ["    return " + "-" * 400 + "1\n",  # valid, 400 deep: used to stop the stage
           "    return " + " + ".join(["1"] * 400) + "\n",  # an honest 400-term sum
           "    return " + " + ".join(["1"] * 1200) + "\n",  # deeper than MAX_NESTING
           "    return " + "-" * 5000 + "1\n",  # deeper than the parser goes
           "    return " + " + ".join(["'a' * 4096"] * 300) + "\n"]  # folds into 184 MB


def test_completions_that_break_a_parser_are_rejected_not_a_stopped_stage(ctx, monkeypatch):
    def sample(loaded, prompts, n, config, seed):
        return [[HOSTILE[(p + i) % len(HOSTILE)] for i in range(n)] for p in range(len(prompts))]
    monkeypatch.setattr(training.sampling, "sample", sample)
    solve.run(ctx)  # used to raise RecursionError
    attempts = {a.completion: a for a in ctx.store.attempts(1, "solve") if a.completion}
    assert set(attempts) == set(HOSTILE)
    for parsed in HOSTILE[:2]:
        assert attempts[parsed].verdict == "pending" and attempts[parsed].solution
    for refused, why in zip(HOSTILE[2:], ("levels deep", "levels deep", "MiB of constants")):
        assert attempts[refused].verdict == "rejected" and why in attempts[refused].detail
