"""Engine fidelity: monkeys-hf and stock lm-eval ``hf`` sample from the model's distribution.

The reference is the stock engine's own transformers model with transformers' logits
processors (``fidelity.py``), so a fault in monkeys-hf's sampler, cache or attention shows
as a misfit. Each check is run twice: on the engine's samples (it must pass) and against
slightly wrong settings (it must fail), so a check too weak to see a faulty sampler fails
here too. monkeys-vllm gets the same checks in tests/test_vllm_engine.py (its own
environment). Seeds are fixed: the outcomes are the same on every run.

Stock ``hf`` does not sample at the request's settings alone: lm-eval passes no top_k,
so transformers' ``generate`` applies its own default, top_k = 50 (docs/engines.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from test_models import PROMPTS, cloned_requests

from lm_eval_monkeys.models.fidelity import (
    FirstTokenFit,
    first_token_fit,
    next_token_probs,
    sequence_fit,
)
from lm_eval_monkeys.models.generation import GenerationSettings, generation_settings

pytestmark = pytest.mark.slow

# A prompt with many likely next words (151 inside top-p 0.9 at temperature 0.8).
STORY = "Once upon a time, there was a"
# Temperature and top-p together: the cut of the nucleus and the reshaping of what is left.
FIRST = {"temperature": 0.8, "top_p": 0.9, "max_gen_toks": 1}
# One-token samples per engine: enough that a sampler ignoring top-p fails by far (p ~ 1e-17
# at 1,024 on monkeys-hf); stock hf, slower per sample, draws half as many.
FIRST_TOKENS = {"monkeys-hf": 1024, "hf": 512}
# What transformers' generate uses when the request names no top_k (stock hf's case).
GENERATE_TOP_K = 50
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
    """monkeys-hf as a user gets it (bfloat16 on a CPU with hardware bfloat16) and stock hf."""
    from lm_eval_monkeys.models.hf import MonkeysHF

    return {"monkeys-hf": MonkeysHF(seed=0, device="cpu", **hf_args(embedded_model)), "hf": stock}


def outside_allowed(engine: Any) -> int:
    """Samples the settings rule out that an engine may draw from the fp32 reference: none
    in fp32; in bfloat16 (like vLLM) 1%, as its nucleus's edge is not fp32's."""
    n = FIRST_TOKENS["monkeys-hf"]
    return 0 if engine.model.dtype == torch.float32 else n // 100


def test_monkeys_hf_decodes_in_bfloat16_where_the_cpu_multiplies_it(
    engines: dict[str, Any], stock: Any
) -> None:
    from lm_eval_monkeys.models.cpu_linear import native_bfloat16

    assert stock.model.dtype == torch.float32  # the GGUF's own precision: the reference's
    expected = torch.bfloat16 if native_bfloat16() else torch.float32
    assert engines["monkeys-hf"].model.dtype == expected


def sample(engine: Any, prompts: list[str], k: int, **settings: Any) -> list[str]:
    torch.manual_seed(0)  # stock hf draws from torch's global generator
    texts: list[str] = engine.generate_until(
        cloned_requests(len(prompts), k, prompts=prompts, **settings), disable_tqdm=True
    )
    return texts


def first_tokens(engine: Any, n: int, **settings: Any) -> list[str]:
    return sample(engine, [STORY], n, **FIRST, **settings)


def assert_first_tokens_fit(
    texts: list[str],
    reference: tuple[Any, Any],
    settings: GenerationSettings,
    wrong: list[GenerationSettings],
    outside: int = 0,
) -> None:
    """The texts fit ``settings`` (p > 1e-4) under the reference (model, tokenizer), at
    most ``outside`` of them ruled out by the settings, and each of ``wrong`` fails
    (p < 1e-6)."""
    model, tokenizer = reference
    prompt = tokenizer(STORY).input_ids

    def fit(hypothesis: GenerationSettings) -> FirstTokenFit:
        probs = next_token_probs(model, prompt, hypothesis)
        return first_token_fit(probs, texts, tokenizer, settings.until)

    right = fit(settings)
    assert right.p_value > 1e-4 and right.cells >= 8 and right.outside <= outside, right
    for other in wrong:
        misfit = fit(other)
        assert misfit.p_value < 1e-6, (other, misfit)


def first_settings() -> GenerationSettings:
    return generation_settings({**FIRST, "until": ["\n\n"]}, 1)


def test_first_tokens_follow_the_softmax_at_temperature_and_top_p(
    engines: dict[str, Any], stock: Any
) -> None:
    engine = engines["monkeys-hf"]
    texts = first_tokens(engine, FIRST_TOKENS["monkeys-hf"])
    settings = first_settings()
    wrong = [replace(settings, top_p=1.0), replace(settings, temperature=1.0)]
    reference = (stock.model, stock.tokenizer)
    assert_first_tokens_fit(texts, reference, settings, wrong, outside_allowed(engine))


def test_stock_hf_samples_with_generates_default_top_k(stock: Any) -> None:
    """Without top_k in the request, stock hf samples within the 50 likeliest tokens."""
    texts = first_tokens(stock, FIRST_TOKENS["hf"])
    settings = first_settings()
    with_default = replace(settings, top_k=GENERATE_TOP_K)
    assert_first_tokens_fit(texts, (stock.model, stock.tokenizer), with_default, [settings])


def test_stock_hf_with_top_k_0_samples_at_the_requests_settings(stock: Any) -> None:
    """top_k 0 in the request (lm-eval passes it through) turns generate's default off."""
    texts = first_tokens(stock, FIRST_TOKENS["hf"], top_k=0)
    settings = first_settings()
    assert_first_tokens_fit(
        texts, (stock.model, stock.tokenizer), settings, [replace(settings, top_k=GENERATE_TOP_K)]
    )


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
