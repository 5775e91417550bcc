"""``--preset paper``: the paper's sampling as task-config variants, refused where absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from lm_eval.tasks import TaskManager
from lm_eval.tasks.minerva_math.utils import list_fewshot_samples

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.task_configs import TASK_DIR
from lm_eval_monkeys.tasks.presets import preset_tasks

PAPER_SAMPLING = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "max_gen_toks": 1024}


def build(task: str) -> object:
    manager = TaskManager(
        include_path=str(TASK_DIR), include_defaults=False, metadata={"repeats": 2}
    )
    built = manager.load(task)["tasks"][task]
    built.set_fewshot_seed(seed=1234)
    built.build_all_requests(limit=3, rank=0, world_size=1)
    return built


def test_gsm8k_paper_samples_as_the_paper_with_two_train_examples(data_dir: Path) -> None:
    task = build("monkeys_gsm8k_paper")
    train = {json.loads(x)["question"] for x in (data_dir / "gsm8k/train.jsonl").open()}
    for instance, doc in zip(task.instances, task.eval_docs, strict=False):
        context, generation = instance.args
        blocks = context.split("\n\n")
        assert len(blocks) == 3 and blocks[-1] == f"Question: {doc['question']}\nAnswer:"
        assert all(b.removeprefix("Question: ").split("\nAnswer:")[0] in train for b in blocks[:2])
        assert generation == {"until": ["Q:", "Question:"], **PAPER_SAMPLING}


def test_math500_paper_uses_the_first_two_minerva_exemplars() -> None:
    task = build("monkeys_math500_paper")
    context, generation = task.instances[0].args
    first, second, third, *_ = list_fewshot_samples()
    assert context.startswith(f"Problem:\n{first['problem']}\n\nSolution:")
    assert second["problem"] in context and third["problem"] not in context
    assert generation == {"until": ["Problem:", "I hope it is correct."], **PAPER_SAMPLING}
    assert len(task.eval_docs) == 500


def test_codecontests_paper_adds_top_p() -> None:
    generation = build("monkeys_codecontests_paper").instances[0].args[1]
    assert generation == {"until": ["\nProblem:"], **PAPER_SAMPLING}


def test_preset_maps_task_names_and_refuses_what_it_lacks() -> None:
    assert preset_tasks(["monkeys_gsm8k", "monkeys_math500_paper"], "paper") == [
        "monkeys_gsm8k_paper",
        "monkeys_math500_paper",
    ]
    with pytest.raises(MonkeysError, match="no variant of monkeys_minif2f; it covers"):
        preset_tasks(["monkeys_gsm8k", "monkeys_minif2f"], "paper")
    with pytest.raises(MonkeysError, match="unknown preset 'fast'; choose one of paper"):
        preset_tasks(["monkeys_gsm8k"], "fast")


def test_cli_refuses_a_task_without_the_preset_before_loading_a_model(data_dir: Path) -> None:
    run = run_cli("--tasks", "monkeys_swebench_lite", "--preset", "paper", "--limit", "1")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "lm-eval-monkeys: error: --preset paper has no variant of monkeys_swebench_lite; it "
        "covers monkeys_codecontests, monkeys_gsm8k, monkeys_math, monkeys_math500 (name each "
        "task; groups are not expanded)"
    ]
