"""How alike two puzzles are: token shingles, Jaccard similarity, n-gram overlap, AST shape.

Dedup uses them to find near-duplicates and held-out contamination; data cards use them to
measure diversity. Exact Jaccard over an inverted index is used instead of MinHash: a store holds
thousands of puzzles, not millions, and exact answers are easier to reason about.
"""

from __future__ import annotations

import ast
import hashlib
import io
import itertools
import tokenize
import warnings
from collections import defaultdict


def tokens(source: str, literals: bool = True) -> list[str]:
    """Python tokens of `source`, without comments, newlines and indentation; with
    `literals=False` every number reads `0` and every string `''`, so puzzles that differ only in
    their constants tokenise alike."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):
                continue
            if not literals and tok.type == tokenize.NUMBER:
                out.append("0")
            elif not literals and tok.type == tokenize.STRING:
                out.append("''")
            else:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        out = source.split()
    return out


def shingles(source: str, n: int = 3, literals: bool = True) -> frozenset[tuple[str, ...]]:
    toks = tokens(source, literals)
    if len(toks) < n:
        return frozenset([tuple(toks)])
    return frozenset(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class ShingleIndex:
    """Sets of shingles with an inverted index, for 'most similar stored item' queries."""

    def __init__(self, n: int = 3, literals: bool = True):
        self.n = n
        self.literals = literals
        self.sets: list[frozenset] = []
        self.keys: list[str] = []
        self._postings: dict[tuple, list[int]] = defaultdict(list)

    def add(self, key: str, source: str) -> None:
        s = shingles(source, self.n, self.literals)
        idx = len(self.sets)
        self.sets.append(s)
        self.keys.append(key)
        for sh in s:
            self._postings[sh].append(idx)

    def _overlaps(self, source: str) -> tuple[frozenset, dict[int, int]]:
        """The query's shingles, and {stored item: shingles shared with the query}."""
        s = shingles(source, self.n, self.literals)
        overlap: dict[int, int] = defaultdict(int)
        for sh in s:
            for idx in self._postings.get(sh, ()):
                overlap[idx] += 1
        return s, overlap

    def most_similar(self, source: str) -> tuple[str, float]:
        """(key, Jaccard) of the most similar stored item, ('', 0.0) when none shares a shingle."""
        s, overlap = self._overlaps(source)
        best, best_score = "", 0.0
        for idx, inter in overlap.items():
            score = inter / (len(s) + len(self.sets[idx]) - inter)
            if score > best_score:
                best, best_score = self.keys[idx], score
        return best, best_score

    def nearest(self, source: str, n: int) -> list[tuple[str, float]]:
        """The `n` stored items most similar to `source` as (key, Jaccard), best first; ties
        keep the order items were added in. Items sharing no shingle are not returned."""
        s, overlap = self._overlaps(source)
        scored = [(inter / (len(s) + len(self.sets[idx]) - inter), -idx)
                  for idx, inter in overlap.items()]
        return [(self.keys[-i], score) for score, i in sorted(scored, reverse=True)[:n]]

    def max_containment(self, source: str) -> tuple[str, float]:
        """(key, share of `source`'s shingles found in one stored item), the largest."""
        s, overlap = self._overlaps(source)
        if not overlap or not s:
            return "", 0.0
        idx, inter = max(overlap.items(), key=lambda kv: kv[1])
        return self.keys[idx], inter / len(s)


def ast_shape(source: str) -> str:
    """Hash of the AST with names and constants blanked: same shape, different details."""
    try:
        # Model-written code draws tokenizer warnings (`1if x`, `"\\d"`): not for the user.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except SyntaxError:
        return ""
    parts = []
    for node in ast.walk(tree):
        parts.append(type(node).__name__)
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.BoolOp)):
            parts.append(type(node.op).__name__)
        elif isinstance(node, ast.Compare):
            parts.extend(type(o).__name__ for o in node.ops)
    return hashlib.sha256(" ".join(parts).encode()).hexdigest()[:16]


def mean_pairwise_similarity(sources: list[str], n: int = 3, max_pairs: int = 20000) -> float:
    """Mean Jaccard similarity over pairs of sources (the first `max_pairs` pairs)."""
    sets = [shingles(s, n) for s in sources]
    pairs = list(itertools.islice(itertools.combinations(range(len(sets)), 2), max_pairs))
    if not pairs:
        return 0.0
    return sum(jaccard(sets[i], sets[j]) for i, j in pairs) / len(pairs)


def distinct_ngrams(sources: list[str], n: int = 3) -> int:
    return len(set().union(*(shingles(s, n) for s in sources))) if sources else 0
