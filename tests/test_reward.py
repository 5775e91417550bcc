"""Reward scoring end to end: a tiny randomly initialised Llama reward model built here
(real files, real transformers loading, no download) scores a real ``monkeys-synthetic``
run's store; ``rescore`` then reports rm_best@k and rm_majority@k."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.models.reward_model import load_reward_model, reward_text, score_run
from lm_eval_monkeys.scoring.rescore import rescore_run

N_PROBLEMS, N_SAMPLES = 12, 8
KS = [1, 2, 4, 8]


def build_reward_model(directory: Path, num_labels: int = 1) -> Path:
    """A byte-level BPE tokenizer trained on two strings and a random 2-layer Llama
    with a sequence-classification head, saved like any hub model."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(["Question: how many eggs?\nAnswer: 16 - 3 = 13. #### 13"], trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="</s>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_reward_model(tmp_path_factory.mktemp("reward_model"))


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A monkeys-synthetic GSM8K run: 12 problems x 8 samples, no rewards."""
    run_dir = tmp_path_factory.mktemp("run")
    result = run_cli(
        *("--model", "monkeys-synthetic", "--model_args", "accuracy=0.3,seed=0"),
        *("--tasks", "monkeys_gsm8k", "--limit", str(N_PROBLEMS)),
        *("--repeats", str(N_SAMPLES), "--output_path", str(run_dir)),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def copy_run(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to, ignore=shutil.ignore_patterns("samples.lock"))
    return to


@pytest.fixture(scope="module")
def scored(
    fresh_run: Path, reward_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """A copy of the run scored by the reward command, and the command's stdout."""
    run_dir = copy_run(fresh_run, tmp_path_factory.mktemp("scored") / "run")
    result = run_cli(
        "reward", str(run_dir), "--reward_model", str(reward_model), "--batch_size", "4"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sample/s" in result.stderr  # the progress bar shows its rate
    return run_dir, result.stdout


def rewards(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "samples.sqlite") as db:
        return db.execute("SELECT * FROM rewards ORDER BY task, doc_id, sample_idx").fetchall()


def test_one_reward_per_sample(scored: tuple[Path, str], reward_model: Path) -> None:
    run_dir, stdout = scored
    assert f"{N_PROBLEMS * N_SAMPLES} samples scored" in stdout
    stored = rewards(run_dir)
    assert len(stored) == N_PROBLEMS * N_SAMPLES
    assert {r[0] for r in stored} == {str(reward_model)}
    assert len({r[1:4] for r in stored}) == len(stored)
    assert len({r[4] for r in stored}) > N_PROBLEMS, "a random model still tells texts apart"


def test_rerun_scores_nothing(scored: tuple[Path, str], reward_model: Path) -> None:
    run_dir, _ = scored
    before = rewards(run_dir)
    again = run_cli("reward", str(run_dir), "--reward_model", str(reward_model))
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.startswith("0 samples scored")
    assert rewards(run_dir) == before


def test_rescore_reports_rm_metrics(scored: tuple[Path, str], reward_model: Path) -> None:
    run_dir, _ = scored
    result = run_cli("rescore", str(run_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rm_best@k" in result.stdout and "rm_majority@k" in result.stdout
    found = json.loads((run_dir / "rescore.json").read_text())["monkeys_gsm8k"]
    assert found["reward_model"] == str(reward_model)
    assert found["rm_best@1"] == pytest.approx(found["coverage@1"], abs=1e-12)
    assert found["rm_majority@1"] == pytest.approx(found["coverage@1"], abs=1e-12)
    assert found["majority@1"] == pytest.approx(found["coverage@1"], abs=1e-12)
    for k in KS:
        assert found[f"rm_best@{k}"] <= found[f"coverage@{k}"] + 1e-12
        assert found[f"rm_majority@{k}"] <= found[f"coverage@{k}"] + 1e-12

    # rm_best@n by hand: per problem, the correct share among its top-reward samples.
    export = run_cli("export", str(run_dir))
    correct = {
        (r["doc_id"], r["sample_idx"]): r["correct"]
        for r in map(json.loads, export.stdout.split("\n")[:-1])
    }
    by_doc: dict[int, list[tuple[float, bool]]] = {}
    for _, _, doc_id, idx, reward in rewards(run_dir):
        by_doc.setdefault(doc_id, []).append((reward, correct[(doc_id, idx)]))
    best = [
        sum(ok for r, ok in rows if r == max(rows)[0]) / sum(r == max(rows)[0] for r, _ in rows)
        for rows in by_doc.values()
    ]
    assert found[f"rm_best@{N_SAMPLES}"] == pytest.approx(sum(best) / len(best), abs=1e-12)


def test_choosing_among_stored_reward_models(
    scored: tuple[Path, str], reward_model: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(scored[0], tmp_path / "run")
    other = shutil.copytree(reward_model, tmp_path / "other_rm")
    assert score_run(run_dir, str(other), batch_size=16) == N_PROBLEMS * N_SAMPLES
    with pytest.raises(
        MonkeysError, match=r"from 2 reward models .*; choose one with --reward_model"
    ):
        rescore_run(run_dir, ks=KS)
    chosen = rescore_run(run_dir, ks=KS, reward_model=str(other))["monkeys_gsm8k"].flat()
    assert chosen["reward_model"] == str(other)
    # Same weights under another name, other batches: the same scores.
    stored = rewards(run_dir)
    named = {str(reward_model): [], str(other): []}
    for row in stored:
        named[row[0]].append(row[4])
    assert named[str(other)] == pytest.approx(named[str(reward_model)], abs=1e-5)
    with pytest.raises(
        MonkeysError, match=r"no rewards from elsewhere .*run `lm-eval-monkeys reward"
    ):
        rescore_run(run_dir, ks=KS, reward_model="elsewhere")


def test_bad_reward_model_is_one_clear_line_and_rescore_still_works(
    fresh_run: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(fresh_run, tmp_path / "run")
    missing = tmp_path / "no_such_model"
    result = run_cli("reward", str(run_dir), "--reward_model", str(missing))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert str(missing) in line and "sequence-classification head" in line
    rescored = run_cli("rescore", str(run_dir), "--ks", "1,8")
    assert rescored.returncode == 0, rescored.stderr[-2000:]
    found = json.loads((run_dir / "rescore.json").read_text())["monkeys_gsm8k"]
    assert {k for k in found if "@" in k} == {
        "coverage@1",
        "coverage@8",
        "majority@1",
        "majority@8",
    }


def test_not_a_sequence_classifier_and_multi_logit_heads_are_refused(
    reward_model: Path, tmp_path: Path
) -> None:
    from transformers import CLIPVisionConfig

    vision = shutil.copytree(reward_model, tmp_path / "vision")
    CLIPVisionConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1).save_pretrained(
        vision
    )
    with pytest.raises(MonkeysError, match=f"cannot load reward model {vision} .*Unrecognized"):
        load_reward_model(str(vision))
    three = load_reward_model(str(build_reward_model(tmp_path / "three", num_labels=3)))
    ids, _ = three.encode(["a text"])
    with pytest.raises(MonkeysError, match="gives 3 logits per text and no `score`"):
        three.score(ids, batch_size=1)


def test_batching_and_padding_do_not_change_rewards(reward_model: Path) -> None:
    scorer = load_reward_model(str(reward_model), max_length=64)
    texts = [f"Question: {i} eggs?\nAnswer:" + " 13" * (i * 7) for i in range(10)]
    sequences, cut = scorer.encode(texts)
    whole = scorer.tokenizer(texts)["input_ids"]
    assert cut == sum(len(ids) > 64 for ids in whole) > 0
    assert all(s == ids[-64:] for s, ids in zip(sequences, whole, strict=True)), "keeps the end"
    one = scorer.score(sequences, batch_size=1)
    batched = scorer.score(sequences, batch_size=4)
    assert batched == pytest.approx(one, abs=1e-5)
    assert len(set(one)) == len(one)


def test_chat_template_formats_prompt_and_completion(reward_model: Path) -> None:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(reward_model)
    assert reward_text(tokenizer, "Q: 1+1?\n", "2") == "Q: 1+1?\n2"
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    )
    assert reward_text(tokenizer, "Q: 1+1?", "2") == "<user>Q: 1+1?<assistant>2"
    assert reward_text(tokenizer, "Q", "bad \udcff byte") == "<user>Q<assistant>bad ? byte"
