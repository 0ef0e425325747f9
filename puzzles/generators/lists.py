"""Generators over lists of numbers: sorting, search, sequences, sets, dynamic programming,
permutations.

Answers that are lists are kept longer than three items, or checked so that none of the
trivial-answer filter's short lists can pass (puzzles.trivial.trivial_answers).
"""

from __future__ import annotations

import math
import random

from puzzles.generators.base import Generator


def _distinct(rng: random.Random, n: int) -> list[int]:
    # 11..999 without 100: none of them is a trivial integer answer.
    return rng.sample([v for v in range(11, 1000) if v != 100], n)


def _kth(rng: random.Random) -> dict:
    nums = _distinct(rng, rng.randint(8, 25))
    return {"nums": nums, "k": rng.randint(1, len(nums))}


KTH_SMALLEST = Generator(
    "lists_sorting/kth_smallest", "x: int",
    "Find the member of nums that exactly k - 1 other members are smaller than.",
    "return x in nums and sum(1 for v in nums if v < x) == k - 1",
    "return sorted(nums)[k - 1]",
    _kth, tags=("sort", "order statistic"))


def _first_index(rng: random.Random) -> dict:
    n = rng.randint(14, 60)
    nums = [rng.randint(0, 30) for _ in range(n)]
    at = rng.randint(11, n - 1)
    target = rng.randint(31, 99)
    nums[at] = target
    for j in range(at + 1, n):
        if rng.random() < 0.15:
            nums[j] = target
    return {"nums": nums, "target": target}


FIRST_INDEX = Generator(
    "search/first_occurrence", "i: int",
    "Find the index of the first occurrence of target in nums.",
    "return 0 <= i < len(nums) and nums[i] == target and target not in nums[:i]",
    "return nums.index(target)",
    _first_index, tags=("index",))


def _recurrence(rng: random.Random) -> dict:
    return {"a": rng.randint(-50, 50), "b": rng.randint(-50, 50), "p": rng.randint(1, 4),
            "q": rng.randint(-3, 3), "n": rng.randint(5, 15)}


RECURRENCE = Generator(
    "sequences/linear_recurrence", "li: list[int]",
    "Find the first n terms of the sequence starting a, b in which every later term is "
    "p times the one before plus q times the one before that.",
    """
    return (len(li) == n and li[:2] == [a, b]
            and all(li[i] == p * li[i - 1] + q * li[i - 2] for i in range(2, n)))
    """,
    """
    li = [a, b]
    while len(li) < n:
        li.append(p * li[-1] + q * li[-2])
    return li
    """,
    _recurrence, tags=("recurrence",))


def _sym_diff(rng: random.Random) -> dict:
    while True:
        A = rng.sample(range(1, 80), rng.randint(4, 14))
        B = rng.sample(range(1, 80), rng.randint(4, 14))
        if len(set(A) ^ set(B)) >= 4:
            return {"A": A, "B": B}


SYMMETRIC_DIFFERENCE = Generator(
    "sets/symmetric_difference", "li: list[int]",
    "List, in increasing order, the numbers in exactly one of A and B.",
    """
    return (all(li[i] < li[i + 1] for i in range(len(li) - 1))
            and set(li) == set(A) ^ set(B))
    """,
    "return sorted(set(A) ^ set(B))",
    _sym_diff, tags=("sets",))


def _nonadjacent(rng: random.Random) -> dict:
    return {"nums": [rng.randint(1, 99) for _ in range(rng.randint(8, 18))]}


MAX_NONADJACENT = Generator(
    "dynamic_programming/max_nonadjacent_sum", "idx: list[int]",
    "Choose increasing indices of nums, no two adjacent, with the largest possible sum.",
    """
    if not all(0 <= i < len(nums) for i in idx):
        return False
    if not all(idx[j + 1] > idx[j] + 1 for j in range(len(idx) - 1)):
        return False
    take, skip = 0, 0
    for v in nums:
        take, skip = skip + v, max(take, skip)
    return sum(nums[i] for i in idx) == max(take, skip)
    """,
    """
    n = len(nums)
    best = [0] * (n + 2)
    for i in range(n - 1, -1, -1):
        best[i] = max(best[i + 1], nums[i] + best[i + 2])
    idx, i = [], 0
    while i < n:
        if nums[i] + best[i + 2] >= best[i + 1]:
            idx.append(i)
            i += 2
        else:
            i += 1
    return idx
    """,
    _nonadjacent, difficulty="medium", tags=("dynamic programming", "house robber"))


def _rank(rng: random.Random) -> dict:
    n = rng.randint(5, 9)
    return {"n": n, "k": rng.randint(1, math.factorial(n) - 1)}


KTH_PERMUTATION = Generator(
    "permutations/kth_in_lex_order", "p: list[int]",
    "Find the permutation of range(n) that comes k-th (counting from 0) in lexicographic order.",
    """
    from math import factorial
    if sorted(p) != list(range(n)):
        return False
    rank = 0
    for i, v in enumerate(p):
        rank += sum(1 for w in p[i + 1:] if w < v) * factorial(n - 1 - i)
    return rank == k
    """,
    """
    from math import factorial
    rest = list(range(n))
    out = []
    for i in range(n):
        q, k = divmod(k, factorial(n - 1 - i))
        out.append(rest.pop(q))
    return out
    """,
    _rank, difficulty="medium", tags=("permutations", "ranking"))

GENERATORS = (KTH_SMALLEST, FIRST_INDEX, RECURRENCE, SYMMETRIC_DIFFERENCE, MAX_NONADJACENT,
              KTH_PERMUTATION)
