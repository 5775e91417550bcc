"""``monkeys-hf``: k samples per prompt with transformers, the batch kept full.

Stock lm-eval ``hf`` with ``repeats: k`` runs the whole prompt k times. Here each
problem's prompt runs through the model once, and its samples decode together with those
of the next problems by continuous batching over a shared-prefix cache
(``continuous_batching.py``). On a CPU the linear layers run on oneDNN with prepacked
weights (``cpu_linear.py``, sibling projections as one matmul), and each step on the
thread count measured fastest (``cpu_threads.py``). This module is the lm-eval side:
loading, prompts, sample seeds, stop strings and texts.

Each sample's seed is (seed, task, doc, sample index), so its draws do not depend on the
batch. Batched float arithmetic can still differ in the last bits between batch sizes
and flip a sampled token: rarely in fp32, more often in bfloat16. Stop strings are
checked on the last few tokens' text only, so a step costs the same at token 10 and
token 1,000.

Model loading is lm-eval's ``HFLM``, so every ``hf`` model argument works (``gguf_file``,
``dtype``, ``revision``...). Without ``dtype``, an fp32 model on a CPU that multiplies
bfloat16 in hardware (``cpu_linear.native_bfloat16``) decodes in bfloat16, as vLLM's CPU
build does: 1.7x the fp32 tok/s on such a CPU, sampling from the same distribution
within bfloat16's rounding (tests/test_fidelity.py; docs/engines.md). ``dtype=float32``
keeps fp32; elsewhere the model's own dtype stays.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from transformers import AttentionInterface

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.models.continuous_batching import ContinuousBatcher, Job, Sequence
from lm_eval_monkeys.models.cpu_linear import native_bfloat16, pack_linears
from lm_eval_monkeys.models.generation import generation_settings
from lm_eval_monkeys.models.ksample import KSampleLM, SampleRequest, sample_seed
from lm_eval_monkeys.models.prefix_cache import SHARED_PREFIX_ATTENTION, shared_prefix_attention
from lm_eval_monkeys.store import Sample

_DEFAULT_ROWS = 64
# A stop string of n characters spans at most 4n tokens (byte-level pieces of UTF-8).
_TOKENS_PER_CHAR = 4


@register_model("monkeys-hf")
class MonkeysHF(KSampleLM):
    def __init__(self, run_dir: str | None = None, seed: int = 0, **hf_args: Any) -> None:
        super().__init__(run_dir=run_dir, seed=seed, **hf_args)
        batch = hf_args.get("batch_size", 1)
        # The batch is the number of samples decoded together; lm-eval's default of 1
        # (or "auto") would waste the shared prompt, so those mean 16.
        self.rows = int(batch) if str(batch).isdigit() and int(batch) > 1 else _DEFAULT_ROWS
        self.hf = HFLM(**hf_args)
        self.model = self.hf.model.eval()
        if "dtype" not in hf_args and self._bfloat16_is_faster():
            self.model.to(torch.bfloat16)
        self.tokenizer = self.hf.tokenizer
        self._check_full_attention()
        # Decoding needs the shared-prefix attention; a prompt's pass runs transformers' SDPA.
        AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)
        self.model.set_attn_implementation(SHARED_PREFIX_ATTENTION)
        self.packed_linears = pack_linears(self.model)

    def _bfloat16_is_faster(self) -> bool:
        """An fp32 model on a CPU with hardware bfloat16 (the default's condition)."""
        model = self.model
        return model.device.type == "cpu" and model.dtype == torch.float32 and native_bfloat16()

    def _check_full_attention(self) -> None:
        """The slot cache's mask is plain causal: refuse models that attend in windows."""
        layer_types = getattr(self.model.config, "layer_types", None) or ["full_attention"]
        if set(layer_types) != {"full_attention"}:
            raise MonkeysError(
                f"monkeys-hf decodes full-attention models only; this one has "
                f"{', '.join(sorted(set(layer_types)))} layers: use monkeys-vllm"
            )

    def sample(self, requests: list[SampleRequest]) -> Iterator[tuple[SampleRequest, Sample]]:
        eos = self.tokenizer.eos_token_id
        batcher = ContinuousBatcher(self.model, self.rows, eos, stopped=self._stopped)
        jobs = [self._job(r) for r in requests]
        request_of = {id(job): request for job, request in zip(jobs, requests, strict=True)}
        for sequence in batcher.run(jobs):
            request, tokens = request_of[id(sequence.job)], sequence.tokens
            count = len(tokens) - (tokens[-1] == eos)
            text = self._text(tokens, sequence.job.settings.until)
            index = request.indices[sequence.number]
            yield request, Sample(index, text, len(sequence.job.prompt), count)

    def _job(self, request: SampleRequest) -> Job:
        """The request's prompt tokens, settings and one seed per sample index."""
        settings = generation_settings(request.gen_kwargs, self.hf.max_gen_toks)
        ids = self.hf.tok_encode(request.context)
        prompt = ids[-(self.hf.max_length - settings.max_tokens) :]  # the end, as lm-eval does
        seeds = [sample_seed(self.seed, request.task, request.doc_id, i) for i in request.indices]
        return Job(prompt, settings, seeds)

    def _stopped(self, sequence: Sequence) -> bool:
        """Whether the sequence's text now holds a stop string (its tail's text first)."""
        stops, tokens = sequence.job.settings.until, sequence.tokens
        window = _TOKENS_PER_CHAR * max(len(s) for s in stops) + 2
        tail = self.tokenizer.decode(tokens[-window:], skip_special_tokens=True)
        if not any(s in tail for s in stops):
            return False
        # The tail's decoding can show a stop the full text does not have.
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return any(s in text for s in stops)

    def _text(self, tokens: list[int], stops: tuple[str, ...]) -> str:
        """The sample's text, cut at its first stop string."""
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=None)
        return text if cut is None else text[:cut]
