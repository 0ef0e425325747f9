"""Stage 2, filter: parse and validate proposals; reject trivial, nondeterministic and broken
checkers. Every rejection is counted by reason."""

from __future__ import annotations

from collections import Counter

from puzzles.errors import PuzzleError
from puzzles.programs import (copies_input, input_probe, inversion_puzzle, output_probe,
                              with_input, with_output)
from puzzles.trivial import trivial_answers
from puzzles.types import parse_type
from sandbox.config import Pair
from selfplay.context import RoundContext
from selfplay.reports.summaries import FilterSummary
from training.prompts import parse_program_proposal, parse_proposal

# A checker failing with one of these on every trivial answer is broken, not hard.
_BROKEN_ERRORS = ("NameError", "ImportError", "ModuleNotFoundError", "SyntaxError",
                  "UnboundLocalError")


def parse_reason(error: PuzzleError) -> str:
    """A short category for a parse failure, for the funnel counts: the error's reason code
    (puzzles.errors.PUZZLE_REASONS), never its wording."""
    return error.reason


def classify(first: list, second: list | None) -> tuple[str, str]:
    """(status, reason) of a checker from its verdicts on the trivial answers (run twice)."""
    for v in first:
        if v.verdict == "pass":
            return "trivial", "a trivial answer satisfies it"
    for v in first:
        if v.verdict == "rejected":
            return "broken", f"sandbox rejected it: {v.detail}"[:200]
        if v.verdict in ("timeout", "memory"):
            return "broken", f"checker {v.verdict} on a trivial answer"
    for v in first:
        if v.reason == "wrong_answer" and v.returned not in ("False", "None"):
            # A checker returning numbers or lists can never return True: unsolvable.
            return "broken", f"checker returns {v.returned} on a trivial answer, not a bool"[:200]
    if second is not None and [v.verdict for v in first] != [v.verdict for v in second]:
        return "nondeterministic", "two runs on the same answers disagree"
    if first and all(v.reason == "f_raised" and v.exception in _BROKEN_ERRORS for v in first):
        return "broken", f"checker fails on its own: {first[0].detail}"[:200]
    return "valid", ""


def _limits(cfg) -> dict:
    # CPU seconds, within five times as many of wall-clock time: a loaded machine does not
    # stretch CPU time, and code that sleeps still ends.
    return {"timeout": cfg.timeout, "wall": 5 * cfg.timeout}


def program_puzzles(ctx: RoundContext, proposals: list) -> dict:
    """{proposal id: its inversion puzzle, or the (status, reason) it is refused with} for
    program proposals: each program runs on its own input in the sandbox (twice, with
    `filter.determinism`) and its output becomes the puzzle's target."""
    cfg = ctx.config.filter
    outcomes, parsed = {}, []
    for p in proposals:
        try:
            parsed.append((p, parse_program_proposal(p.completion,
                                                     p.provenance.get("prompt_k", 0))))
        except PuzzleError as e:
            outcomes[p.id] = ("invalid", parse_reason(e))
    verifier = ctx.resources.verifier()
    computed = [(i, p) for i, (_, p) in enumerate(parsed) if p.input_code]
    if computed:  # inputs the model wrote as code: run it first, for the input's value
        verdicts = verifier.verify_many([Pair(*input_probe(p)) for _, p in computed],
                                        **_limits(cfg))
        for (i, program), verdict in zip(computed, verdicts):
            if verdict.passed and verdict.answer is not None:
                try:
                    parsed[i] = (parsed[i][0], with_input(program, verdict.answer))
                except PuzzleError as e:
                    outcomes[parsed[i][0].id] = ("invalid", parse_reason(e))
            else:
                outcomes[parsed[i][0].id] = ("broken", f"the program's input: {verdict.verdict}"
                                                       f": {verdict.detail}"[:200])
        parsed = [(p, program) for p, program in parsed if p.id not in outcomes]
    if not parsed:
        return outcomes
    probes = [Pair(*output_probe(program)) for _, program in parsed]
    first = verifier.verify_many(probes, **_limits(cfg))
    second = verifier.verify_many(probes, **_limits(cfg)) if cfg.determinism else first
    for (p, program), one, two in zip(parsed, first, second):
        if not one.passed:
            outcomes[p.id] = ("broken", f"the program on its input: {one.verdict}: "
                                        f"{one.detail}"[:200])
        elif one.answer is None:
            outcomes[p.id] = ("invalid", "too_long")  # over the verdict's answer bytes
        elif two.answer != one.answer:
            outcomes[p.id] = ("nondeterministic", "two runs of the program on its input "
                                                  "disagree")
        else:
            try:
                program = with_output(program, one.answer)
                outcomes[p.id] = (("trivial", "the program's output is its input")
                                  if copies_input(program) else inversion_puzzle(program))
            except PuzzleError as e:
                outcomes[p.id] = ("invalid", parse_reason(e))
    return outcomes


def run(ctx: RoundContext) -> FilterSummary:
    cfg = ctx.config.filter
    todo = ctx.store.proposals(ctx.round, status="proposed")
    updates: list[tuple[int, str, str, str | None, str | None]] = []
    checks = []  # (proposal, puzzle, answers)
    built = program_puzzles(ctx, [p for p in todo if p.provenance.get("format") == "program"])
    for p in todo:
        outcome = built.get(p.id)
        if isinstance(outcome, tuple):  # a program refused: (status, reason)
            updates.append((p.id, *outcome, None, None))
            continue
        try:
            puzzle = outcome or parse_proposal(p.completion, p.provenance.get("prompt_k", 0))
        except PuzzleError as e:
            updates.append((p.id, "invalid", parse_reason(e), None, None))
            continue
        answers = trivial_answers(parse_type(puzzle.answer_type)) if cfg.trivial_answers else []
        checks.append((p, puzzle, answers))

    items = [(puzzle.source, a) for _, puzzle, answers in checks for a in answers]
    if items:
        verifier = ctx.resources.verifier()
        first = verifier.check_answers(items, **_limits(cfg))
        second = verifier.check_answers(items, **_limits(cfg)) if cfg.determinism else None
    pos = 0
    for p, puzzle, answers in checks:
        n = len(answers)
        status, reason = classify(first[pos:pos + n], second[pos:pos + n] if second else None
                                  ) if n else ("valid", "")
        pos += n
        updates.append((p.id, status, reason, puzzle.source, puzzle.hash))

    with ctx.store.transaction():
        for pid, status, reason, source, hash_ in updates:
            ctx.store.set_proposal(pid, status, reason, puzzle=source, puzzle_hash=hash_)
    # Counted from the store, not from this call, so a repeat after a crash reports the same.
    proposals = ctx.store.proposals(ctx.round)
    rejected = Counter(f"invalid:{p.reason}" if p.status == "invalid" else p.status
                       for p in proposals if p.status != "valid")
    valid = len(proposals) - sum(rejected.values())
    ctx.log.info("round %d filter: %d valid of %d; rejected %s", ctx.round, valid,
                 len(proposals), dict(rejected))
    return FilterSummary(valid, len(proposals), dict(sorted(rejected.items())))
