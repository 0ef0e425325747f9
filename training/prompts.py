"""Prompt templates and completion parsing: the ICLR 2023 recipe ("Language Models Can Teach
Themselves to Program Better"), adapted.

Propose: k puzzles, renamed `f1..fk`, then `def f{k+1}(`; the model writes a new puzzle.
Solve: solved examples (`def f`, `def g`, `assert f(g())`), then the puzzle, then its
`def g(...):` header; the model writes the body.

Every completion is cut at the first line that is not indented (the end of the function); a
completion that ends with a newline finished its function, one that does not ran out of tokens.
The sampler keeps that convention, so parsing can tell a truncated completion from a bad one.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from puzzles.checks import check_ranges
from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import (Puzzle, Solution, content_hash, parse_puzzle, parse_solution,
                            solution_from_body, unparse)
from puzzles.programs import Program, input_code, input_of_solution, parse_program

# A newline followed by anything but whitespace starts a line at column 0: the function ended.
_FUNCTION_END = re.compile(r"\n(?=[^ \t\r\n])")


EXAMPLE_CHOICES = ("random", "similar")


@dataclass(frozen=True)
class PromptConfig:
    """How prompts are built. The templates are the only place prompt text is written."""

    propose_examples: int = 4
    """k: puzzles shown before the model writes puzzle k+1 (fewer if the store has fewer)."""
    solve_examples: int = 3
    """Solved examples shown before the puzzle to solve (the caller chooses which)."""
    propose_preamble: str = ""
    """Text put before the propose examples, e.g. a comment saying what follows."""
    example_choice: str = "random"
    """How a solve (and eval) prompt's examples are chosen among the solved train puzzles:
    `random`, or `similar`: the puzzles whose checkers share the most token 3-grams with the
    target's (constants blanked), so a 135M model sees how puzzles like this one are solved.
    Only train puzzles are ever shown, so held-out answers cannot leak either way."""
    solve_preamble: str = ""
    """Text put before the solved examples."""
    solved_example: str = "{puzzle}\n{solution}\nassert f(g())\n"
    """One solved example: `{puzzle}` is the source of f, `{solution}` the source of g."""
    solve_target: str = "{puzzle}\n{header}"
    """The puzzle to solve and its `def g(...):` header, which must end the prompt."""
    separator: str = "\n"
    """Between examples (each example already ends with a newline)."""
    max_prompt_tokens: int = 1536
    """Prompts longer than this drop examples (never the target). Also capped by the
    tokenizer's model_max_length minus `completion_tokens`."""
    completion_tokens: int = 256
    """Room kept for the completion when capping by the model's context length."""

    def __post_init__(self):
        if self.example_choice not in EXAMPLE_CHOICES:
            raise SelfplayError(f"prompts.example_choice = {self.example_choice!r} is not one "
                                f"of {', '.join(EXAMPLE_CHOICES)}")
        check_ranges(self, "prompts", propose_examples=">= 0", solve_examples=">= 0",
                     max_prompt_tokens=">= 1", completion_tokens=">= 0")
        _check_template("prompts.solved_example", self.solved_example, ("puzzle", "solution"))
        _check_template("prompts.solve_target", self.solve_target, ("puzzle", "header"))
        if not self.solve_target.endswith("{header}"):
            # The completion continues the header: text after it would be read as the body.
            raise SelfplayError(f"prompts.solve_target = {self.solve_target!r} must end with "
                                "{header} (the completion continues the `def g(...):` line)")


def _check_template(key: str, template: str, fields: tuple[str, ...]) -> None:
    """Refuse a template that `str.format` with `fields` would fail on when a prompt is built."""
    try:
        template.format(**{name: "" for name in fields})
    except (KeyError, IndexError, ValueError) as e:
        raise SelfplayError(f"{key} = {template!r} is not a template of "
                            f"{', '.join('{' + f + '}' for f in fields)} ({type(e).__name__}: "
                            f"{e}); write a literal brace as {{{{ or }}}}") from None


# The stop rule --------------------------------------------------------------------------------


def cut_at_function_end(text: str, functions: int = 1) -> tuple[str, bool]:
    """`text` up to its `functions`-th non-indented line, blank lines before it dropped.

    Returns (cut text, whether the last function ended). The first line is never a stop: a
    completion continues a `def` line that the prompt began. With `functions = 2` the text
    holds that function and the one after it (a pair: `f`, then `def g...`).
    """
    m = None
    for m in _FUNCTION_END.finditer(text):
        functions -= 1
        if functions == 0:
            break
    if m is None or functions:
        return text, False
    return text[:m.start()].rstrip() + "\n", True


def _finished(completion: str, functions: int = 1) -> str:
    """The completion cut at its last function's end; PuzzleError if it ran out of tokens."""
    text, ended = cut_at_function_end(completion, functions)
    if not ended and not text.endswith("\n"):
        raise PuzzleError("truncated: the completion ended before its function did "
                          "(raise max_new_tokens, or the model rambles)", "truncated")
    return text


# Propose ----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)  # prompts rename the same few puzzles over and over
def rename_function(source: str, old: str, new: str) -> str:
    """`source` with the top-level `def old` (and calls to `old` inside it) renamed `new`."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == old and node in tree.body:
            node.name = new
        elif isinstance(node, ast.Name) and node.id == old:
            node.id = new
    return unparse(tree) + "\n"  # with the headroom a stored 400-term sum needs


def propose_prompt(examples: list[Puzzle], rng: random.Random, config: PromptConfig = PromptConfig(),
                   tokenizer=None) -> tuple[str, list[str]]:
    """A prompt asking for a new puzzle after k examples drawn with `rng`.

    Returns (prompt, hashes of the puzzles included, in order). Examples are dropped, longest
    first, until the prompt fits; pass `len(hashes)` as `prompt_k` to `parse_proposal`.
    """
    chosen = rng.sample(list(examples), min(config.propose_examples, len(examples)))
    prompt = _fit_examples(chosen, lambda c: _propose_text(c, config),
                           lambda p: len(p.source), config, tokenizer)
    return prompt, [p.hash for p in chosen]


def _fit_examples(chosen: list, render, size, config: PromptConfig, tokenizer) -> str:
    """`render(chosen)` with examples removed from `chosen`, largest `size` first, until the
    prompt fits the token limit (or none is left): the propose prompts' one budget rule."""
    limit = _token_limit(config, tokenizer)
    while True:
        prompt = render(chosen)
        if not chosen or _n_tokens(prompt, tokenizer) <= limit:
            return prompt
        chosen.remove(max(chosen, key=size))


def _propose_text(puzzles: list[Puzzle], config: PromptConfig) -> str:
    blocks = [rename_function(p.source, "f", f"f{i}") for i, p in enumerate(puzzles, 1)]
    return config.propose_preamble + config.separator.join(
        blocks + [f"def f{len(puzzles) + 1}("])


def parse_proposal(completion: str, prompt_k: int) -> Puzzle:
    """The puzzle a propose completion defines (it continues `def f{prompt_k+1}(`).

    Raises PuzzleError with the reason: truncated, syntax, wrong signature, no return, ...
    """
    name = f"f{prompt_k + 1}"
    source = f"def {name}(" + _finished(completion)
    try:
        source = rename_function(source, name, "f")  # recursive calls too, not just the def
    except (SyntaxError, ValueError, RecursionError, MemoryError, PuzzleError):
        pass  # parse_puzzle says what is wrong, naming the line, as a PuzzleError
    return parse_puzzle(source)


# Propose a pair ---------------------------------------------------------------------------
# The model writes a puzzle and its solution together: each example is a solved pair renamed
# `f{i}`/`g{i}` with its `assert f{i}(g{i}())`, and the prompt ends `def f{k+1}(`. The sampler
# stops at the pair's second non-indented line (`SamplingConfig.functions = 2`): the first is
# `def g{k+1}(...)`, the second the `assert` line the examples taught.


def propose_pair_prompt(examples: list[tuple[Puzzle, Solution | str]], rng: random.Random,
                        config: PromptConfig = PromptConfig(), tokenizer=None
                        ) -> tuple[str, list[str]]:
    """A prompt asking for a new puzzle and its solution after k solved pairs drawn with `rng`.

    Returns (prompt, hashes of the puzzles included, in order); examples are dropped, longest
    first, until the prompt fits. Pass `len(hashes)` as `prompt_k` to `parse_pair_proposal`.
    """
    chosen = rng.sample(list(examples), min(config.propose_examples, len(examples)))
    prompt = _fit_examples(chosen, lambda c: _pair_text(c, config),
                           lambda e: len(e[0].source) + len(_source(e[1])), config, tokenizer)
    return prompt, [p.hash for p, _ in chosen]


def _source(solution: Solution | str) -> str:
    return solution.source if isinstance(solution, Solution) else solution


def _pair_text(pairs: list[tuple[Puzzle, Solution | str]], config: PromptConfig) -> str:
    blocks = [rename_function(p.source, "f", f"f{i}") + rename_function(_source(s), "g", f"g{i}")
              + f"assert f{i}(g{i}())\n" for i, (p, s) in enumerate(pairs, 1)]
    return config.propose_preamble + config.separator.join(
        blocks + [f"def f{len(pairs) + 1}("])


def parse_pair_proposal(completion: str, prompt_k: int) -> tuple[Puzzle, Solution]:
    """The puzzle and the solution a pair completion defines (it continues `def f{k+1}(`).

    Raises PuzzleError with the reason; `no_solution` when the function after the puzzle is not
    its `g{k+1}` (the puzzle alone may still be valid: `parse_proposal` of the same text).
    """
    text = _finished(completion, 2)
    m = _FUNCTION_END.search(text)
    if m is None:  # ended at EOS after the puzzle alone
        raise PuzzleError("the pair ended after its puzzle, with no solution", "no_solution")
    puzzle = parse_proposal(text[:m.start()].rstrip() + "\n", prompt_k)
    g_source = text[m.start() + 1:]
    name = f"g{prompt_k + 1}"
    if not g_source.startswith(f"def {name}("):
        raise PuzzleError(f"the pair's second function is not `def {name}(`: "
                          f"{g_source.splitlines()[0][:60]!r}", "no_solution")
    return puzzle, _pair_solution(g_source, puzzle, name)


def _pair_solution(g_source: str, puzzle: Puzzle, name: str) -> Solution:
    """The pair's `g`: its body under the puzzle's own `def g(...)` header, as a solve prompt
    gives it. The header is ours, not the model's: a 135M model writes the answer argument or
    drops the defaults in half its headers (bench/propose.py), and the extra arguments are
    fixed by `f` anyway."""
    try:
        tree = ast.parse(g_source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return parse_solution(g_source, puzzle, rename=name)  # names the error and its line
    fn = tree.body[0] if tree.body else None
    if not isinstance(fn, ast.FunctionDef) or not fn.body or fn.body[0].lineno <= fn.lineno:
        return parse_solution(g_source, puzzle, rename=name)
    body = "".join(g_source.splitlines(keepends=True)[fn.body[0].lineno - 1:])
    return solution_from_body(body, puzzle)


# Propose a program ------------------------------------------------------------------------
# The model writes a program and an input for it (puzzles.programs): each example is a program
# renamed `f{i}`, its input as `def g{i}(): return <input>`, and `assert f{i}(g{i}()) == <output>`;
# the prompt ends `def f{k+1}(`. The same stop rule as a pair's (`functions = 2`) ends the
# completion after `g{k+1}`, before the model guesses an output: the sandbox computes it.


def propose_program_prompt(examples: list[Program], rng: random.Random,
                           config: PromptConfig = PromptConfig(), tokenizer=None
                           ) -> tuple[str, list[str]]:
    """A prompt asking for a new program and its input after k programs drawn with `rng`.

    Returns (prompt, content hashes of the programs included, in order); examples are dropped,
    longest first, until the prompt fits. Pass `len(hashes)` as `prompt_k` to
    `parse_program_proposal`.
    """
    chosen = rng.sample(list(examples), min(config.propose_examples, len(examples)))
    prompt = _fit_examples(chosen, lambda c: _program_text(c, config),
                           lambda e: len(e.source) + len(e.output or ""), config, tokenizer)
    return prompt, [content_hash(p.source) for p in chosen]


def _program_text(programs: list[Program], config: PromptConfig) -> str:
    blocks = [rename_function(p.source, "f", f"f{i}") + f"def g{i}():\n    return {p.input}\n"
              + f"assert f{i}(g{i}()) == {p.output}\n" for i, p in enumerate(programs, 1)]
    return config.propose_preamble + config.separator.join(
        blocks + [f"def f{len(programs) + 1}("])


def parse_program_proposal(completion: str, prompt_k: int) -> Program:
    """The program and input a program completion defines (it continues `def f{k+1}(`).
    Raises PuzzleError with the reason (`no_input` when `g{k+1}` is missing, takes
    arguments, or returns a literal not of the program's input type). A `g{k+1}` that computes
    its input is kept as `input_code`, for the sandbox to run."""
    text = _finished(completion, 2)
    m = _FUNCTION_END.search(text)
    if m is None:
        raise PuzzleError("the program ended with no input after it", "no_input")
    name = f"f{prompt_k + 1}"
    g_source = text[m.start() + 1:]
    if not g_source.startswith(f"def g{prompt_k + 1}("):
        raise PuzzleError(f"the program's second function is not `def g{prompt_k + 1}(`: "
                          f"{g_source.splitlines()[0][:60]!r}", "no_input")
    program = f"def {name}(" + text[:m.start()].rstrip() + "\n"
    try:
        literal = input_of_solution(g_source)
    except PuzzleError:  # code computing the input: the sandbox runs it (filter stage)
        return parse_program(program, None, name, input_code(g_source, f"g{prompt_k + 1}"))
    return parse_program(program, literal, name)


# Solve ------------------------------------------------------------------------------------


def solved_example(puzzle: Puzzle, solution: Solution | str, config: PromptConfig = PromptConfig()
                   ) -> str:
    """One solved example as the solve prompt shows it."""
    source = solution.source if isinstance(solution, Solution) else solution
    return config.solved_example.format(puzzle=puzzle.source, solution=source)


def solve_prompt(examples: list[tuple[Puzzle, Solution]], puzzle: Puzzle,
                 config: PromptConfig = PromptConfig(), tokenizer=None) -> str:
    """A prompt asking for `g` solving `puzzle`, after up to `config.solve_examples` examples.

    Examples are dropped, longest first, until the prompt fits; if the puzzle alone does not
    fit, SelfplayError names it.
    """
    chosen = list(examples[:config.solve_examples])
    limit = _token_limit(config, tokenizer)
    while True:
        prompt = _solve_text(chosen, puzzle, config)
        if _n_tokens(prompt, tokenizer) <= limit:
            return prompt
        if not chosen:
            raise SelfplayError(f"puzzle {puzzle.name or puzzle.hash} alone needs "
                                f"{_n_tokens(prompt, tokenizer)} prompt tokens, more than the "
                                f"{limit} allowed (max_prompt_tokens / context length)")
        chosen.remove(max(chosen, key=lambda e: len(solved_example(*e, config))))


def _solve_text(examples: list[tuple[Puzzle, Solution]], puzzle: Puzzle,
                config: PromptConfig) -> str:
    blocks = [solved_example(p, s, config) for p, s in examples]
    return config.solve_preamble + config.separator.join(
        blocks + [config.solve_target.format(puzzle=puzzle.source,
                                             header=puzzle.solution_header())])


def parse_solution_completion(completion: str, puzzle: Puzzle) -> Solution:
    """The solution a solve completion defines (it continues the puzzle's `def g(...):` line).

    Raises PuzzleError with the reason: truncated, syntax, wrong arguments, no return, ...
    """
    return parse_solution(puzzle.solution_header() + _finished(completion), puzzle)


# Lengths ----------------------------------------------------------------------------------


def _token_limit(config: PromptConfig, tokenizer) -> int:
    limit = config.max_prompt_tokens
    model_max = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    if model_max and model_max < 1 << 20:  # tokenizers without a limit report a huge sentinel
        limit = min(limit, model_max - config.completion_tokens)
    return limit


def _n_tokens(text: str, tokenizer) -> int:
    if tokenizer is None:
        return len(text) // 3 + 1  # byte-level BPE on code averages about 3 characters a token
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


__all__ = ["PromptConfig", "cut_at_function_end", "parse_pair_proposal", "parse_program_proposal",
           "parse_proposal", "propose_program_prompt",
           "parse_solution_completion", "propose_pair_prompt", "propose_prompt", "rename_function", "solve_prompt", "solved_example"]
