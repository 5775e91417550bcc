"""rm_best@k and rm_majority@k against brute-force enumeration of every k-subset."""

from __future__ import annotations

import itertools
from dataclasses import replace
from fractions import Fraction
from math import comb, exp

import numpy as np
import pytest

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics import estimators, metric_families, problem_curves
from lm_eval_monkeys.metrics.estimators import (
    coverage_at_k,
    majority_at_k,
    rm_best_at_k,
    rm_majority_at_k,
)
from lm_eval_monkeys.metrics.summary import ProblemSummary, SampleRewards


def brute_best(rewards: list[float], correct: list[bool], k: int) -> float:
    """Mean over k-subsets of the correct share among the subset's top-reward samples."""
    credits = []
    for subset in itertools.combinations(range(len(rewards)), k):
        top = max(rewards[i] for i in subset)
        tied = [correct[i] for i in subset if rewards[i] == top]
        credits.append(sum(tied) / len(tied))
    return sum(credits) / len(credits)


def brute_majority(rewards: list[float], classes: list[int], right: list[bool], k: int) -> float:
    """Mean over k-subsets of the weighted vote: weight exp(r - max r), ties split."""
    peak = max(rewards)
    credits = []
    for subset in itertools.combinations(range(len(rewards)), k):
        totals: dict[int, float] = {}
        for i in subset:
            if classes[i] >= 0:
                totals[classes[i]] = totals.get(classes[i], 0.0) + exp(rewards[i] - peak)
        if not totals:
            credits.append(0.0)
            continue
        best = max(totals.values())
        winners = [g for g, w in totals.items() if w >= best * (1 - 1e-9)]
        credits.append(sum(right[g] for g in winners) / len(winners))
    return sum(credits) / len(credits)


def random_problem(rng: np.random.Generator, n: int) -> tuple[list[float], list[int], list[bool]]:
    """Rewards from a few integer levels (many ties), classes with no-answer samples (-1)."""
    n_classes = int(rng.integers(1, 4))
    rewards = rng.integers(-2, 3, size=n).astype(float).tolist()
    classes = rng.integers(-1, n_classes, size=n).tolist()
    right = [bool(g == 0) for g in range(n_classes)]  # class 0 is the correct answer
    return rewards, classes, right


def sample_correct(classes: list[int], right: list[bool]) -> list[bool]:
    return [g >= 0 and right[g] for g in classes]


@pytest.mark.parametrize("seed", range(40))
def test_rm_best_matches_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rewards, classes, right = random_problem(rng, int(rng.integers(1, 9)))
    correct = sample_correct(classes, right)
    ks = list(range(1, len(rewards) + 1))
    got = rm_best_at_k(rewards, correct, ks)
    for k, value in zip(ks, got, strict=True):
        assert value == pytest.approx(brute_best(rewards, correct, k), abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_rm_majority_matches_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rewards, classes, right = random_problem(rng, int(rng.integers(1, 9)))
    ks = list(range(1, len(rewards) + 1))
    got = rm_majority_at_k(rewards, classes, right, ks)
    assert np.all(got.stderr == 0), "small problems are enumerated exactly"
    for k, value in zip(ks, got.value, strict=True):
        assert value == pytest.approx(brute_majority(rewards, classes, right, k), abs=1e-12)


def test_k1_equals_coverage_and_kn_is_the_full_vote() -> None:
    rng = np.random.default_rng(7)
    n = 500
    rewards = rng.normal(size=n)
    classes = rng.integers(-1, 6, size=n)
    right = [True, False, False, False, False, False]
    correct = (classes == 0).tolist()
    c = int(np.sum(correct))
    best = rm_best_at_k(rewards, correct, [1, n])
    vote = rm_majority_at_k(rewards, classes, right, [1, n])
    assert best[0] == pytest.approx(coverage_at_k(n, c, 1), abs=1e-12)
    assert vote.value[0] == pytest.approx(c / n, abs=1e-12)
    assert best[1] == float(correct[int(np.argmax(rewards))])
    totals = np.bincount(classes[classes >= 0], np.exp(rewards - rewards.max())[classes >= 0])
    assert vote.value[1] == float(np.argmax(totals) == 0)
    assert np.all(vote.stderr == 0)


def test_invalid_samples_can_be_picked_by_best_of_k_but_never_vote() -> None:
    # The top-reward sample has no parsable answer: best-of-n picks it and is wrong; the
    # weighted vote ignores it and the one valid (correct) sample wins.
    rewards, classes, right = [5.0, 0.0, 1.0], [-1, 0, -1], [True]
    assert rm_best_at_k(rewards, sample_correct(classes, right), [3])[0] == 0.0
    vote = rm_majority_at_k(rewards, classes, right, [1, 2, 3])
    # k=2 needs sample 1 in the subset: 2 of the 3 pairs. Only the correct class votes.
    np.testing.assert_allclose(vote.value, [1 / 3, 2 / 3, 1.0], atol=1e-15)


def test_ties_at_the_top_share_credit() -> None:
    rewards, correct = [2.0, 2.0, 2.0, 0.0], [True, False, False, True]
    assert rm_best_at_k(rewards, correct, [4])[0] == pytest.approx(1 / 3, abs=1e-15)
    # Two classes of equal total weight split the vote.
    vote = rm_majority_at_k([1.0, 1.0], [0, 1], [True, False], [2])
    assert vote.value[0] == 0.5


def test_rm_best_exact_for_ten_thousand_samples() -> None:
    """Against exact rational arithmetic: 10,000 samples on 60 reward levels."""
    rng = np.random.default_rng(3)
    n = 10_000
    level = rng.integers(0, 60, size=n)
    correct = rng.random(n) < np.linspace(0.05, 0.95, 60)[level]
    rewards = level * 0.37 - 4.0
    sizes = np.bincount(level, minlength=60)
    hits = np.bincount(level, weights=correct, minlength=60).astype(int)
    ks = [1, 2, 37, 1000, 4096, 9999, 10_000]
    got = rm_best_at_k(rewards, correct, ks)
    for k, value in zip(ks, got, strict=True):
        exact, below = Fraction(0), 0
        for size, hit in zip(sizes.tolist(), hits.tolist(), strict=True):
            top = comb(below + size, k) - comb(below, k)
            exact += Fraction(hit, size) * top if size else 0
            below += size
        assert value == pytest.approx(float(exact / comb(n, k)), abs=1e-13)


def test_monte_carlo_is_deterministic_and_within_its_standard_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(11)
    n = 12
    rewards = rng.normal(size=n).tolist()
    classes = rng.integers(-1, 3, size=n).tolist()
    right = [True, False, False]
    ks = list(range(2, n))
    exact = [brute_majority(rewards, classes, right, k) for k in ks]
    monkeypatch.setattr(estimators, "_MAX_ENUMERATED_CELLS", 0)  # force sampling
    first = rm_majority_at_k(rewards, classes, right, ks, subsets=2000)
    again = rm_majority_at_k(rewards, classes, right, ks, subsets=2000)
    np.testing.assert_array_equal(first.value, again.value)
    assert np.all(first.stderr > 0)
    assert np.all(np.abs(first.value - exact) <= 4 * first.stderr)


def test_rm_majority_large_problem_is_bounded_by_coverage() -> None:
    rng = np.random.default_rng(5)
    n = 2_000
    classes = rng.choice([-1, 0, 1, 2, 3], size=n, p=[0.1, 0.3, 0.3, 0.2, 0.1])
    rewards = rng.normal(size=n) + (classes == 0)
    ks = [1, 2, 16, 256, 1024, n]
    vote = rm_majority_at_k(rewards, classes, [True, False, False, False], ks)
    c = int((classes == 0).sum())
    coverage = coverage_at_k(n, c, np.array(ks))
    assert np.all(vote.value <= coverage + 4 * vote.stderr + 1e-12)
    assert vote.stderr[0] == vote.stderr[-1] == 0 and np.all(vote.stderr[1:3] > 0)
    # RM-favoured correct answers: the weighted vote beats the plain one at k = 256.
    plain = majority_at_k(np.bincount(classes[classes >= 0]), [True, False, False, False], 200, 256)
    assert vote.value[3] > plain


@pytest.mark.parametrize(
    ("rewards", "correct", "ks", "message"),
    [
        ([1.0, float("nan")], [True, False], [1], "finite"),
        ([1.0, 2.0], [True], [1], "one reward and one verdict per sample"),
        ([1.0, 2.0], [True, False], [3], "1 <= k <= 2"),
    ],
)
def test_bad_input_is_a_clear_error(
    rewards: list[float], correct: list[bool], ks: list[int], message: str
) -> None:
    with pytest.raises(MonkeysError, match=message):
        rm_best_at_k(rewards, correct, ks)


def test_metrics_need_rewards_and_leave_coverage_and_majority_unchanged() -> None:
    summary = ProblemSummary(
        n=4,
        c=2,
        n_invalid=1,
        class_answers=("1", "2"),
        class_sizes=(2, 1),
        class_correct=(True, False),
    )
    every = metric_families()
    plain = problem_curves(summary, [1, 4], every)
    assert set(plain) == {"coverage", "majority"}  # reward metrics need rewards
    assert set(plain["coverage"]) == {1, 4}
    assert metric_families(rewards=False) == ["coverage", "majority"]
    rewarded = SampleRewards(np.array([0.5, 3.0, -1.0, 2.0]), np.array([0, 1, 0, -1]))
    scored = problem_curves(replace(summary, rewards=rewarded), [1, 4], every)
    assert {k: scored[k] for k in plain} == plain
    assert scored["rm_best"][1] == pytest.approx(0.5, abs=1e-12)
    assert scored["rm_best"][4] == 0.0  # the top reward (3.0) is the wrong answer
    assert scored["rm_majority"][4] == 0.0  # weight e^3 beats e^0.5 + e^-1
    assert "rm_best" in every
