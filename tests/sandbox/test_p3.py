"""The real P3 corpus (../shared/data/p3 beside the checkout): every reference solution passes,
except checks that need longer than the timeout, and solutions paired with the wrong puzzle
fail. Skipped where the data is absent."""

import json
import random
from pathlib import Path

import pytest

from puzzles.format import parse_puzzle, solution_from_body
from sandbox import Pair, Verifier, VerifierConfig

P3 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "p3" / "puzzles.json"
# Known slow checks: Mastermind takes 1 to 2.5 s of CPU (the P3 README), ExponentialCoinMoves:0
# answers with 81 MB of big ints, whose JSON round trip alone takes seconds.
SLOW = ("Mastermind", "ExponentialCoinMoves:0")


def p3_pairs():
    if not P3.exists():
        pytest.skip(f"P3 data not found at {P3}")
    pairs = []
    for entry in json.loads(P3.read_text()):
        puzzle = parse_puzzle(entry["sat"], rename="sat", name=entry["name"])
        for i, body in enumerate(entry["sol_bodies"]):
            solution = solution_from_body(body, puzzle, header=entry["sol_header"])
            pairs.append(Pair(puzzle.source, solution.source, id=f"{entry['name']}#{i}"))
    return pairs


@pytest.mark.slow
def test_every_p3_reference_solution_passes():
    pairs = p3_pairs()
    assert len(pairs) == 1698
    # A generous timeout: other sessions may share the cores while this runs.
    with Verifier(VerifierConfig(timeout=30.0)) as v:
        verdicts = v.verify_many(pairs)
    failures = [(p.id, r.verdict, r.detail) for p, r in zip(pairs, verdicts)
                if r.verdict != "pass" and not (r.verdict == "timeout" and p.id.startswith(SLOW))]
    assert failures == []


def test_p3_solutions_paired_with_the_wrong_puzzle_fail(verifier):
    pairs = [p for p in p3_pairs() if not p.id.startswith(SLOW)]
    rng = random.Random(0)
    sample = rng.sample(pairs, 200)
    # Shift solutions by one within puzzles of the same extra-argument signature.
    shuffled = []
    for pair, other in zip(sample, sample[1:] + sample[:1]):
        shuffled.append(Pair(pair.puzzle, other.solution, id=f"{pair.id}<-{other.id}"))
    verdicts = verifier.verify_many(shuffled)
    passed = [p.id for p, v in zip(shuffled, verdicts) if v.verdict == "pass"]
    assert passed == []
    assert sum(v.verdict in ("fail", "rejected", "error") for v in verdicts) >= 190
