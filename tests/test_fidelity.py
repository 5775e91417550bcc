"""Engine fidelity: monkeys-hf and stock lm-eval ``hf`` sample from the model's distribution.

The reference is the stock engine's own transformers model with transformers' logits
processors (``fidelity.py``), so a fault in monkeys-hf's sampler, cache or attention shows
as a misfit. Each check is run twice: on the engine's samples (it must pass) and against
slightly wrong settings (it must fail), so a check too weak to see a faulty sampler fails
here too. monkeys-vllm gets the same checks in tests/test_vllm_engine.py (its own
environment). Seeds are fixed: the outcomes are the same on every run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from test_models import PROMPTS, cloned_requests

from lm_eval_monkeys.models.fidelity import sequence_fit
from lm_eval_monkeys.models.generation import generation_settings

pytestmark = pytest.mark.slow

# GSM8K's temperature over 16 tokens; a stop that never occurs, so every token is scored.
SEQUENCE = {"temperature": 0.6, "max_gen_toks": 16, "until": ["\x00"]}


def hf_args(embedded_model: str) -> dict[str, Any]:
    return dict(item.split("=", 1) for item in embedded_model.split(","))


@pytest.fixture(scope="module")
def stock(embedded_model: str) -> Any:
    from lm_eval.models.huggingface import HFLM

    return HFLM(batch_size=64, device="cpu", **hf_args(embedded_model))


@pytest.fixture(scope="module")
def engines(embedded_model: str, stock: Any) -> dict[str, Any]:
    from lm_eval_monkeys.models.hf import MonkeysHF

    return {"monkeys-hf": MonkeysHF(seed=0, device="cpu", **hf_args(embedded_model)), "hf": stock}


def sample(engine: Any, prompts: list[str], k: int, **settings: Any) -> list[str]:
    torch.manual_seed(0)  # stock hf draws from torch's global generator
    texts: list[str] = engine.generate_until(
        cloned_requests(len(prompts), k, prompts=prompts, **settings), disable_tqdm=True
    )
    return texts


@pytest.mark.parametrize("name", ["monkeys-hf", "hf"])
def test_every_token_scores_as_a_draw_from_the_model(
    name: str, engines: dict[str, Any], stock: Any
) -> None:
    texts = sample(engines[name], PROMPTS, 16, **SEQUENCE)
    prompts = [stock.tok_encode(p) for p in PROMPTS for _ in range(16)]
    samples = list(zip(prompts, texts, strict=True))
    settings = generation_settings(SEQUENCE, 16)
    fit = sequence_fit(stock.model, stock.tokenizer, samples, settings)
    assert fit.tokens > 500 and fit.impossible == 0, fit
    assert abs(fit.z) < 5, fit
    hotter = replace(settings, temperature=0.8)
    misfit = sequence_fit(stock.model, stock.tokenizer, samples, hotter)
    assert misfit.z > 5, misfit
