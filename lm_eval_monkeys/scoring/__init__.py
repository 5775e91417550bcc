"""Scoring: completions to verdicts (one cache, local or Ray), rescoring a stored run."""

from lm_eval_monkeys.scoring.problem_scores import ProblemAnswers, ScoredSamples, answer_key, score
from lm_eval_monkeys.scoring.resolver import VerdictResolver, score_completions

__all__ = [
    "ProblemAnswers",
    "ScoredSamples",
    "VerdictResolver",
    "answer_key",
    "score",
    "score_completions",
]
