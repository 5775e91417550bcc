"""Continuous batching over token ids: every sample of every prompt, the batch kept full.

Each prompt runs through the model once and its keys and values are stored once
(``prefix_cache.py``); each sample decodes in a row of its own, attending to the shared
prompt and to its own tokens. A row that finishes (end of sequence, a stop, the token
limit) takes the next sample of the same prompt, or the first of the next prompt, so the
batch stays full until the work runs out; at the end the batch shrinks to the rows still
live. Live rows stay at the front: a finished row is filled by moving the last one in.

A decode step has four phases: ``_fill`` (start samples in free rows), ``Batch.draw``
(one token per row), ``_collect`` (append it, hand over finished samples) and ``_retire``
(free their rows), then the model's step over the live rows. ``Batch`` holds what is
kept per row (the sequence, its logits, settings and seen tokens) so that moving a row
moves all of it at once.

Each sample draws from its own counter-based random stream (``sampling.py``), seeded by
the caller: its draws do not depend on the batch size, on its neighbours or on when it
joined. The decoder knows no tokenizer: the caller says when a sample's tokens hit a stop
string (``stopped``). On a CPU each step runs with the thread count that ``cpu_threads``
measures fastest, so a busy machine does not stall it.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedModel

from lm_eval_monkeys.models.cpu_threads import ThreadTuner, usable_cpus
from lm_eval_monkeys.models.generation import GenerationSettings
from lm_eval_monkeys.models.prefix_cache import (
    Prefix,
    PrefixCapture,
    SharedPrefixCache,
    cache_argument,
    causal_mask,
)
from lm_eval_monkeys.models.sampling import RowSettings, next_tokens, stream_uniforms


@dataclass
class Job:
    """One prompt's tokens and settings, and the seeds of its samples (one each, in order)."""

    prompt: list[int]
    settings: GenerationSettings
    seeds: list[int]
    started: int = 0

    @property
    def unstarted(self) -> int:
        return len(self.seeds) - self.started


@dataclass
class Sequence:
    """One sample being generated: sample ``number`` of ``job``, its tokens so far."""

    job: Job
    number: int
    tokens: list[int] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return self.job.seeds[self.number]

    @property
    def position(self) -> int:
        """The position of its last token in the model's input."""
        return len(self.job.prompt) + len(self.tokens) - 1


@dataclass
class Batch:
    """What each cache row carries, row i for ``sequences[i]``: its next-token logits, its
    settings and (with a repetition penalty) the tokens it has seen."""

    sequences: list[Sequence]
    logits: torch.Tensor  # [rows, vocab]
    settings: RowSettings
    seen: torch.Tensor | None  # [rows, vocab], only when some job penalises repeats

    @classmethod
    def empty(cls, rows: int, vocab: int, penalised: bool, device: torch.device) -> Batch:
        seen = torch.zeros(rows, vocab, dtype=torch.bool, device=device) if penalised else None
        logits = torch.zeros(rows, vocab, device=device)
        return cls([], logits, RowSettings.empty(rows, device), seen)

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, row: int, sequence: Sequence, logits: torch.Tensor) -> None:
        """``sequence`` starts in ``row`` (the next free one) from its prompt's logits."""
        assert row == len(self.sequences), "rows are filled in order"
        self.sequences.append(sequence)
        self.logits[row] = logits
        self.settings.assign(row, sequence.job.settings)
        if self.seen is not None:
            self.seen[row] = False
            self.seen[row, sequence.job.prompt] = True

    def draw(self) -> torch.Tensor:
        """The next token of every live row, from its own stream."""
        live = len(self.sequences)
        uniforms = stream_uniforms(
            np.array([s.seed for s in self.sequences], dtype=np.uint64),
            np.array([len(s.tokens) for s in self.sequences], dtype=np.uint64),
        ).to(self.logits.device)
        seen = None if self.seen is None else self.seen[:live]
        chosen = next_tokens(self.logits[:live], self.settings.first(live), uniforms, seen)
        if self.seen is not None:
            self.seen[torch.arange(live), chosen] = True
        return chosen

    def remove(self, row: int, moved: int | None, chosen: torch.Tensor) -> None:
        """End ``row``'s sequence; the cache moved row ``moved`` (the last) into it."""
        last = self.sequences.pop()
        if moved is None:
            return
        self.sequences[row] = last
        chosen[row] = chosen[moved]
        self.settings.assign(row, last.job.settings)
        if self.seen is not None:
            self.seen[row] = self.seen[moved]


class ContinuousBatcher:
    """Samples every job's sequences with ``model``, ``rows`` at a time (module docstring)."""

    def __init__(
        self,
        model: PreTrainedModel,
        rows: int,
        eos: int | None,
        stopped: Callable[[Sequence], bool] = lambda sequence: False,
    ) -> None:
        self.model, self.rows, self.eos, self.stopped = model, rows, eos, stopped
        self._cache_arg = cache_argument(model)
        # A prompt's forward pass needs the last position's logits only (not 1,000 x vocab).
        accepts = inspect.signature(model.forward).parameters
        self._last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in accepts else {}

    @torch.inference_mode()
    def run(self, jobs: list[Job]) -> Iterator[Sequence]:
        """Every sequence of every job, each yielded as soon as it ends."""
        if not jobs:
            return
        device = self.model.device
        cache = self._cache(jobs)
        vocab = self.model.get_output_embeddings().out_features
        penalised = any(j.settings.repetition_penalty != 1.0 for j in jobs)
        batch = Batch.empty(self.rows, vocab, penalised, device)
        queue: deque[Job] = deque(jobs)
        threads = ThreadTuner(usable_cpus()) if device.type == "cpu" else None
        prompt: tuple[Job, int, torch.Tensor] | None = None  # the job now starting rows
        with threads.sized() if threads else nullcontext():
            while True:
                prompt = self._fill(batch, cache, queue, prompt)
                if not batch:
                    return
                chosen = batch.draw()
                finished = yield from self._collect(batch, chosen)
                self._retire(batch, cache, finished, chosen)
                if batch:
                    with threads.step() if threads else nullcontext():
                        batch.logits[: len(batch)] = self._step(cache, batch, chosen)

    def _cache(self, jobs: list[Job]) -> SharedPrefixCache:
        config = self.model.config.get_text_config()
        return SharedPrefixCache(
            layers=config.num_hidden_layers,
            rows=self.rows,
            kv_heads=getattr(config, "num_key_value_heads", config.num_attention_heads),
            head_dim=getattr(config, "head_dim", None)
            or config.hidden_size // config.num_attention_heads,
            prompt_columns=max(len(j.prompt) for j in jobs),
            sample_columns=max(j.settings.max_tokens for j in jobs),
            dtype=self.model.dtype,
            device=self.model.device,
        )

    def _fill(
        self,
        batch: Batch,
        cache: SharedPrefixCache,
        queue: deque[Job],
        prompt: tuple[Job, int, torch.Tensor] | None,
    ) -> tuple[Job, int, torch.Tensor] | None:
        """Start samples in the free rows: the current job's next, else the next job's first.

        ``prompt`` is the job whose prompt is in the cache for new rows: (job, slot, logits).
        """
        while len(batch) < self.rows:
            while queue and queue[0].unstarted == 0:
                queue.popleft()
            if not queue:
                break
            job = queue[0]
            if prompt is None or prompt[0] is not job:
                if not cache.has_room():
                    break  # every prompt slot is in use: rows must finish first
                prefix = self._prefill(job.prompt)
                prompt = (job, cache.add_prefix(prefix), prefix.logits)
            row = cache.add_row(prompt[1])
            batch.add(row, Sequence(job, job.started), prompt[2])
            job.started += 1
        return prompt

    def _collect(self, batch: Batch, chosen: torch.Tensor) -> Generator[Sequence, None, list[int]]:
        """Append each row's token; yield the sequences that ended. Returns their rows."""
        finished = []
        for row, token in enumerate(chosen.tolist()):
            sequence = batch.sequences[row]
            sequence.tokens.append(token)
            if self._ended(sequence):
                yield sequence
                finished.append(row)
        return finished

    def _ended(self, sequence: Sequence) -> bool:
        tokens = sequence.tokens
        if tokens[-1] == self.eos or len(tokens) == sequence.job.settings.max_tokens:
            return True
        return bool(sequence.job.settings.until) and self.stopped(sequence)

    @staticmethod
    def _retire(
        batch: Batch, cache: SharedPrefixCache, finished: list[int], chosen: torch.Tensor
    ) -> None:
        """Free the finished rows, the last live row moving into each (from the back)."""
        for row in reversed(finished):
            batch.remove(row, cache.remove_row(row), chosen)

    def _prefill(self, prompt: list[int]) -> Prefix:
        """Run one prompt through the model, keeping its keys/values and last logits."""
        config = self.model.config.get_text_config()
        capture = PrefixCapture(config.num_hidden_layers)
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

    def _step(self, cache: SharedPrefixCache, batch: Batch, chosen: torch.Tensor) -> torch.Tensor:
        """One decode step of the live rows (the first ``len(batch)`` of the cache); logits."""
        device = self.model.device
        positions = [s.position for s in batch.sequences]
        out = self.model(
            input_ids=chosen[: len(batch), None],
            position_ids=torch.tensor(positions, device=device)[:, None],
            attention_mask=cache.prepare_step(),
            use_cache=True,
            shared_prefix=cache,
            **{self._cache_arg: cache},
        )
        cache.advance()
        return out.logits[:, -1].float()
