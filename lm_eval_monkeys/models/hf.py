"""``monkeys-hf``: k samples per prompt with transformers, the batch kept full.

Stock lm-eval ``hf`` with ``repeats: k`` runs the whole prompt k times. Here each
problem's prompt runs through the model once and its keys and values are stored once
(``prefix_cache.py``); each sample decodes in a row of its own, attending to the shared
prompt and to its own tokens. A row that finishes (end of sequence, a stop string, the
token limit) takes the next sample of the same problem, or the first of the next
problem, so the batch stays full until the work runs out (continuous batching); at the
end the batch shrinks to the rows still live. On a CPU the linear layers run on oneDNN
with prepacked weights (``cpu_linear.py``), in the model's own dtype.

Each sample draws from its own counter-based random stream (``sampling.py``), seeded by
(seed, task, doc, sample index): its draws do not depend on the batch size, on its
neighbours or on when it joined. Batched float arithmetic can still differ in the last
bits between batch sizes and, rarely, flip a sampled token. Stop strings are checked on
the last few tokens' text only, so a step costs the same at token 10 and token 1,000.

Model loading is lm-eval's ``HFLM``, so every ``hf`` model argument works (``gguf_file``,
``dtype``, ``revision``...). The default stays the model's own precision: on this
project's CPU ``dtype=bfloat16`` measured 1.2x faster on the issue's workload but not
identical (mean KL 0.001 nats from fp32, 98.4% top-1 agreement; docs/benchmarks.md), so
it is the user's opt-in, not ours.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from transformers import AttentionInterface

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.models.cpu_linear import pack_linears
from lm_eval_monkeys.models.generation import GenerationSettings, generation_settings
from lm_eval_monkeys.models.ksample import KSampleLM, SampleRequest, sample_seed
from lm_eval_monkeys.models.prefix_cache import (
    SHARED_PREFIX_ATTENTION,
    Prefix,
    PrefixCapture,
    SharedPrefixCache,
    cache_argument,
    causal_mask,
    shared_prefix_attention,
)
from lm_eval_monkeys.models.sampling import RowSettings, next_tokens, stream_uniforms
from lm_eval_monkeys.store import Sample

_DEFAULT_ROWS = 64
# A stop string of n characters spans at most 4n tokens (byte-level pieces of UTF-8).
_TOKENS_PER_CHAR = 4


@dataclass
class _Problem:
    """One request's prompt tokens and settings, and its samples not yet started."""

    request: SampleRequest
    prompt: list[int]
    settings: GenerationSettings
    unstarted: int


@dataclass
class _Row:
    """The sample a cache row is generating."""

    problem: _Problem
    index: int
    seed: int
    tokens: list[int] = field(default_factory=list)


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
        self.tokenizer = self.hf.tokenizer
        self._check_full_attention()
        # Decoding needs the shared-prefix attention; a prompt's pass runs transformers' SDPA.
        AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)
        self.model.set_attn_implementation(SHARED_PREFIX_ATTENTION)
        self.packed_linears = pack_linears(self.model)
        self._cache_arg = cache_argument(self.model)
        # A prompt's forward pass needs the last position's logits only (not 1,000 x vocab).
        accepts = inspect.signature(self.model.forward).parameters
        self._last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in accepts else {}

    def _check_full_attention(self) -> None:
        """The slot cache's mask is plain causal: refuse models that attend in windows."""
        layer_types = getattr(self.model.config, "layer_types", None) or ["full_attention"]
        if set(layer_types) != {"full_attention"}:
            raise MonkeysError(
                f"monkeys-hf decodes full-attention models only; this one has "
                f"{', '.join(sorted(set(layer_types)))} layers: use monkeys-vllm"
            )

    def sample(self, requests: list[SampleRequest]) -> Iterator[tuple[SampleRequest, Sample]]:
        problems = [self._problem(r) for r in requests]
        if problems:
            yield from self._decode(problems)

    def _problem(self, request: SampleRequest) -> _Problem:
        settings = generation_settings(request.gen_kwargs, self.hf.max_gen_toks)
        ids = self.hf.tok_encode(request.context)
        prompt = ids[-(self.hf.max_length - settings.max_tokens) :]  # the end, as lm-eval does
        return _Problem(request, prompt, settings, len(request.indices))

    @torch.inference_mode()
    def _decode(self, problems: list[_Problem]) -> Iterator[tuple[SampleRequest, Sample]]:
        """Continuous batching over every sample of every problem, in order."""
        config = self.model.config.get_text_config()
        device = self.model.device
        cache = SharedPrefixCache(
            layers=config.num_hidden_layers,
            rows=self.rows,
            kv_heads=getattr(config, "num_key_value_heads", config.num_attention_heads),
            head_dim=getattr(config, "head_dim", None)
            or config.hidden_size // config.num_attention_heads,
            prompt_columns=max(len(p.prompt) for p in problems),
            sample_columns=max(p.settings.max_tokens for p in problems),
            dtype=self.model.dtype,
            device=device,
        )
        settings = RowSettings.empty(self.rows, device)
        penalised = any(p.settings.repetition_penalty != 1.0 for p in problems)
        vocab = self.model.get_output_embeddings().out_features
        seen = torch.zeros(self.rows, vocab, dtype=torch.bool, device=device)
        logits = torch.zeros(self.rows, vocab, device=device)
        rows: list[_Row] = []  # row i of the cache generates rows[i]
        queue, current = deque(problems), None
        eos = self.tokenizer.eos_token_id
        while True:
            while len(rows) < self.rows:  # fill free rows: the next sample, or problem
                while queue and queue[0].unstarted == 0:
                    queue.popleft()
                if not queue:
                    break
                problem = queue[0]
                if current is None or current[0] is not problem:
                    if not cache.has_room():
                        break  # every prompt slot is in use: rows must finish first
                    prefix = self._prefill(problem.prompt)
                    current = (problem, cache.add_prefix(prefix), prefix.logits)
                r = cache.add_row(current[1])
                rows.append(self._start(problem))
                logits[r] = current[2]
                settings.assign(r, problem.settings)
                if penalised:
                    seen[r] = False
                    seen[r, problem.prompt] = True
            if not rows:
                return
            live = len(rows)
            uniforms = stream_uniforms(
                np.array([row.seed for row in rows], dtype=np.uint64),
                np.array([len(row.tokens) for row in rows], dtype=np.uint64),
            ).to(device)
            chosen = next_tokens(
                logits[:live], settings.first(live), uniforms, seen[:live] if penalised else None
            )
            if penalised:
                seen[torch.arange(live), chosen] = True
            finished = []
            for r, token in enumerate(chosen.tolist()):
                row = rows[r]
                row.tokens.append(token)
                text = self._finished(row, eos)
                if text is not None:
                    count = len(row.tokens) - (token == eos)
                    prompt = len(row.problem.prompt)
                    yield row.problem.request, Sample(row.index, text, prompt, count)
                    finished.append(r)
            for r in reversed(finished):  # the last live row moves into each finished one
                moved = cache.remove_row(r)
                last = rows.pop()
                if moved is not None:
                    rows[r] = last
                    chosen[r] = chosen[moved]
                    settings.assign(r, last.problem.settings)
                    if penalised:
                        seen[r] = seen[moved]
            if rows:
                logits[: len(rows)] = self._step(cache, rows, chosen[: len(rows)])

    def _start(self, problem: _Problem) -> _Row:
        request = problem.request
        index = request.indices[len(request.indices) - problem.unstarted]
        problem.unstarted -= 1
        return _Row(problem, index, sample_seed(self.seed, request.task, request.doc_id, index))

    def _prefill(self, prompt: list[int]) -> Prefix:
        """Run one prompt through the model, keeping its keys/values and last logits."""
        capture = PrefixCapture(self.model.config.get_text_config().num_hidden_layers)
        device, length = self.model.device, len(prompt)
        out = self.model(
            input_ids=torch.tensor([prompt], device=device),
            position_ids=torch.arange(length, device=device)[None],
            attention_mask=causal_mask(length, self.model.dtype, device),
            use_cache=True,
            causal_prompt=True,
            **{self._cache_arg: capture},
            **self._last_logits_only,
        )
        return Prefix(
            keys=[k[0] for k in capture.keys if k is not None],
            values=[v[0] for v in capture.values if v is not None],
            logits=out.logits[0, -1].float(),
        )

    def _step(
        self, cache: SharedPrefixCache, rows: list[_Row], chosen: torch.Tensor
    ) -> torch.Tensor:
        """One decode step of the live rows (the first ``len(rows)`` of the cache); logits."""
        device = self.model.device
        positions = [len(row.problem.prompt) + len(row.tokens) - 1 for row in rows]
        out = self.model(
            input_ids=chosen[:, None],
            position_ids=torch.tensor(positions, device=device)[:, None],
            attention_mask=cache.prepare_step(),
            use_cache=True,
            shared_prefix=cache,
            **{self._cache_arg: cache},
        )
        cache.advance()
        return out.logits[:, -1].float()

    def _finished(self, row: _Row, eos: int | None) -> str | None:
        """The sample's text if it just ended (end of sequence, stop string, token limit)."""
        settings = row.problem.settings
        stops = settings.until
        ended = row.tokens[-1] == eos or len(row.tokens) == settings.max_tokens
        if stops and not ended:
            window = _TOKENS_PER_CHAR * max(len(s) for s in stops) + 2
            tail = self.tokenizer.decode(row.tokens[-window:], skip_special_tokens=True)
            ended = any(s in tail for s in stops)
        if not ended:
            return None
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=None)
        if cut is None and row.tokens[-1] != eos and len(row.tokens) < settings.max_tokens:
            return None  # the tail's decoding showed a stop the full text does not have
        return text if cut is None else text[:cut]
