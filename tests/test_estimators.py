"""coverage@k and majority@k against exact rational oracles."""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics.estimators import coverage_at_k, default_ks, majority_at_k


def exact_coverage(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [
        (1, 0, 1),
        (1, 1, 1),
        (10, 3, 4),
        (100, 1, 1),
        (100, 1, 99),
        (10_000, 1, 1),
        (10_000, 3, 8192),
        (10_000, 9_000, 2),
        (10_000, 1, 10_000),
        (10_000, 0, 5000),
        (10_000, 17, 37),
        (10_000, 5_000, 4096),
    ],
)
def test_coverage_exact_to_1e9(n: int, c: int, k: int) -> None:
    assert coverage_at_k(n, c, k) == pytest.approx(float(exact_coverage(n, c, k)), abs=1e-9)


def test_coverage_vectorised_over_problems_and_k() -> None:
    rng = np.random.default_rng(0)
    n = np.full(50, 10_000)
    c = rng.integers(0, 10_000, size=50)
    ks = np.array(default_ks(10_000))
    table = coverage_at_k(n[:, None], c[:, None], ks[None, :])
    assert table.shape == (50, ks.size)
    for i in (0, 17, 49):
        for j in (0, 5, ks.size - 1):
            expected = float(exact_coverage(10_000, int(c[i]), int(ks[j])))
            assert table[i, j] == pytest.approx(expected, abs=1e-9)
    assert np.all(np.diff(table, axis=1) >= -1e-12), "coverage must not fall as k grows"


@pytest.mark.parametrize(("n", "c", "k"), [(4, 1, 0), (4, 1, 5), (4, 5, 2), (4, -1, 1)])
def test_coverage_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(MonkeysError, match="k <= n"):
        coverage_at_k(n, c, k)


def test_default_ks_are_powers_of_two_plus_k() -> None:
    assert default_ks(1) == [1]
    assert default_ks(16) == [1, 2, 4, 8, 16]
    assert default_ks(10) == [1, 2, 4, 8, 10]
    with pytest.raises(MonkeysError):
        default_ks(0)


def brute_force_majority(sizes: list[int], correct: list[bool], invalid: int, k: int) -> Fraction:
    """Average the vote over every k-subset: invalid samples abstain, ties split evenly."""
    labels = [i for i, size in enumerate(sizes) for _ in range(size)] + [-1] * invalid
    total, subsets = Fraction(0), 0
    for subset in itertools.combinations(labels, k):
        subsets += 1
        votes: dict[int, int] = {}
        for label in subset:
            if label >= 0:
                votes[label] = votes.get(label, 0) + 1
        if votes:
            top = [label for label, v in votes.items() if v == max(votes.values())]
            total += Fraction(sum(correct[label] for label in top), len(top))
    return total / subsets


def test_majority_matches_enumeration_of_every_subset() -> None:
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 120:
        classes = int(rng.integers(1, 6))
        sizes = [int(s) for s in rng.integers(0, 5, size=classes)]
        correct = [False] * classes
        correct[int(rng.integers(classes))] = True
        invalid = int(rng.integers(0, 4))
        n = sum(sizes) + invalid
        if not 1 <= n <= 12:
            continue
        for k in range(1, n + 1):
            expected = float(brute_force_majority(sizes, correct, invalid, k))
            assert majority_at_k(sizes, correct, invalid, k) == pytest.approx(expected, abs=1e-12)
        checked += 1


def test_majority_special_cases() -> None:
    # k = 1: the chance of drawing a correct sample (invalid samples abstain and lose).
    assert majority_at_k([3, 5], [True, False], 2, 1) == pytest.approx(0.3)
    # k = n: a two-way tie at the top is split evenly.
    assert majority_at_k([4, 4, 2], [True, False, False], 0, 10) == pytest.approx(0.5)
    # Nothing parsable: no vote, never correct.
    assert majority_at_k([], [], 5, 3) == 0.0
    # Unparsable answers do not vote: 1 right answer beats 9 abstentions.
    assert majority_at_k([1], [True], 9, 10) == 1.0


def test_majority_at_paper_scale_is_a_probability_that_rises_with_k() -> None:
    sizes = [3_000, 2_500, 1_000] + [1] * 3_000
    correct = [True] + [False] * (len(sizes) - 1)
    values = [majority_at_k(sizes, correct, 500, k) for k in (1, 16, 256, 4096)]
    assert values[0] == pytest.approx(0.3)
    assert all(0 <= v <= 1 for v in values)
    assert values == sorted(values)
    assert values[-1] > 0.99


def test_majority_rejects_k_beyond_samples() -> None:
    with pytest.raises(MonkeysError, match="majority@5"):
        majority_at_k([2, 1], [True, False], 1, 5)


def exact_majority(sizes: list[int], correct: list[bool], invalid: int, k: int) -> Fraction:
    """The textbook count in integers: for each correct class and vote count x, the
    k-subsets where no rival exceeds x, by the number of rivals tied at x (rivals one at a
    time, ``ways[t, u]``: u draws taken, t ties), each sharing 1/(1 + ties)."""
    n = sum(sizes) + invalid
    total = Fraction(0)
    for g in (i for i, ok in enumerate(correct) if ok and sizes[i]):
        others = [s for i, s in enumerate(sizes) if i != g and s]
        m, pool = sizes[g], n - sizes[g]
        for x in range(max(1, k - pool), min(m, k) + 1):
            d, rivals = k - x, [s for s in others if s >= x]
            ways = np.zeros((1, d + 1), dtype=object)
            ways[:] = 0
            ways[0, 0] = 1
            for size in rivals:
                new = np.zeros((ways.shape[0] + 1, d + 1), dtype=object)
                new[:] = 0
                for y in range(min(x, size, d) + 1):
                    rows = slice(1, None) if y == x else slice(None, -1)
                    new[rows, y:] += ways[:, : d + 1 - y] * comb(size, y)
                ways = new
            rest = pool - sum(rivals)
            outside = [comb(rest, d - u) for u in range(d + 1)]
            for t in range(ways.shape[0]):
                count = sum(int(w) * o for w, o in zip(ways[t], outside, strict=True))
                total += Fraction(comb(m, x) * count, t + 1)
    return total / comb(n, k)


def zipf_classes(rng: np.random.Generator, samples: int, classes: int, s: float) -> list[int]:
    weights = np.arange(1, classes + 1, dtype=np.float64) ** -s
    return [int(c) for c in rng.multinomial(samples, weights / weights.sum()) if c]


def paper_scale_problems() -> list[tuple[str, list[int], int, list[int]]]:
    """n = 10,000: (name, class sizes with the correct class first, unparsable, ks)."""
    rng = np.random.default_rng(3)
    small = [3] * 950 + [4] * 950
    return [
        ("tail of ~200 classes", [1500, *zipf_classes(rng, 8100, 200, 1.2)], 400, [2, 8, 33]),
        ("tail of ~600 classes", [300, *zipf_classes(rng, 9300, 600, 1.2)], 400, [3, 16]),
        ("1,900 classes of 3-4 votes", [10_000 - 350 - sum(small), *small], 350, [8]),
        ("4 votes among them", [4, *small], 10_000 - 4 - sum(small), [8]),
        ("close race", [3000, 2950, 2900, 700] + [50] * 8, 50, [20, 48]),
    ]


@pytest.mark.parametrize(
    ("name", "sizes", "invalid", "ks"),
    paper_scale_problems(),
    ids=[problem[0] for problem in paper_scale_problems()],
)
def test_majority_exact_to_1e13_at_n_10000(
    name: str, sizes: list[int], invalid: int, ks: list[int]
) -> None:
    assert sum(sizes) + invalid == 10_000, name
    correct = [True] + [False] * (len(sizes) - 1)
    for k in ks:
        expected = float(exact_majority(sizes, correct, invalid, k))
        assert majority_at_k(sizes, correct, invalid, k) == pytest.approx(expected, abs=1e-13)


def test_majority_closed_forms_at_large_k_against_direct_counts() -> None:
    """Large k, where only problems with a short exact count can be checked: two classes
    (a double sum over both vote counts) and a class among singletons (gold wins with two
    votes, and at one vote shares with every singleton drawn)."""
    gold, rival, invalid, k = 4000, 3900, 2100, 300
    n = gold + rival + invalid
    wins = Fraction(0)
    for x in range(1, k + 1):
        for y in range(0, min(x, k - x) + 1):
            ways = comb(gold, x) * comb(rival, y) * comb(invalid, k - x - y)
            wins += ways if y < x else Fraction(ways, 2)
    expected = float(wins / comb(n, k))
    assert majority_at_k([gold, rival], [True, False], invalid, k) == pytest.approx(
        expected, abs=1e-13
    )
    for m in (1, 5, 3000):
        singles, invalid, k = 9500 - m, 500, 2000
        n = m + singles + invalid
        wins = sum(comb(m, x) * comb(n - m, k - x) for x in range(2, min(m, k) + 1))
        share = sum(
            Fraction(comb(singles, v) * comb(invalid, k - 1 - v), 1 + v)
            for v in range(max(0, k - 1 - invalid), min(singles, k - 1) + 1)
        )
        expected = float((wins + m * share) / comb(n, k))
        sizes = [m] + [1] * singles
        value = majority_at_k(sizes, [True] + [False] * singles, invalid, k)
        assert value == pytest.approx(expected, abs=1e-13)


def test_majority_at_1_equals_coverage_at_1_to_the_last_bit() -> None:
    """One vote is its own majority: majority@1 = c / n = coverage@1 exactly, so a table
    of both never shows them apart (the README's quick start once read 0.0063 vs 0.0062:
    1 correct sample of 16 on one of 10 problems, majority@1 a few ulps above)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        sizes = rng.integers(1, 6, size=int(rng.integers(1, 6)))
        correct = rng.random(sizes.size) < 0.4
        invalid = int(rng.integers(0, 4))
        n, c = int(sizes.sum()) + invalid, int(sizes[correct].sum())
        assert majority_at_k(sizes, correct, invalid, 1) == coverage_at_k(n, c, 1)
    quick_start = [majority_at_k([1, 15], [True, False], 0, 1), *[0.0] * 9]
    assert f"{np.mean(quick_start):.4f}" == f"{np.mean([coverage_at_k(16, 1, 1), *[0.0] * 9]):.4f}"
