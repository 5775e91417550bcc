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


def test_majority_pruning_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rivals and votes settled by Hoeffding's bound give the same values as the full
    recursion (pruning off) on problems large enough for the bounds to bite."""
    from lm_eval_monkeys.metrics import estimators

    rng = np.random.default_rng(7)
    cases = []
    for _ in range(4):
        gold = int(rng.integers(20, 1500))
        rivals = rng.multinomial(2000 - gold - 100, np.arange(1, 9) ** -1.5 / 2.12).tolist()
        cases.append(([gold, *rivals], [True] + [False] * len(rivals), 100))
    ks = (1, 7, 64, 300, 1200)
    pruned = [[majority_at_k(s, c, inv, k) for k in ks] for s, c, inv in cases]
    # Settled outright: gold far ahead of (or behind) its rivals.
    assert majority_at_k([9000, 500, 300], [True, False, False], 200, 1000) == 1.0
    assert majority_at_k([300, 9000, 500], [True, False, False], 200, 1000) == 0.0
    monkeypatch.setattr(estimators, "_PRUNE", 0.0)
    full = [[majority_at_k(s, c, inv, k) for k in ks] for s, c, inv in cases]
    assert np.allclose(pruned, full, rtol=0, atol=1e-12)
