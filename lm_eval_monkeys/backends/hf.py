"""``monkeys-hf``: k samples per prompt with transformers, the prompt encoded once.

Stock lm-eval ``hf`` with ``repeats: k`` runs the whole prompt k times. Here each problem's
prompt is run through the model once; its KV cache is copied into a batch of
continuations that are sampled step by step, finished rows leaving the batch. Each row
draws from its own generator seeded by (seed, task, doc, sample index).

Model loading is lm-eval's ``HFLM``, so every ``hf`` model argument works (``gguf_file``,
``dtype``, ``revision``...). The default stays the model's own precision: on an AMX CPU
``dtype=bfloat16`` measured 1.66x faster but not identical (mean KL 0.001 nats from fp32,
98.4% top-1 agreement; docs/benchmarks.md), so it is the user's opt-in, not ours.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from lm_eval_monkeys.backends.base import KSampleLM, SampleRequest, sample_seed
from lm_eval_monkeys.store import Sample

_DEFAULT_ROWS = 16


@register_model("monkeys-hf")
class MonkeysHF(KSampleLM):
    def __init__(self, run_dir: str | None = None, seed: int = 0, **hf_args: Any) -> None:
        super().__init__(run_dir=run_dir, seed=seed, **hf_args)
        batch = hf_args.get("batch_size", 1)
        # The batch is the number of continuations decoded together; lm-eval's default of 1
        # (or "auto") would waste the shared prompt, so those mean 16.
        self.rows = int(batch) if str(batch).isdigit() and int(batch) > 1 else _DEFAULT_ROWS
        self.hf = HFLM(**hf_args)
        self.model = self.hf.model.eval()
        self.tokenizer = self.hf.tokenizer

    def sample(self, requests: list[SampleRequest]) -> Iterator[tuple[SampleRequest, Sample]]:
        for request in requests:
            max_new = int(request.gen_kwargs.get("max_gen_toks", self.hf.max_gen_toks))
            ids = self.hf.tok_encode(request.context)
            ids = ids[-(self.hf.max_length - max_new) :]  # keep the end, as lm-eval does
            with torch.inference_mode():
                prefix = self.model(input_ids=torch.tensor([ids]), use_cache=True)
                for start in range(0, len(request.indices), self.rows):
                    chunk = request.indices[start : start + self.rows]
                    for idx, tokens, text in self._continue(request, chunk, prefix, max_new):
                        yield request, Sample(idx, text, len(ids), tokens)

    def _continue(
        self, request: SampleRequest, indices: tuple[int, ...], prefix: Any, max_new: int
    ) -> Iterator[tuple[int, int, str]]:
        """Sample continuations of one encoded prompt; yield (index, tokens, text) as each ends."""
        kwargs = request.gen_kwargs
        temperature = float(kwargs.get("temperature", 0.0))
        greedy = temperature == 0.0 or not kwargs.get("do_sample", temperature > 0)
        top_p = float(kwargs.get("top_p", 1.0))
        until = [s for s in _as_list(kwargs.get("until")) if s]
        eos = self.tokenizer.eos_token_id

        cache = copy.deepcopy(prefix.past_key_values)
        cache.batch_repeat_interleave(len(indices))
        logits = prefix.logits[:, -1].float().expand(len(indices), -1)
        rows = list(indices)
        generators = [
            torch.Generator().manual_seed(sample_seed(self.seed, request.task, request.doc_id, i))
            for i in rows
        ]
        generated: list[list[int]] = [[] for _ in rows]
        for step in range(max_new):
            next_tokens = _pick(logits, generators, greedy, temperature, top_p)
            keep = []
            for r, token in enumerate(next_tokens.tolist()):
                generated[r].append(token)
                text = self.tokenizer.decode(generated[r], skip_special_tokens=True)
                stop = _stop_at(text, until)
                if token == eos or stop is not None or step == max_new - 1:
                    n_tokens = len(generated[r]) - (token == eos)
                    yield rows[r], n_tokens, text if stop is None else text[:stop]
                else:
                    keep.append(r)
            if not keep:
                return
            if len(keep) < len(rows):  # finished rows leave the batch
                cache.batch_select_indices(torch.tensor(keep))
                next_tokens = next_tokens[keep]
                rows = [rows[r] for r in keep]
                generators = [generators[r] for r in keep]
                generated = [generated[r] for r in keep]
            out = self.model(input_ids=next_tokens[:, None], past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1].float()


def _pick(
    logits: torch.Tensor,
    generators: list[torch.Generator],
    greedy: bool,
    temperature: float,
    top_p: float,
) -> torch.Tensor:
    """One next token per row; each row draws from its own generator."""
    if greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
    return torch.stack(
        [
            torch.multinomial(row, 1, generator=g)[0]
            for row, g in zip(probs, generators, strict=True)
        ]
    )


def _stop_at(text: str, until: list[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in until) if i >= 0]
    return min(hits) if hits else None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
