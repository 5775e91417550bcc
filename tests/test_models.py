"""k-sample models: request grouping, seeds, monkeys-hf on the embedded model, settings.

monkeys-vllm runs on a real vLLM engine in tests/test_vllm_engine.py (its own environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_cli
from lm_eval.api.instance import Instance

from lm_eval_monkeys.models.synthetic import SyntheticLM

GSM_DOC = {"question": "?", "answer": "so\n#### 12"}


def cloned_requests(
    docs: int,
    k: int,
    until: list[str] | None = None,
    prompts: list[str] | None = None,
    **settings: Any,
) -> list[Instance]:
    """What lm-eval 0.4.13 hands a model for ``repeats: k``: k references per request."""
    requests = []
    for doc_id in range(docs):
        gen_kwargs = {
            "until": until or ["\n\n"],
            "temperature": 0.6,
            "do_sample": True,
            "max_gen_toks": 32,
            **settings,
        }
        instance = Instance(
            request_type="generate_until",
            doc={**GSM_DOC, "question": f"q{doc_id}"},
            arguments=(prompts[doc_id] if prompts else f"Question: q{doc_id}\nAnswer:", gen_kwargs),
            idx=0,
            metadata=("monkeys_gsm8k", doc_id, k),
        )
        requests.extend([instance] * k)
    return requests


def test_synthetic_samples_depend_only_on_seed_doc_and_index() -> None:
    model = SyntheticLM(accuracy=0.5, seed=1)
    eight = model.generate_until(cloned_requests(docs=2, k=8))
    four = model.generate_until(cloned_requests(docs=2, k=4))
    assert four == eight[:4] + eight[8:12]
    other_seed = SyntheticLM(accuracy=0.5, seed=2).generate_until(cloned_requests(docs=2, k=8))
    assert other_seed != eight


def test_loglikelihood_is_a_clear_error() -> None:
    from lm_eval_monkeys.errors import MonkeysError

    with pytest.raises(MonkeysError, match="only generate"):
        SyntheticLM().loglikelihood([])


def test_inverse_cdf_draws_what_one_float64_cumulative_sum_does() -> None:
    """The two-level draw equals the plain one, token for token, never a zero-mass token;
    a vocabulary not a multiple of the block is padded."""
    from lm_eval_monkeys.models.sampling import inverse_cdf

    g = torch.Generator().manual_seed(0)
    for rows, vocab in ((4000, 3000), (4000, 257), (64, 49152)):
        probs = torch.softmax(3 * torch.randn(rows, vocab, generator=g), dim=-1)
        probs[:, 1::3] = 0.0  # ruled out by a filter
        probs[:, -min(300, vocab // 4) :] = 0.0  # at 3,000 and more: a whole block with none
        uniforms = torch.rand(rows, generator=g, dtype=torch.float64)
        uniforms[:2] = torch.tensor([0.0, 1.0 - 2.0**-53])  # the first and last draws
        cdf = probs.double().cumsum(dim=-1)
        plain = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True)[:, 0]
        # u * total can round up to the total: then the last token with mass.
        last = torch.where(probs > 0, torch.arange(vocab), 0).amax(dim=-1)
        plain = torch.minimum(plain, last)
        drawn = inverse_cdf(probs, uniforms)
        assert torch.equal(drawn, plain)
        assert bool((probs[torch.arange(rows), drawn] > 0).all())


# Prompts of different lengths, so rows of one batch hold different problems' prompts in
# different prefix slots, and finished rows are refilled or filled by moving the last row.
PROMPTS = [
    "Question: What is 12 times 7?\nAnswer:",
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
]


@pytest.fixture(scope="module")
def smol(embedded_model: str) -> Any:
    """monkeys-hf on the embedded SmolLM2-135M, 3 rows (tests change ``rows`` and restore it).

    In fp32, where batched and unbatched arithmetic agree to float rounding, so the decoder
    can be held to ``generate``'s tokens; the bfloat16 default is held to the model's
    distribution instead (tests/test_fidelity.py).
    """
    from lm_eval_monkeys.models.hf import MonkeysHF

    args: dict[str, Any] = dict(item.split("=", 1) for item in embedded_model.split(","))
    return MonkeysHF(seed=0, batch_size=3, device="cpu", dtype="float32", **args)


@pytest.mark.slow
def test_monkeys_hf_runs_its_linear_layers_packed_on_cpu(smol: Any) -> None:
    """Every linear layer of SmolLM2 (7 per decoder layer, and the output head) is packed."""
    from lm_eval_monkeys.models.cpu_linear import PackedLinear, SiblingPart

    layers = smol.model.config.num_hidden_layers
    assert smol.model.dtype == torch.float32  # dtype=float32 keeps fp32 on any CPU
    assert smol.packed_linears == 7 * layers + 1
    assert isinstance(smol.model.get_output_embeddings(), PackedLinear)
    attention = smol.model.model.layers[0].self_attn
    assert isinstance(attention.k_proj, SiblingPart)  # one matmul with q_proj and v_proj
    assert attention.k_proj.siblings is attention.q_proj.siblings


@pytest.mark.slow
def test_monkeys_hf_samples_are_reproducible_and_stop_at_until(smol: Any) -> None:
    requests = cloned_requests(docs=1, k=3, until=["\n"])
    first = smol.generate_until(requests)
    assert len(first) == 3 and all(isinstance(t, str) for t in first)
    assert all("\n" not in t for t in first)
    assert smol.generate_until(requests) == first  # same seeds, same samples
    assert len(set(first)) > 1  # temperature 0.6: the samples differ


@pytest.mark.slow
@pytest.mark.parametrize(("penalty", "rows"), [(1.0, 3), (1.3, 3), (1.0, 2), (1.0, 7)])
def test_greedy_rows_match_transformers_generate(smol: Any, penalty: float, rows: int) -> None:
    """Continuous batching (3 problems x 3 samples) decodes what generate() does.

    On 2 or 7 rows one batch mixes problems; on 7 all three prompts share it at once.
    """
    requests = cloned_requests(
        3, 3, prompts=PROMPTS, do_sample=False, max_gen_toks=24, repetition_penalty=penalty
    )
    smol.rows = rows
    try:
        outputs = smol.generate_until(requests, disable_tqdm=True)
    finally:
        smol.rows = 3
    for doc_id, prompt in enumerate(PROMPTS):
        ids = smol.tokenizer(prompt, return_tensors="pt").input_ids
        reference = smol.model.generate(
            ids, max_new_tokens=24, do_sample=False, repetition_penalty=penalty
        )
        text = smol.tokenizer.decode(reference[0, ids.shape[1] :], skip_special_tokens=True)
        assert outputs[3 * doc_id : 3 * doc_id + 3] == [text.split("\n\n")[0]] * 3


@pytest.mark.slow
def test_prompts_wait_for_a_free_slot_when_their_memory_is_spent(
    smol: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One prompt slot only: 7 rows, but each problem waits until the last one's rows end."""
    from lm_eval_monkeys.models import prefix_cache

    requests = cloned_requests(3, 3, prompts=PROMPTS, temperature=1.0, max_gen_toks=16)
    smol.rows = 7
    try:
        shared = smol.generate_until(requests, disable_tqdm=True)
        monkeypatch.setattr(prefix_cache, "PROMPT_BYTES", 1)
        one_at_a_time = smol.generate_until(requests, disable_tqdm=True)
    finally:
        smol.rows = 3
    assert one_at_a_time == shared


@pytest.mark.slow
def test_samples_do_not_depend_on_batch_size(smol: Any) -> None:
    requests = cloned_requests(2, 4, prompts=PROMPTS, temperature=1.0, max_gen_toks=16)
    by_rows = {}
    for rows in (2, 5):
        smol.rows = rows
        by_rows[rows] = smol.generate_until(requests, disable_tqdm=True)
    smol.rows = 3
    assert by_rows[2] == by_rows[5]
    assert len(set(by_rows[2][:4])) > 1


@pytest.mark.slow
@pytest.mark.parametrize("setting", [{"top_k": 1}, {"min_p": 1.0}, {"top_p": 1e-9}])
def test_filters_that_keep_one_token_sample_the_greedy_text(
    smol: Any, setting: dict[str, float]
) -> None:
    """Each filter, if it were ignored, would let temperature 1.5 wander off the argmax."""
    greedy = smol.generate_until(cloned_requests(2, 3, prompts=PROMPTS, do_sample=False))
    filtered = cloned_requests(2, 3, prompts=PROMPTS, temperature=1.5, **setting)
    assert smol.generate_until(filtered, disable_tqdm=True) == greedy
    unfiltered = cloned_requests(2, 3, prompts=PROMPTS, temperature=1.5)
    assert smol.generate_until(unfiltered, disable_tqdm=True) != greedy


@pytest.mark.slow
def test_unknown_generation_setting_is_refused(smol: Any) -> None:
    from lm_eval_monkeys.errors import MonkeysError

    with pytest.raises(MonkeysError, match="unknown generation setting typical_p"):
        smol.generate_until(cloned_requests(1, 2, typical_p=0.9))


@pytest.mark.parametrize("model", ["monkeys-hf", "monkeys-vllm"])
@pytest.mark.parametrize(
    ("setting", "message"),
    [("typical_p=0.9", "unknown generation setting typical_p"), ("top_k=2.5", "top_k=2.5")],
)
def test_bad_generation_setting_stops_the_run_before_the_model_loads(
    model: str, setting: str, message: str, tmp_path: Path
) -> None:
    """The model directory is empty: loading it first would fail with another message."""
    result = run_cli(
        "--model", model, "--model_args", f"pretrained={tmp_path}",
        "--tasks", "monkeys_gsm8k", "--limit", "1", "--gen_kwargs", setting,
    )  # fmt: skip
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("lm-eval-monkeys: error:") and message in last_line
    assert "Traceback" not in result.stderr
