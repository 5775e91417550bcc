"""Verification: from completions to verdicts, through one cache and a local or Ray backend."""

from lm_eval_monkeys.verification.grading import ProblemAnswers, ScoredSamples, answer_key, score
from lm_eval_monkeys.verification.resolver import VerdictResolver, score_completions

__all__ = [
    "ProblemAnswers",
    "ScoredSamples",
    "VerdictResolver",
    "answer_key",
    "score",
    "score_completions",
]
