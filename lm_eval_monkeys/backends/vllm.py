"""``monkeys-vllm``: one vLLM request per problem with ``SamplingParams(n=k)``.

Prefix caching is on, so the prompt's KV cache is shared by the n continuations and by
later requests with the same few-shot prefix. ``tensor_parallel_size`` and
``data_parallel_size`` (and any other ``vllm.LLM`` argument) pass straight through:
multi-GPU and multi-node runs are vLLM's own (Ray) parallelism.

Problems go to the engine in chunks so samples reach the store while the run goes on.
Seeds: one per (seed, task, doc, first missing index), so a rerun reproduces its samples;
vLLM draws the n samples of a request from one seeded stream, so a resumed request
(different n) gives different, equally valid samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lm_eval.api.registry import register_model

from lm_eval_monkeys.backends.base import KSampleLM, SampleRequest, sample_seed
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store import Sample

_PROBLEMS_PER_CALL = 64


@register_model("monkeys-vllm")
class MonkeysVLLM(KSampleLM):
    def __init__(
        self,
        pretrained: str | None = None,
        run_dir: str | None = None,
        seed: int = 0,
        engine: Any = None,
        sampling_params: Any = None,
        **engine_args: Any,
    ) -> None:
        """``engine``/``sampling_params`` replace ``vllm.LLM``/``vllm.SamplingParams`` (tests)."""
        super().__init__(run_dir=run_dir, seed=seed, pretrained=pretrained, **engine_args)
        for speed_only in ("batch_size", "max_batch_size", "device"):
            engine_args.pop(speed_only, None)
        if engine is None:
            try:
                from vllm import LLM, SamplingParams
            except ImportError:
                raise MonkeysError(
                    "monkeys-vllm needs vLLM on a GPU machine: pip install 'lm-eval-monkeys[vllm]'"
                ) from None
            engine = LLM(
                model=pretrained, seed=int(seed), enable_prefix_caching=True, **engine_args
            )
            sampling_params = SamplingParams
        self.engine, self.sampling_params = engine, sampling_params

    def sample(self, requests: list[SampleRequest]) -> Iterator[tuple[SampleRequest, Sample]]:
        for start in range(0, len(requests), _PROBLEMS_PER_CALL):
            chunk = requests[start : start + _PROBLEMS_PER_CALL]
            params = [self._params(r) for r in chunk]
            outputs = self.engine.generate([r.context for r in chunk], params, use_tqdm=False)
            for request, output in zip(chunk, outputs, strict=True):
                prompt_tokens = len(output.prompt_token_ids or [])
                for idx, completion in zip(request.indices, output.outputs, strict=True):
                    yield (
                        request,
                        Sample(idx, completion.text, prompt_tokens, len(completion.token_ids)),
                    )

    def _params(self, request: SampleRequest) -> Any:
        kwargs = dict(request.gen_kwargs)
        until = kwargs.pop("until", None)
        temperature = float(kwargs.pop("temperature", 0.0))
        if not kwargs.pop("do_sample", temperature > 0):
            temperature = 0.0
        return self.sampling_params(
            n=len(request.indices),
            temperature=temperature,
            top_p=float(kwargs.pop("top_p", 1.0)),
            max_tokens=int(kwargs.pop("max_gen_toks", 256)),
            stop=[until] if isinstance(until, str) else list(until or []),
            seed=sample_seed(self.seed, request.task, request.doc_id, request.indices[0]),
        )
