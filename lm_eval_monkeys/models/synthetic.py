"""``monkeys-synthetic``: a fast stand-in model for scale tests, no neural network.

It writes GSM8K- and MATH-style completions whose final answer is right with a per-problem
probability drawn from Beta around ``accuracy`` (so problems vary, as for real models);
wrong answers come from a few recurring values, and some samples hold no answer at all.
Every sample is a function of (seed, task, doc, sample index) only, and each problem's
chance that a sample is right is known (``success_rate``): what tests and benchmarks of
estimators compare against.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from lm_eval.api.registry import register_model

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.models.ksample import KSampleLM, SampleRequest, sample_seed
from lm_eval_monkeys.store import Sample
from lm_eval_monkeys.verifiers import get_checker

_SPREAD = 2.0  # Beta concentration: smaller means problems differ more


@register_model("monkeys-synthetic")
class SyntheticLM(KSampleLM):
    def __init__(
        self,
        accuracy: float = 0.3,
        seed: int = 0,
        no_answer: float = 0.05,
        sample_delay: float = 0.0,
        run_dir: str | None = None,
        **_: Any,
    ) -> None:
        """``sample_delay`` seconds per sample imitate a real model's speed (fault tests)."""
        try:
            accuracy, no_answer = float(accuracy), float(no_answer)
        except ValueError:
            raise MonkeysError(
                f"accuracy and no_answer must be numbers, got accuracy={accuracy!r}, "
                f"no_answer={no_answer!r}; e.g. --model_args accuracy=0.3"
            ) from None
        if not 0.0 < accuracy < 1.0:
            raise MonkeysError(f"accuracy must be in (0, 1), got {accuracy}; e.g. accuracy=0.3")
        super().__init__(run_dir=run_dir, seed=seed, accuracy=accuracy, no_answer=no_answer)
        self.accuracy, self.no_answer, self.delay = accuracy, no_answer, float(sample_delay)

    def success_rate(self, task: str, doc_id: int) -> float:
        """The probability that one sample of this problem holds the right answer."""
        return self._p_correct(task, doc_id) * (1 - self.no_answer)

    def _p_correct(self, task: str, doc_id: int) -> float:
        """The problem's chance of a right answer among samples that give one."""
        problem_rng = random.Random(sample_seed(self.seed, task, doc_id, -1))
        return problem_rng.betavariate(self.accuracy * _SPREAD, (1 - self.accuracy) * _SPREAD)

    def sample(self, requests: list[SampleRequest]) -> Iterator[tuple[SampleRequest, Sample]]:
        for request in requests:
            p_correct = self._p_correct(request.task, request.doc_id)
            writer = _writer_for(request.doc)
            prompt_tokens = len(request.context.split())
            for idx in request.indices:
                rng = random.Random(sample_seed(self.seed, request.task, request.doc_id, idx))
                roll = rng.random()
                if roll < self.no_answer:
                    text = " Let me think about this step by step, carefully."
                else:
                    text = writer(
                        rng, correct=roll < self.no_answer + p_correct * (1 - self.no_answer)
                    )
                if self.delay:
                    time.sleep(self.delay)
                yield request, Sample(idx, text, prompt_tokens, len(text.split()))


def _writer_for(doc: dict[str, Any]):
    if "####" in str(doc.get("answer", "")):
        gold = int(get_checker("gsm8k").target(doc).split(".")[0])
        wrong = [gold + 1, gold - 1, gold * 2, gold + 10, 0]

        def gsm8k(rng: random.Random, correct: bool) -> str:
            value = gold if correct else wrong[min(int(rng.paretovariate(1.2)) - 1, 4)]
            return f" We add the amounts: {rng.randint(2, 9)} + {value} steps.\n#### {value}"

        return gsm8k
    if "problem" in doc:
        from lm_eval_monkeys.verifiers.answers.math import reference_answer

        target = reference_answer(doc) or "0"
        wrong_answers = ["0", "1", "2", "-1", "\\frac{1}{2}", f"{target}+1"]

        def math(rng: random.Random, correct: bool) -> str:
            value = target if correct else wrong_answers[min(int(rng.paretovariate(1.0)) - 1, 5)]
            return (
                f" Simplifying gives the result.\nFinal Answer: The final answer is ${value}$."
                " I hope it is correct."
            )

        return math
    return lambda rng, correct: " I cannot solve this kind of problem."
