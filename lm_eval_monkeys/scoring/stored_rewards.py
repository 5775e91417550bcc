"""Reward-model scores read back from the store, for the rm_* metrics of rescore."""

from __future__ import annotations

import logging
from dataclasses import replace

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.metrics import ProblemSummary
from lm_eval_monkeys.scoring import ScoredSamples
from lm_eval_monkeys.store import Sample, SampleStore

logger = logging.getLogger(__name__)


def stored_reward_model(store: SampleStore, requested: str | None) -> str | None:
    """The reward model whose scores rescore uses: the one asked for, else the only one
    stored; None when the store holds no rewards."""
    stored = store.rewards.models()
    if requested is not None:
        if requested not in stored:
            raise MonkeysError(
                f"{store.run_dir} holds no rewards from {requested} "
                f"(it has: {', '.join(stored) or 'none'}); run `lm-eval-monkeys reward "
                f"{store.run_dir} --reward_model {requested}` first"
            )
        return requested
    if len(stored) > 1:
        raise MonkeysError(
            f"{store.run_dir} holds rewards from {len(stored)} reward models "
            f"({', '.join(stored)}); choose one with --reward_model"
        )
    return stored[0] if stored else None


def with_stored_rewards(
    store: SampleStore,
    reward_model: str | None,
    task: str,
    doc_id: int,
    samples: list[Sample],
    scored: ScoredSamples,
) -> ProblemSummary:
    """A problem's summary with its samples' rewards, if every sample has one."""
    if reward_model is None:
        return scored.summary
    stored = store.rewards.scores(reward_model, task, doc_id)
    if any(s.sample_idx not in stored for s in samples):
        return scored.summary
    return scored.with_rewards([stored[s.sample_idx] for s in samples])


def all_or_none_rewarded(
    summaries: list[ProblemSummary], task: str, reward_model: str | None
) -> list[ProblemSummary]:
    """Reward metrics average over every problem of a task or none: drop partial rewards."""
    missing = sum(s.rewards is None for s in summaries)
    if reward_model is None or missing == 0:
        return summaries
    logger.warning(
        "%s: %d of %d problems have samples without a reward from %s; rm_* metrics "
        "left out (run `lm-eval-monkeys reward` to score them)",
        task,
        missing,
        len(summaries),
        reward_model,
    )
    return [replace(s, rewards=None) for s in summaries]
