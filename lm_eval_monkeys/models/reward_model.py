"""Reward-model scores of a run's samples: each sample scored once, kept in the run store.

``lm-eval-monkeys reward RUN_DIR --reward_model PATH_OR_ID`` scores every stored sample
with a Hugging Face sequence-classification model and commits one reward per (reward
model, task, doc, sample) to ``RUN_DIR/samples.sqlite`` as it goes; a rerun scores only
what is missing. ``rescore`` then reports ``rm_best@k`` and ``rm_majority@k``.

What is scored: the store keeps each problem's document, not its few-shot prompt, so the
reward model sees the task's zero-shot prompt (the config's ``doc_to_text`` applied to
the document) as the user turn and the completion as the assistant turn, through the
tokenizer's chat template when it has one (else the two texts joined).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store import SampleStore, installed_record

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_LENGTH = 4096
# Samples tokenized, length-sorted and committed together: bounds memory at any n, and a
# crash loses at most one chunk of scores.
_CHUNK = 2048
_FIX = (
    "pass a local directory saved with save_pretrained or a hub id of a model with a "
    "sequence-classification head, e.g. RLHFlow/ArmoRM-Llama3-8B-v0.1 --trust_remote_code"
)


@dataclass
class RewardScorer:
    """A loaded reward model and its tokenizer; scores token sequences in batches."""

    name: str
    model: Any
    tokenizer: Any
    device: str
    max_length: int

    def encode(self, texts: list[str]) -> tuple[list[list[int]], int]:
        """Token ids of reward texts and how many were cut: a text longer than
        ``max_length`` tokens keeps its last ones (the end holds the final answer)."""
        # A chat template writes its own special tokens.
        specials = not has_chat_template(self.tokenizer)
        encoded = self.tokenizer(texts, add_special_tokens=specials)["input_ids"]
        cut = sum(len(ids) > self.max_length for ids in encoded)
        return [ids[-self.max_length :] for ids in encoded], cut

    def score(
        self, sequences: list[list[int]], batch_size: int, progress: tqdm | None = None
    ) -> list[float]:
        """Rewards of token sequences, scored longest first in batches of similar lengths
        (little padding), returned in the given order."""
        if self.tokenizer.pad_token_id is None:
            batch_size = 1  # nothing to pad with (no pad or eos token): one text per pass
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        rewards = [0.0] * len(sequences)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            scores = self.score_batch([sequences[i] for i in batch])
            for i, reward in zip(batch, scores, strict=True):
                rewards[i] = reward
            if progress is not None:
                progress.update(len(batch))
        return rewards

    def score_batch(self, sequences: list[list[int]]) -> list[float]:
        """One forward pass over the sequences, right-padded to the longest."""
        import torch

        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(sequences), max(map(len, sequences))), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        with torch.inference_mode():
            output = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        return _reward_values(output, self.name).float().cpu().tolist()


def _reward_values(output: Any, name: str) -> Any:
    """One reward per text: a ``score`` output (ArmoRM's gated preference score) if the
    model returns one, else the single logit; multi-logit heads are refused."""
    score = getattr(output, "score", None)
    if score is not None:
        return score.reshape(len(score), -1)[:, 0]
    logits = output.logits
    if logits.shape[-1] != 1:
        raise MonkeysError(
            f"reward model {name} gives {logits.shape[-1]} logits per text and no `score`; "
            "use a reward model with one output (num_labels=1) or a `score` output like ArmoRM"
        )
    return logits[:, 0]


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def reward_text(tokenizer: Any, prompt: str, completion: str) -> str:
    """The text a reward model scores: chat-formatted (user prompt, assistant completion)
    if the tokenizer has a chat template, else the prompt followed by the completion."""
    # Undecodable bytes are stored as lone surrogates, which tokenizers reject.
    prompt, completion = (
        t.encode("utf-8", "replace").decode("utf-8") for t in (prompt, completion)
    )
    if not has_chat_template(tokenizer):
        return prompt + completion
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def load_reward_model(
    name: str,
    device: str = "cpu",
    dtype: str = "auto",
    max_length: int = DEFAULT_MAX_LENGTH,
    trust_remote_code: bool = False,
) -> RewardScorer:
    """Load a sequence-classification reward model and its tokenizer, or say why not."""
    local = Path(name).expanduser()
    if name.startswith((".", "/", "~")) and not local.exists():
        raise MonkeysError(f"reward model path {name} does not exist; {_FIX}")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if device == "cuda" and not torch.cuda.is_available():
        raise MonkeysError("--device cuda, but torch sees no CUDA device; pass --device cpu")
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    source = str(local) if local.exists() else name
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
        )
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise MonkeysError(f"cannot load reward model {name} ({reason}); {_FIX}") from None
    tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The model finds each text's last token by the pad id: it must match the tokenizer's.
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval()
    return RewardScorer(name, model, tokenizer, device, max_length)


def task_prompt(store: SampleStore, task: str) -> Callable[[dict], str]:
    """The zero-shot prompt of a task's documents, as its run record names it (the
    config's ``doc_to_text`` template or function)."""
    spec = (store.records.get(task) or installed_record(task)).reward_prompt
    if "template" in spec:
        from lm_eval.utils import apply_template

        template = spec["template"]
        return lambda doc: doc[template] if template in doc else apply_template(template, doc)
    return load_function(spec["function"], spec.get("file", ""))


def load_function(qualified: str, file: str) -> Callable[[dict], str]:
    """A ``module:name`` function, imported by module name or else from its file."""
    module_name, _, name = qualified.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if not file or not Path(file).is_file():
            raise MonkeysError(
                f"the run's reward prompt {qualified} cannot be imported (file {file or '?'} "
                "is gone); score on the machine that made the run"
            ) from None
        spec = importlib.util.spec_from_file_location(module_name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    target: Any = module
    for part in name.split("."):
        target = getattr(target, part)
    return target


def score_run(
    run_dir: Path,
    reward_model: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "cpu",
    max_length: int = DEFAULT_MAX_LENGTH,
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> int:
    """Score every stored sample ``reward_model`` has not scored yet; returns how many.
    The model loads only if something is left to score."""
    if batch_size < 1 or max_length < 1:
        raise MonkeysError("--batch_size and --max_length must be at least 1")
    SampleStore(run_dir, writer=False).close()  # a clear error if RUN_DIR holds no store
    store = SampleStore(run_dir)
    try:
        todo = store.rewards.count_unscored(reward_model)
        if todo == 0:
            return 0
        scorer = load_reward_model(reward_model, device, dtype, max_length, trust_remote_code)
        cut = 0
        with tqdm(total=todo, desc=f"reward ({reward_model})", unit="sample") as progress:
            pending: list[tuple[str, int, int, str]] = []
            for task in store.tasks():
                prompt_of = task_prompt(store, task)
                for doc_id, doc in list(store.docs(task)):
                    prompt = prompt_of(doc)
                    pending += [
                        (task, doc_id, idx, reward_text(scorer.tokenizer, prompt, completion))
                        for idx, completion in store.rewards.unscored(reward_model, task, doc_id)
                    ]
                    if len(pending) >= _CHUNK:
                        cut += _score_and_commit(store, scorer, pending, batch_size, progress)
                        pending = []
            cut += _score_and_commit(store, scorer, pending, batch_size, progress)
        if cut:
            logger.warning(
                "%d samples longer than %d tokens were scored on their last %d tokens "
                "(raise --max_length to score them whole)",
                cut,
                max_length,
                max_length,
            )
        return todo
    finally:
        store.close()


def _score_and_commit(
    store: SampleStore,
    scorer: RewardScorer,
    pending: list[tuple[str, int, int, str]],
    batch_size: int,
    progress: tqdm,
) -> int:
    """Score a chunk of (task, doc_id, sample_idx, text), commit it; returns how many were cut."""
    if not pending:
        return 0
    sequences, cut = scorer.encode([text for *_, text in pending])
    rewards = scorer.score(sequences, batch_size, progress)
    rows = [
        (task, doc_id, idx, r) for (task, doc_id, idx, _), r in zip(pending, rewards, strict=True)
    ]
    store.rewards.add(scorer.name, rows)
    return cut
