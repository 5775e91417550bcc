"""k-sample backends: request grouping, seeds, and the vLLM API boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance

from lm_eval_monkeys.backends.base import sample_seed
from lm_eval_monkeys.backends.synthetic import SyntheticLM
from lm_eval_monkeys.backends.vllm import MonkeysVLLM
from lm_eval_monkeys.store import SampleStore, StoredSamples

GSM_DOC = {"question": "?", "answer": "so\n#### 12"}


def cloned_requests(docs: int, k: int, until: list[str] | None = None) -> list[Instance]:
    """What lm-eval 0.4.13 hands a model for ``repeats: k``: k references per request."""
    requests = []
    for doc_id in range(docs):
        instance = Instance(
            request_type="generate_until",
            doc={**GSM_DOC, "question": f"q{doc_id}"},
            arguments=(
                f"Question: q{doc_id}\nAnswer:",
                {
                    "until": until or ["\n\n"],
                    "temperature": 0.6,
                    "do_sample": True,
                    "max_gen_toks": 32,
                },
            ),
            idx=0,
            metadata=("monkeys_gsm8k", doc_id, k),
        )
        requests.extend([instance] * k)
    return requests


@dataclass
class FakeCompletion:
    text: str
    token_ids: list[int]


@dataclass
class FakeOutput:
    prompt_token_ids: list[int]
    outputs: list[FakeCompletion]


@dataclass
class FakeParams:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str]
    seed: int


@dataclass
class FakeEngine:
    """Stands in for ``vllm.LLM`` at its API boundary: ``generate(prompts, params)``."""

    calls: list[tuple[list[str], list[FakeParams]]] = field(default_factory=list)

    def generate(self, prompts: list[str], params: list[FakeParams], use_tqdm: bool = True) -> list:
        self.calls.append((prompts, params))
        return [
            FakeOutput(
                [1, 2, 3], [FakeCompletion(f"{p}|{i}|{q.seed}", [7] * (i + 1)) for i in range(q.n)]
            )
            for p, q in zip(prompts, params, strict=True)
        ]


def test_vllm_sends_one_request_per_problem_with_n_equal_k() -> None:
    engine = FakeEngine()
    model = MonkeysVLLM(engine=engine, sampling_params=FakeParams, seed=3)
    outputs = model.generate_until(cloned_requests(docs=3, k=4, until=["Question:"]))
    ((prompts, params),) = engine.calls
    assert prompts == [f"Question: q{d}\nAnswer:" for d in range(3)]
    assert [p.n for p in params] == [4, 4, 4]
    assert params[0].stop == ["Question:"] and params[0].temperature == 0.6
    assert params[0].max_tokens == 32
    assert params[1].seed == sample_seed(3, "monkeys_gsm8k", 1, 0)
    assert len(outputs) == 12
    assert outputs[4:8] == [f"Question: q1\nAnswer:|{i}|{params[1].seed}" for i in range(4)]


def test_vllm_resume_asks_only_for_missing_samples(tmp_path: Path) -> None:
    first = MonkeysVLLM(engine=FakeEngine(), sampling_params=FakeParams, run_dir=str(tmp_path))
    first.generate_until(cloned_requests(docs=2, k=2))
    engine = FakeEngine()
    again = MonkeysVLLM(engine=engine, sampling_params=FakeParams, run_dir=str(tmp_path))
    outputs = again.generate_until(cloned_requests(docs=2, k=5))
    ((_, params),) = engine.calls
    assert [p.n for p in params] == [3, 3]
    assert all(isinstance(o, StoredSamples) for o in outputs)
    store = SampleStore(tmp_path, writer=False)
    assert [s.sample_idx for s in store.samples("monkeys_gsm8k", 1)] == [0, 1, 2, 3, 4]
    assert store.samples("monkeys_gsm8k", 1)[4].completion_tokens == 3
    assert outputs[5].load() == store.completions("monkeys_gsm8k", 1)
    store.close()


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


@pytest.mark.slow
def test_monkeys_hf_samples_are_reproducible_and_stop_at_until(embedded_model: str) -> None:
    from lm_eval_monkeys.backends.hf import MonkeysHF

    args: dict[str, Any] = dict(item.split("=", 1) for item in embedded_model.split(","))
    model = MonkeysHF(seed=0, batch_size=3, device="cpu", **args)
    requests = cloned_requests(docs=1, k=3, until=["\n"])
    first = model.generate_until(requests)
    assert len(first) == 3 and all(isinstance(t, str) for t in first)
    assert all("\n" not in t for t in first)
    assert model.generate_until(requests) == first  # same seeds, same samples
    assert len(set(first)) > 1  # temperature 0.6: the samples differ
