"""The monkeys_* task configs build the paper's prompts from local data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lm_eval.tasks import TaskManager
from lm_eval.tasks.minerva_math.utils import list_fewshot_samples

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.task_configs import TASK_DIR


def build(task: str, **metadata: object):
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata=metadata)
    built = manager.load(task)["tasks"][task]
    built.set_fewshot_seed(seed=1234)
    built.build_all_requests(limit=3, rank=0, world_size=1)
    return built


def test_gsm8k_prompt_is_five_random_train_examples_per_problem(data_dir: Path) -> None:
    task = build("monkeys_gsm8k", repeats=8)
    train = {json.loads(x)["question"] for x in (data_dir / "gsm8k/train.jsonl").open()}
    contexts = [inst.args[0] for inst in task.instances]
    assert all(inst.repeats == 8 for inst in task.instances)
    for context, doc in zip(contexts, task.eval_docs, strict=False):
        blocks = context.split("\n\n")
        assert len(blocks) == 6
        assert blocks[-1] == f"Question: {doc['question']}\nAnswer:"
        shots = [b.removeprefix("Question: ").split("\nAnswer:")[0] for b in blocks[:5]]
        assert all(shot in train for shot in shots), "few-shot examples come from train"
        assert all("####" in b for b in blocks[:5])
    assert len({c.split("\n\n")[0] for c in contexts}) > 1, "examples are redrawn per problem"
    gen = task.instances[0].args[1]
    assert gen["temperature"] == 0.6 and gen["do_sample"] is True
    assert "Question:" in gen["until"] and "\n\n" in gen["until"]
    assert task.ks == [1, 2, 4, 8]


def test_math500_prompt_is_lm_evals_minerva_four_shot() -> None:
    task = build("monkeys_math500", repeats=4, ks=[1, 4])
    context = task.instances[0].args[0]
    exemplars = list_fewshot_samples()
    assert context.startswith(f"Problem:\n{exemplars[0]['problem']}\n\nSolution:")
    assert all(e["problem"] in context for e in exemplars)
    assert context.endswith(f"Problem:\n{task.eval_docs[0]['problem']}\n\nSolution:")
    assert "Problem:" in task.instances[0].args[1]["until"]
    assert task.ks == [1, 4]
    assert set(task.aggregation()) == {"coverage@1", "coverage@4", "majority@1", "majority@4"}


def test_math_loads_all_5000_problems_in_hub_schema() -> None:
    manager = TaskManager(
        include_path=str(TASK_DIR), include_defaults=False, metadata={"repeats": 1}
    )
    task = manager.load("monkeys_math")["tasks"]["monkeys_math"]
    docs = task.eval_docs
    assert len(docs) == 5000
    assert {"problem", "solution", "level", "type"} <= set(docs.features)


def test_group_lists_every_task() -> None:
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    assert {"monkeys", "monkeys_gsm8k", "monkeys_math", "monkeys_math500"} <= set(manager.all_tasks)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"repeats": 0}, "repeats must be a whole number >= 1"),
        ({"repeats": 4, "ks": [1, 8]}, "k=8 exceeds the 4 samples drawn"),
        ({"repeats": "many"}, "repeats must be"),
    ],
)
def test_bad_k_is_a_clear_error(metadata: dict, message: str) -> None:
    with pytest.raises(MonkeysError, match=message):
        build("monkeys_gsm8k", **metadata)


def test_missing_data_dir_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MONKEYS_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MonkeysError, match=r"MONKEYS_DATA_DIR=.*not a directory"):
        build("monkeys_gsm8k", repeats=2)
