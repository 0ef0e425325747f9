"""Prompts and completion parsing: what the loop relies on to turn text into puzzles."""

from __future__ import annotations

import random

import pytest

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import parse_puzzle, parse_solution
from training.prompts import (PromptConfig, cut_at_function_end, parse_pair_proposal,
                              parse_proposal, parse_solution_completion, propose_pair_prompt,
                              propose_prompt, solve_prompt)

PUZZLES = [
    parse_puzzle("def f(x: int, a=7, b=30):\n    \"\"\"Solve a linear equation.\"\"\"\n"
                 "    return a * x == b * 2 + 2\n", name="lin"),
    parse_puzzle("def f(s: str, n=5):\n    return len(s) == n and s == s[::-1]\n", name="pal"),
    parse_puzzle("def f(li: list[int], t=12):\n    return len(li) == 3 and sum(li) == t\n",
                 name="sum3"),
    parse_puzzle("def f(n: int):\n    return f.__name__ == 'f' and n * n == 49\n", name="rec"),
]
SOLVED = [(PUZZLES[0], parse_solution("def g(a=7, b=30):\n    return (b * 2 + 2) // a\n")),
          (PUZZLES[1], parse_solution("def g(n=5):\n    return 'a' * n\n"))]


# The stop rule

def test_cut_keeps_the_function_and_drops_the_next_top_level_line():
    text, ended = cut_at_function_end("x: int):\n    return x > 3\n\ndef f6(y: str):\n")
    assert (text, ended) == ("x: int):\n    return x > 3\n", True)


def test_cut_ignores_blank_and_indented_lines_and_the_first_line():
    body = "x: int):\n\n    def h():\n        return 1\n    return x\n"
    assert cut_at_function_end(body) == (body, False)
    assert cut_at_function_end("assert f(g())")[1] is False  # first line continues the prompt


# Propose

def test_propose_prompt_renames_examples_and_ends_with_the_next_def():
    prompt, hashes = propose_prompt(PUZZLES, random.Random(0), PromptConfig(propose_examples=3))
    assert len(hashes) == 3 and set(hashes) <= {p.hash for p in PUZZLES}
    assert prompt.endswith("\ndef f4(")
    assert [f"def f{i}(" in prompt for i in (1, 2, 3)] == [True] * 3
    assert "def f(" not in prompt and "Solve a linear" not in prompt  # no docstrings


def test_propose_prompt_renames_references_to_the_function_too():
    rec = PUZZLES[3]
    prompt, _ = propose_prompt([rec], random.Random(0))
    assert "f1.__name__ == 'f'" in prompt and prompt.endswith("def f2(")


def test_propose_prompt_is_reproducible_for_a_seeded_rng():
    a = propose_prompt(PUZZLES, random.Random(5))
    b = propose_prompt(PUZZLES, random.Random(5))
    assert a == b


def test_propose_prompt_drops_examples_to_fit_but_keeps_the_target():
    config = PromptConfig(propose_examples=4, max_prompt_tokens=40)
    prompt, hashes = propose_prompt(PUZZLES, random.Random(0), config)
    assert len(hashes) < 4
    assert prompt.endswith(f"def f{len(hashes) + 1}(")


def test_good_proposal_parses_into_a_puzzle_named_f():
    completion = "s: str, k=3):\n    return len(s) == k and s.isupper()\n\ndef f5(x"
    puzzle = parse_proposal(completion, prompt_k=4)
    assert puzzle.source.startswith("def f(s: str, k=3):")
    assert puzzle.answer_type == "str" and puzzle.extra_args == (("k", "3"),)


def test_proposal_that_calls_itself_is_renamed_consistently():
    puzzle = parse_proposal("n: int):\n    return n == 0 or f3(n - 1)\n", prompt_k=2)
    assert "f(n - 1)" in puzzle.source


@pytest.mark.parametrize("completion, reason", [
    ("x: int):\n    return x >", "truncated"),               # ran out of tokens
    ("x: int):\n    return x > (3\n", "syntax"),             # finished, but broken
    ("x, n=3):\n    return x > n\n", "annotation"),          # answer without a type
    ("x: int, n):\n    return x > n\n", "default"),          # extra argument without default
    ("x: dict):\n    return True\n", "not allowed"),         # answer type outside the grammar
    ("x: int):\n    print(x)\n", "never returns"),
    ("\u2603\u2603 garbage ))) \n", "syntax"),
    ("", "truncated"),
])
def test_bad_proposals_are_rejected_with_a_reason(completion, reason):
    with pytest.raises(PuzzleError, match=reason):
        parse_proposal(completion, prompt_k=3)


# Solve

def test_solve_prompt_shows_examples_then_the_puzzle_then_its_g_header():
    prompt = solve_prompt(SOLVED, PUZZLES[2])
    assert prompt.count("assert f(g())") == 2
    assert prompt.endswith(PUZZLES[2].source + "\ndef g(t=12):")
    assert prompt.index("def g(a=7, b=30)") < prompt.index("def g(n=5)")


def test_solve_prompt_drops_examples_never_the_puzzle():
    tight = PromptConfig(max_prompt_tokens=60)
    prompt = solve_prompt(SOLVED, PUZZLES[2], tight)
    assert prompt.endswith("def g(t=12):") and prompt.count("assert f(g())") < 2
    with pytest.raises(SelfplayError, match="sum3"):
        solve_prompt(SOLVED, PUZZLES[2], PromptConfig(max_prompt_tokens=5))


def test_solve_prompt_counts_real_tokens_when_given_a_tokenizer(tiny_model):
    tok = tiny_model.tokenizer
    config = PromptConfig(max_prompt_tokens=len(tok(solve_prompt(SOLVED[:1], PUZZLES[2]))
                                                 ["input_ids"]))
    prompt = solve_prompt(SOLVED, PUZZLES[2], config, tokenizer=tok)
    assert prompt.count("assert f(g())") == 1
    assert len(tok(prompt)["input_ids"]) <= config.max_prompt_tokens


def test_good_solution_completion_parses():
    solution = parse_solution_completion("\n    return [t - 2, 1, 1]\n\nassert f(g())\n",
                                         PUZZLES[2])
    assert solution.source == "def g(t=12):\n    return [t - 2, 1, 1]\n"


@pytest.mark.parametrize("completion, reason", [
    ("\n    return [t - 2,", "truncated"),
    ("\n    return [t - 2,\n\nassert f(g())", "syntax"),
    ("\n    x = t\n\nprint(1)", "never returns"),
    ("garbage garbage\n", "syntax"),
])
def test_bad_solution_completions_are_rejected_with_a_reason(completion, reason):
    with pytest.raises(PuzzleError, match=reason):
        parse_solution_completion(completion, PUZZLES[2])


# Propose a pair: the model writes the puzzle and its solution together

PAIR = ("s: str, n=4):\n    return len(s) == n and s.startswith('ab')\n\n"
        "def g3(n=4):\n    return 'ab' + 'c' * (n - 2)\n")


def test_a_pair_is_cut_after_its_second_function():
    text = PAIR + "assert f3(g3())\n\ndef f4(x: int):\n"
    assert cut_at_function_end(text, 2) == (PAIR, True)
    # The first function alone is still the puzzle a checker-only proposal would be.
    assert cut_at_function_end(text, 1)[0] == PAIR.split("\n\ndef g3")[0] + "\n"
    assert cut_at_function_end(PAIR, 2) == (PAIR, False)  # no third line yet: not ended


def test_pair_prompt_shows_solved_pairs_with_their_assert():
    prompt, hashes = propose_pair_prompt(SOLVED, random.Random(0), PromptConfig(propose_examples=2))
    assert prompt.endswith("def f3(")
    assert "def g1(" in prompt and "def g2(" in prompt and "assert f2(g2())" in prompt
    assert sorted(hashes) == sorted(p.hash for p, _ in SOLVED)


def test_a_pair_solution_gets_the_puzzles_own_header():
    # The model's header is replaced by the one `f` fixes: its body is what counts.
    for header in ("def g3(s: str, n=4):", "def g3(n):", "def g3(n=7):", "def g3():"):
        completion = PAIR.replace("def g3(n=4):", header) + "assert f3(g3())\n"
        puzzle, solution = parse_pair_proposal(completion, 2)
        assert solution.source == parse_pair_proposal(PAIR + "assert f3(g3())\n", 2)[1].source
        assert solution.source.startswith("def g(n=4):")


def test_a_pair_parses_into_its_puzzle_and_solution():
    puzzle, solution = parse_pair_proposal(PAIR + "assert f3(g3())\n", 2)
    assert puzzle == parse_proposal(PAIR, 2)
    assert puzzle.extra_args == (("n", "4"),)
    assert solution.source.startswith("def g(n=4):")


@pytest.mark.parametrize("completion, reason", [
    ("s: str):\n    return s == 'x'\n\nassert f3('x')\n", "no_solution"),  # no g
    ("s: str):\n    return s == 'x'\n\ndef h3():\n    return 'x'\n", "no_solution"),
    ("s: str):\n    return s == 'x'\n\ndef g3():\n    return 'x\n", "syntax"),
    ("s: str):\n    return s == 'x'\n\ndef g3():\n    return 'x", "truncated"),
])
def test_a_pair_without_its_solution_is_refused_with_the_reason(completion, reason):
    with pytest.raises(PuzzleError) as e:
        parse_pair_proposal(completion + "\nassert f3(g3())\n" if reason != "truncated"
                            else completion, 2)
    assert e.value.reason == reason
