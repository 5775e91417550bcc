"""Whether an engine's samples come from the model's distribution at the run's settings.

The reference is a plain transformers model (fp32) with transformers' own logits
processors for the settings (repetition penalty, temperature, top-k, top-p, min-p, in
``generate``'s order), not the engines' code. Engines hand back texts, so both checks
work on texts:

- ``first_token_fit``: many one-token samples of one prompt against the reference's
  next-token distribution, each token mapped to the text an engine returns for it (its
  decoding, cut at a stop string); a chi-square goodness of fit over cells made in order
  of probability: every likely text a cell of its own, the others grouped, most likely
  first, into cells of about ``n / CELLS`` expected samples each. So the least likely
  tenth of the distribution (what top-p 0.9 cuts) forms cells of its own: a sampler
  that ignores top-p leaves them empty and fails. Sampled texts the settings rule out
  are counted (``outside``) and join the least likely cell: an engine that computes in
  bfloat16 (vLLM on CPU) puts a few samples just past the fp32 nucleus's edge.
- ``sequence_fit``: every token of longer samples (their texts re-tokenised) scored under
  the reference's filtered distribution at its position. For a faithful sampler each
  token's log-probability has expectation minus the entropy there and a known variance,
  whatever came before, so the summed differences over the summed variances give z,
  close to N(0, 1); a token the settings rule out (outside top-p, say) counts as
  impossible. The samples' mean negative log-likelihood under the unfiltered model (the
  figure issue 24 compared between engines) comes with it.

Both are approximations where a text differs from its tokens: re-tokenising can merge
a sampled pair of tokens, and a sample that ended on end-of-sequence has no text for
that token, so its term is left out (prompts where it is unlikely keep that small).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from scipy import stats
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lm_eval_monkeys.models.generation import GenerationSettings

# Chi-square's rule: no cell expects fewer than this many samples.
MIN_EXPECTED = 5.0
# Unlikely texts are grouped into cells of about n / CELLS expected samples: few enough
# that a missing tenth of the mass weighs on few degrees of freedom.
CELLS = 32


@dataclass(frozen=True)
class FirstTokenFit:
    chi2: float
    cells: int
    p_value: float
    samples: int
    outside: int  # samples of texts the settings rule out (counted in the last cell)


@dataclass(frozen=True)
class SequenceFit:
    z: float  # summed (log q + entropy) over sqrt(summed variance): ~N(0, 1) if faithful
    tokens: int
    impossible: int  # tokens the settings give probability 0
    mean_nll: float  # per token, under the unfiltered model (temperature 1)


def processors(settings: GenerationSettings) -> LogitsProcessorList:
    """transformers' processors for ``settings``, in ``generate``'s order."""
    assert not settings.greedy, "fidelity is about sampling: temperature > 0"
    chain = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        chain.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    chain.append(TemperatureLogitsWarper(settings.temperature))
    if settings.top_k > 0:
        chain.append(TopKLogitsWarper(settings.top_k))
    if settings.top_p < 1.0:
        chain.append(TopPLogitsWarper(settings.top_p))
    if settings.min_p > 0.0:
        chain.append(MinPLogitsWarper(settings.min_p))
    return chain


@torch.inference_mode()
def next_token_probs(
    model: PreTrainedModel, prompt: list[int], settings: GenerationSettings
) -> torch.Tensor:
    """The reference distribution of the token after ``prompt`` [vocab], float64."""
    ids = cast(torch.LongTensor, torch.tensor([prompt], device=model.device))
    logits = model(input_ids=ids).logits[:, -1].double()
    return torch.softmax(processors(settings)(ids, logits), dim=-1)[0]


def token_text(tokenizer: PreTrainedTokenizerBase, token: int, until: Sequence[str] = ()) -> str:
    """What an engine returns for a one-token sample: its text, cut at a stop string."""
    text = str(tokenizer.decode([token], skip_special_tokens=True))
    cuts = [i for i in (text.find(s) for s in until) if i >= 0]
    return text[: min(cuts)] if cuts else text


def first_token_fit(
    probs: torch.Tensor,
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    until: Sequence[str] = (),
) -> FirstTokenFit:
    """Chi-square fit of one-token samples' texts to ``probs`` (``next_token_probs``)."""
    share: dict[str, float] = defaultdict(float)
    for token in torch.nonzero(probs > 0).flatten().tolist():
        share[token_text(tokenizer, token, until)] += float(probs[token])
    n = len(texts)
    observed = Counter(texts)
    obs, exp = [], []
    size = max(MIN_EXPECTED, n / CELLS)
    cell_obs = cell_exp = 0.0
    for text in sorted(share, key=lambda t: (-share[t], t)):
        cell_obs, cell_exp = cell_obs + observed[text], cell_exp + share[text] * n
        if cell_exp >= size:
            obs.append(cell_obs)
            exp.append(cell_exp)
            cell_obs = cell_exp = 0.0
    if exp and cell_exp < MIN_EXPECTED:  # the last few join the cell before them
        obs[-1], exp[-1] = obs[-1] + cell_obs, exp[-1] + cell_exp
    else:
        obs.append(cell_obs)
        exp.append(cell_exp)
    outside = sum(count for text, count in observed.items() if text not in share)
    obs[-1] += outside  # beside the least likely texts, where a boundary token would fall
    scale = n / sum(exp)  # float rounding only: the shares sum to 1
    result = stats.chisquare(obs, [e * scale for e in exp])
    return FirstTokenFit(float(result.statistic), len(obs), float(result.pvalue), n, outside)


@torch.inference_mode()
def sequence_fit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[tuple[list[int], str]],
    settings: GenerationSettings,
) -> SequenceFit:
    """Every token of each sample (prompt tokens, text) scored together (module docstring)."""
    assert settings.repetition_penalty == 1.0, "the penalty depends on each sample's past"
    chain = processors(settings)
    total_d = total_var = 0.0
    tokens = impossible = 0
    nll = 0.0
    for prompt, text in samples:
        sampled = tokenizer(text, add_special_tokens=False).input_ids
        if not sampled:
            continue
        ids = cast(torch.LongTensor, torch.tensor([prompt + sampled], device=model.device))
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].double()
        target = torch.tensor(sampled, device=model.device)
        nll -= float(torch.log_softmax(logits, -1).gather(-1, target[:, None]).sum())
        # No penalty (asserted), so the processors read no past tokens: any ids of the shape.
        logq = torch.log_softmax(chain(cast(torch.LongTensor, target[:, None]), logits), dim=-1)
        q = logq.exp()
        plogq = torch.where(q > 0, q * logq, torch.zeros_like(q))
        entropy = -plogq.sum(-1)
        second = torch.where(q > 0, q * logq * logq, torch.zeros_like(q)).sum(-1)
        chosen = logq.gather(-1, target[:, None])[:, 0]
        possible = torch.isfinite(chosen)
        impossible += int((~possible).sum())
        total_d += float((chosen + entropy)[possible].sum())
        total_var += float((second - entropy**2)[possible].sum())
        tokens += len(sampled)
    z = total_d / math.sqrt(total_var) if total_var > 0 else 0.0
    return SequenceFit(z, tokens, impossible, nll / max(tokens, 1))
