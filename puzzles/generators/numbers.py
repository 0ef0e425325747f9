"""Generators whose answer is a number: arithmetic, digits, number theory, primes, counting,
intervals, fractions.

Every `params` keeps the answer away from the trivial-answer filter's integers (-10..10, 100,
1000; selfplay.stages.filter): a puzzle a small constant solves teaches nothing.
"""

from __future__ import annotations

import math
import random

from puzzles.generators.base import Generator

# The filter's integers, and then some margin: answers are drawn outside it.
_SMALL = set(range(-10, 11)) | {100, 1000}


def _not_small(rng: random.Random, lo: int, hi: int) -> int:
    while True:
        v = rng.randint(lo, hi)
        if v not in _SMALL:
            return v


def _linear(rng: random.Random) -> dict:
    a = rng.choice([-1, 1]) * rng.randint(2, 60)
    b = rng.randint(-1000, 1000)
    x = _not_small(rng, -5000, 5000)
    return {"a": a, "b": b, "c": a * x + b}


LINEAR = Generator(
    "arithmetic/linear_equation", "x: int", "Find the integer x with a * x + b == c.",
    "return a * x + b == c",
    "return (c - b) // a",
    _linear, tags=("linear equation",))


def _digit_sum(rng: random.Random) -> dict:
    prefix = str(rng.randint(10, 999))
    k = rng.randint(len(prefix) + 2, 14)
    base = sum(map(int, prefix))
    return {"prefix": prefix, "k": k, "s": rng.randint(base + 1, base + 9 * (k - len(prefix)))}


DIGIT_SUM = Generator(
    "digits/digit_sum_with_prefix", "n: int",
    "Find a positive integer with exactly k decimal digits, starting with the digits of prefix, "
    "whose digits add up to s.",
    """
    t = str(n)
    return n > 0 and len(t) == k and t.startswith(prefix) and sum(int(c) for c in t) == s
    """,
    """
    digits = []
    left = s - sum(int(c) for c in prefix)
    for _ in range(k - len(prefix)):
        d = min(9, left)
        digits.append(str(d))
        left -= d
    return int(prefix + ''.join(digits))
    """,
    _digit_sum, tags=("digit sum",))


def _inverse(rng: random.Random) -> dict:
    while True:
        m = rng.randint(50, 20000)
        a = rng.randint(2, m - 1)
        if math.gcd(a, m) == 1 and pow(a, -1, m) not in _SMALL:
            return {"a": a, "m": m}


MOD_INVERSE = Generator(
    "number_theory/modular_inverse", "x: int",
    "Find x with 0 <= x < m and a * x leaving remainder 1 when divided by m.",
    "return 0 <= x < m and a * x % m == 1",
    """
    old_r, r = a, m
    old_s, s = 1, 0
    while r:
        q = old_r // r
        old_r, r = r, old_r - q * r
        old_s, s = s, old_s - q * s
    return old_s % m
    """,
    _inverse, tags=("modular inverse", "extended euclid"))


def _prime_gap(rng: random.Random) -> dict:
    # Below 10**6 no gap between primes reaches 120, so every window holds a prime.
    lo = rng.randint(1001, 10 ** 6)
    return {"lo": lo, "hi": lo + 120}


PRIME_IN_WINDOW = Generator(
    "primes/largest_prime_in_window", "p: int",
    "Find the largest prime p with lo < p < hi.",
    """
    def is_prime(k):
        return k > 1 and all(k % d for d in range(2, int(k ** 0.5) + 1))
    return lo < p < hi and is_prime(p) and not any(is_prime(k) for k in range(p + 1, hi))
    """,
    """
    for k in range(hi - 1, lo, -1):
        if all(k % d for d in range(2, int(k ** 0.5) + 1)):
            return k
    """,
    _prime_gap, tags=("primes", "search"))


def _multiples(rng: random.Random) -> dict:
    while True:
        lo = rng.randint(1, 5000)
        hi = lo + rng.randint(50, 20000)
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        n = sum(1 for k in range(lo, hi + 1) if k % a == 0 or k % b == 0)
        if n not in _SMALL:
            return {"lo": lo, "hi": hi, "a": a, "b": b}


COUNT_MULTIPLES = Generator(
    "counting/multiples_of_either", "n: int",
    "Count the integers from lo to hi inclusive divisible by a or by b.",
    "return n == sum(1 for k in range(lo, hi + 1) if k % a == 0 or k % b == 0)",
    """
    from math import gcd
    def upto(t, d):
        return t // d
    l = a * b // gcd(a, b)
    count = lambda t: upto(t, a) + upto(t, b) - upto(t, l)
    return count(hi) - count(lo - 1)
    """,
    _multiples, tags=("inclusion-exclusion",))


def _covered(rng: random.Random) -> dict:
    while True:
        ivs = []
        for _ in range(rng.randint(3, 9)):
            a = rng.randint(-200, 400)
            ivs.append([a, a + rng.randint(1, 80)])
        covered = len({t for a, b in ivs for t in range(a, b)})
        if covered not in _SMALL:
            return {"ivs": ivs}


COVERED_LENGTH = Generator(
    "intervals/covered_length", "n: int",
    "Give the total length covered by the union of the half-open intervals [a, b) in ivs.",
    "return n == len({t for a, b in ivs for t in range(a, b)})",
    """
    total, end = 0, None
    for a, b in sorted(ivs):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total
    """,
    _covered, tags=("intervals", "union"))


def _fraction(rng: random.Random) -> dict:
    while True:
        p, q = rng.randint(2, 400), rng.randint(2, 400)
        if p != q and math.gcd(p, q) == 1:
            k = rng.randint(2, 60)
            return {"num": p * k, "den": q * k}


LOWEST_TERMS = Generator(
    "fractions_ratios/lowest_terms", "pq: list[int]",
    "Write num/den in lowest terms as [p, q] with q > 0.",
    """
    from math import gcd
    return (len(pq) == 2 and pq[1] > 0 and gcd(pq[0], pq[1]) == 1
            and pq[0] * den == num * pq[1])
    """,
    """
    from math import gcd
    d = gcd(num, den)
    return [num // d, den // d]
    """,
    _fraction, tags=("fractions", "gcd"))

GENERATORS = (LINEAR, DIGIT_SUM, MOD_INVERSE, PRIME_IN_WINDOW, COUNT_MULTIPLES, COVERED_LENGTH,
              LOWEST_TERMS)
