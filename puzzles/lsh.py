"""Near-duplicate search for large stores: MinHash LSH proposes candidates, exact Jaccard decides.

`ShingleIndex` counts shared shingles against every stored puzzle that shares one, and common
shingles (`def f (`) are in every puzzle, so each query touches the whole store. Here a query
touches only the stored puzzles that collide with it in at least one LSH band, and those are
checked exactly, so a reported score is always the true Jaccard (of 64-bit shingle hashes: a
collision between two different shingles has probability about 2^-64 per pair) and a
near-duplicate is never invented; the only error is a near-duplicate never proposed as a
candidate, which happens with probability 1 - (1 - J^rows)^bands for a pair at Jaccard J.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import TYPE_CHECKING

import numpy as np

from puzzles.errors import SelfplayError
from puzzles.similarity import shingles

if TYPE_CHECKING:
    from datasketch import MinHash

NUM_PERM = 128
"""MinHash permutations. 128 = 16 bands of 8 rows: a pair at the default near-duplicate
threshold 0.85 shares a band with probability 1 - (1 - 0.85^8)^16 = 0.994, while a pair at 0.5
(two unrelated puzzles with the same boilerplate) does so with 0.061 only, so few candidates
need the exact check. More permutations buy longer bands (fewer false candidates) at a
proportional cost in hashing time and index memory; 128 keeps both within a 2-core budget."""

BAND_RECALL = 0.99
"""Probability that a stored puzzle exactly at the threshold becomes a candidate. Above the
0.95 recall asked of the index, because the pairs that matter spread around the threshold."""

SEED = 1
"""Seed of the MinHash permutations: fixed, so that which candidates a query gets (and so a
round's outcomes) never depend on the process."""


def lsh_params(threshold: float, num_perm: int = NUM_PERM,
               recall: float = BAND_RECALL) -> tuple[int, int]:
    """(bands, rows) for LSH at Jaccard `threshold`: the most rows per band (fewest false
    candidates) such that a pair at exactly `threshold` shares a band with probability at least
    `recall`, using as many bands as `num_perm` allows."""
    if not 0 < threshold < 1:
        raise SelfplayError(f"an LSH threshold must be in (0, 1), not {threshold!r}")
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if bands >= 2 and 1 - (1 - threshold ** rows) ** bands >= recall:
            return bands, rows
    raise SelfplayError(f"{num_perm} permutations cannot reach recall {recall} at Jaccard "
                        f"{threshold}; use more")


def shingle_hashes(source: str, n: int = 3, literals: bool = True) -> np.ndarray:
    """The shingles of `source` (as `similarity.shingles` makes them) as sorted distinct
    64-bit hashes: an eighth of the memory of a frozenset of tuples, and intersections in numpy.
    blake2b, not `hash()`: Python salts string hashes per process."""
    hashes = {int.from_bytes(hashlib.blake2b("\x1f".join(sh).encode(), digest_size=8).digest(),
                             "little") for sh in shingles(source, n, literals)}
    return np.array(sorted(hashes), dtype=np.uint64)


def _low32(value) -> int:
    # MinHash's affine32 scheme takes 32-bit input hashes; the low half of a blake2b digest
    # is as uniform as the whole.
    return int(value) & 0xFFFFFFFF


class LSHIndex:
    """Stored shingle sets with MinHash LSH over them, for 'most similar stored item' queries
    that only matter at or above `threshold`: `most_similar` answers what
    `ShingleIndex.most_similar` does whenever that is at or above `threshold`, except that a
    stored item exactly at it is missed with probability 1 - BAND_RECALL (less above it).
    Below `threshold` the answer is the best candidate's, possibly ('', 0.0)."""

    def __init__(self, threshold: float, n: int = 3, literals: bool = True,
                 num_perm: int = NUM_PERM):
        self.n = n
        self.literals = literals
        self.threshold = threshold
        # Imported here: datasketch brings scipy (0.3 s), and most runs never pass lsh_above.
        from datasketch import MinHash, MinHashLSH
        self._new_minhash = MinHash
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self.num_perm = num_perm
        self._lsh = MinHashLSH(num_perm=num_perm, params=(self.bands, self.rows))
        self._permutations = MinHash(num_perm=num_perm, seed=SEED).permutations
        self.keys: list[str] = []
        # Every stored set's hashes end to end, with offsets: one flat buffer instead of a
        # million small arrays (each would carry about 100 bytes of numpy header). The views
        # taken of it never outlive a call, since a bytearray with a live view cannot grow.
        self._flat = bytearray()
        self._offsets = array("q", [0])

    def __len__(self) -> int:
        return len(self.keys)

    def _minhash(self, hashes: np.ndarray) -> MinHash:
        m = self._new_minhash(num_perm=self.num_perm, seed=SEED, hashfunc=_low32,
                              permutations=self._permutations, scheme="affine32")
        m.update_batch(hashes.tolist())
        return m

    def add(self, key: str, source: str) -> None:
        hashes = shingle_hashes(source, self.n, self.literals)
        idx = len(self.keys)
        self.keys.append(key)
        self._flat += hashes.tobytes()
        self._offsets.append(self._offsets[-1] + len(hashes))
        # Integer keys: the LSH holds each key once per band, and a small int is the cheapest.
        self._lsh.insert(idx, self._minhash(hashes), check_duplication=False)

    def most_similar(self, source: str) -> tuple[str, float]:
        """(key, exact Jaccard) of the most similar stored item among the LSH candidates,
        ('', 0.0) when there is none; ties go to the item added first."""
        query = shingle_hashes(source, self.n, self.literals)
        candidates = np.array(sorted(self._lsh.query(self._minhash(query))), dtype=np.int64)
        return self._best(query, candidates)

    def most_similar_exhaustive(self, source: str) -> tuple[str, float]:
        """Like `most_similar` but checking every stored item: the exact answer, for measuring
        what the candidates miss (linear in the store; for tests and benchmarks)."""
        query = shingle_hashes(source, self.n, self.literals)
        return self._best(query, np.arange(len(self.keys), dtype=np.int64))

    def stored_hashes(self) -> tuple[np.ndarray, np.ndarray]:
        """(every stored item's shingle hashes end to end, offsets: item i's are
        [offsets[i], offsets[i + 1])), as copies: for building other indexes over the same sets
        without hashing them again."""
        return (np.frombuffer(self._flat, dtype=np.uint64).copy(),
                np.frombuffer(self._offsets, dtype=np.int64).copy())

    def _best(self, query: np.ndarray, candidates: np.ndarray) -> tuple[str, float]:
        if not len(candidates) or not len(query):
            return "", 0.0
        offsets = np.frombuffer(self._offsets, dtype=np.int64)
        starts, ends = offsets[candidates], offsets[candidates + 1]
        lengths = ends - starts
        flat = np.frombuffer(self._flat, dtype=np.uint64)
        if len(candidates) == len(self.keys):
            values = flat
        else:  # positions of every candidate's hashes, end to end, without a Python loop
            before = np.cumsum(lengths) - lengths
            values = flat[np.repeat(starts - before, lengths) + np.arange(lengths.sum())]
        found = np.searchsorted(query, values)
        found[found == len(query)] = 0
        hits = (query[found] == values).astype(np.int64)
        shared = np.add.reduceat(hits, np.cumsum(lengths) - lengths)
        scores = shared / (len(query) + lengths - shared)
        best = int(np.argmax(scores))  # the first maximum: candidates are in insertion order
        if shared[best] == 0:
            return "", 0.0
        return self.keys[int(candidates[best])], float(scores[best])
