"""How untrusted code is judged: a hardened, fast verifier of puzzle/solution pairs.

    from sandbox import Verifier, VerifierConfig, Pair
    with Verifier(VerifierConfig(timeout=5)) as v:
        v.verify_many([Pair(puzzle_source, solution_source, id="x")])

A pair passes only when `f(g()) is True` with an answer of the declared type, judged in a
process `g` never touched. See `sandbox.verifier` (API), `sandbox.server` (scheduling),
`sandbox.worker` (one stage of a check), `sandbox.layers` (kernel isolation) and
`sandbox.policy` (imports and who may share a process).
"""

from sandbox.config import VERDICTS, Pair, Verdict, VerifierConfig
from sandbox.verifier import Verifier

__all__ = ["Verifier", "VerifierConfig", "Verdict", "Pair", "VERDICTS"]
