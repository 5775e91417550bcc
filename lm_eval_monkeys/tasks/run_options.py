"""Run options given through lm-eval's ``--metadata`` (or our flags), validated once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics import (
    ADAPTIVE_METRICS,
    check_adaptive,
    check_metric,
    default_ks,
    ks_within,
    metric_families,
)
from lm_eval_monkeys.store import Sampling
from lm_eval_monkeys.task_configs import DEFAULT_METRICS


def parse_repeats(value: Any) -> int:
    """k, the samples drawn per problem, validated."""
    return _whole(value, "repeats", "--repeats 16")


DEFAULT_ROUND_SIZE = 4  # samples per unsolved problem a round


def _whole(value: Any, what: str, example: str) -> int:
    """A whole number >= 1, or one line saying what it should be."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(number) != str(value).strip():
        raise MonkeysError(f"{what} must be a whole number >= 1, got {value!r}; e.g. {example}")
    return number


def parse_sampling(value: Any) -> Sampling | None:
    """An adaptive run's rounds (``metadata.sampling``: ``round_size``, ``budget``); None
    when every problem gets all k samples."""
    if value is None or value == "" or value is False:
        return None
    if not isinstance(value, Mapping):
        raise MonkeysError(
            f"sampling must be a mapping of round_size and budget, got {value!r}; "
            "e.g. --until_verified --round_size 4"
        )
    budget = value.get("budget")
    return Sampling(
        round_size=_whole(
            value.get("round_size", DEFAULT_ROUND_SIZE), "round_size", "--round_size 4"
        ),
        budget=None if budget is None else _whole(budget, "budget", "--budget 1000"),
    )


def sampled_metrics(value: Any, sampling: Sampling | None) -> tuple[str, ...]:
    """The metric families a task reports: ``parse_metrics``, or for an adaptive run the
    ones it can give (those it cannot, when asked for, refused in one line)."""
    if sampling is None:
        return parse_metrics(value)
    if value is None or value == "":
        return ADAPTIVE_METRICS
    names = parse_metrics(value)
    check_adaptive(names, "this run")
    return names


def _items(value: Any) -> list[Any]:
    """A list option's items: a list, or a comma string, bracketed or not. lm-eval hands
    ``--metadata metrics=[coverage,majority]`` over as the string ``"[coverage,majority]"``
    (its literal parse fails on bare names), so the brackets are the user's list syntax."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def parse_ks(value: Any, k: int) -> list[int]:
    """The k values to report: given as a list or comma string, else powers of two up to k."""
    if value is None or value == "":
        return default_ks(k)
    try:
        ks = sorted({int(item) for item in _items(value)})
    except (TypeError, ValueError):
        raise MonkeysError(f"ks must be whole numbers, got {value!r}; e.g. --ks 1,4,16") from None
    if not ks or ks[0] < 1:
        raise MonkeysError(f"every reported k must be >= 1, got {value!r}; e.g. --ks 1,4,16")
    return ks_within(
        ks, k, "drawn per problem", f"raise --repeats to {ks[-1]} or drop k={ks[-1]} from --ks"
    )


def parse_metrics(value: Any, default: Sequence[str] = DEFAULT_METRICS) -> tuple[str, ...]:
    """The metric families a task reports (``metadata.metrics``), each one registered."""
    if value is None or value == "":
        return tuple(default)
    names = tuple(dict.fromkeys(str(item).strip() for item in _items(value)))
    if not names:
        raise MonkeysError(f"no metric in {value!r}; choose from {', '.join(metric_families())}")
    return tuple(check_metric(name) for name in names)
