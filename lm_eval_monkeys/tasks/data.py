"""Benchmark loading: the Hugging Face hub by default, local files under MONKEYS_DATA_DIR.

Every loader returns a ``datasets.DatasetDict`` in the hub's schema, so task configs,
verifiers and the ``verify`` command see the same records wherever the data came from.
The local layout is that of ``shared/data`` (see its README).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import datasets

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.hub import check_loadable
from lm_eval_monkeys.task_configs import installed_configs, with_group_tasks

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "MONKEYS_DATA_DIR"
GSM8K_HUB = "openai/gsm8k"
MATH_HUB = "EleutherAI/hendrycks_math"
MATH500_HUB = "HuggingFaceH4/MATH-500"
CODECONTESTS_HUB = "deepmind/code_contests"
SWEBENCH_LITE_HUB = "princeton-nlp/SWE-bench_Lite_oracle"
# Each loader's hub datasets (read when MONKEYS_DATA_DIR is unset); MiniF2F is local only.
HUB_DATASETS = {
    "load_gsm8k": (GSM8K_HUB,),
    "load_math": (MATH_HUB,),
    "load_math500": (MATH500_HUB,),
    "load_codecontests": (CODECONTESTS_HUB,),
    "load_swebench_lite": (SWEBENCH_LITE_HUB,),
}
LOCAL_ONLY = ("load_minif2f", "load_minif2f_mathd")
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


def local_data_dir() -> Path | None:
    """The local data directory named by MONKEYS_DATA_DIR, or None to use the hub."""
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise MonkeysError(
            f"{DATA_DIR_ENV}={value} is not a directory; point it at a directory laid out "
            f"like shared/data, or unset it to load from the Hugging Face hub"
        )
    return path


def _local_json(relative: str, **splits: str) -> datasets.DatasetDict:
    root = local_data_dir()
    assert root is not None
    files = {split: root / relative / name for split, name in splits.items()}
    for file in files.values():
        if not file.is_file():
            raise MonkeysError(
                f"missing data file {file}; {DATA_DIR_ENV} must be laid out like shared/data"
            )
    return datasets.load_dataset("json", data_files={s: str(f) for s, f in files.items()})


def load_gsm8k(**_: Any) -> datasets.DatasetDict:
    """GSM8K (openai/gsm8k, main): train for few-shot examples, test for evaluation."""
    if local_data_dir() is None:
        return datasets.load_dataset(GSM8K_HUB, "main")
    return _local_json("gsm8k", train="train.jsonl", test="test.jsonl")


def load_math(**_: Any) -> datasets.DatasetDict:
    """All 5,000 MATH test problems in the hub schema (problem, level, type, solution)."""
    if local_data_dir() is None:
        parts = [
            datasets.load_dataset(MATH_HUB, subject, split="test") for subject in MATH_SUBJECTS
        ]
        return datasets.DatasetDict(test=datasets.concatenate_datasets(parts))
    # The local copy names the fields question/answer; rename them to the hub's.
    local = _local_json("math", test="test.jsonl")
    return local.rename_columns({"question": "problem", "answer": "solution"})


def load_math500(**_: Any) -> datasets.DatasetDict:
    """MATH-500 (HuggingFaceH4/MATH-500): problem, solution, answer, subject, level."""
    if local_data_dir() is None:
        return datasets.load_dataset(MATH500_HUB)
    return _local_json("math", test="math500_test.jsonl")


CODECONTESTS_TESTS_FILE = "test.jsonl"  # local problems with tests, CodeContests schema


def load_codecontests(**_: Any) -> datasets.DatasetDict:
    """CodeContests test problems (deepmind/code_contests) without image-based statements.

    Locally, ``codecontests/test.jsonl`` (problems with their tests, hub schema) when it
    exists; else ``codecontests/test_statements_only.jsonl``, whose problems have no tests:
    prompts build from it, but no program can be verified on them (the checker refuses a
    problem without tests, and a run stops before its model loads).
    """
    root = local_data_dir()
    if root is None or codecontests_has_local_tests():
        test = codecontests_test_split()
    else:
        logger.warning(
            "monkeys_codecontests: %s has statements only, no tests: prompts build, but "
            "no program can be verified on them; %s",
            root / "codecontests" / "test_statements_only.jsonl",
            CODECONTESTS_NEEDS_TESTS,
        )
        local = _local_json("codecontests", test="test_statements_only.jsonl")["test"]
        test = local.map(_statement_to_hub_schema, remove_columns=local.column_names)
    return datasets.DatasetDict(test=test.filter(lambda doc: "<image>" not in doc["description"]))


def codecontests_test_split() -> datasets.Dataset:
    """Every CodeContests test problem with its tests, in the hub's order (the order
    ``orig_dset_idx`` counts in), from the hub or the local tests file."""
    if local_data_dir() is None:
        return datasets.load_dataset(CODECONTESTS_HUB, split="test")
    return _local_json("codecontests", test=CODECONTESTS_TESTS_FILE)["test"]


CODECONTESTS_NEEDS_TESTS = (
    f"to verify, put {CODECONTESTS_TESTS_FILE} with tests (CodeContests schema) in "
    f"{DATA_DIR_ENV}/codecontests, or unset {DATA_DIR_ENV} to load the hub's tests"
)


CODECONTESTS_TASKS = ("monkeys_codecontests", "monkeys")  # the task and the group holding it


def refuse_unverifiable_codecontests(tasks: list[str]) -> None:
    """Stop a run over local CodeContests problems without tests (before any model loads:
    every sample would be generated for nothing)."""
    named = sorted(set(tasks) & set(CODECONTESTS_TASKS))
    if named and local_data_dir() is not None and not codecontests_has_local_tests():
        raise MonkeysError(
            f"{', '.join(named)}: the local CodeContests problems have no tests, so no "
            f"program can be verified; {CODECONTESTS_NEEDS_TESTS} (or add --predict_only "
            "to generate without verifying)"
        )


def check_task_data(tasks: list[str]) -> None:
    """Refuse, before any model loads, our tasks (or groups of them) whose data cannot load:
    MiniF2F without MONKEYS_DATA_DIR, or, without it, a hub dataset that is not cached
    while offline, not on the hub, or behind an unreachable hub."""
    if local_data_dir() is not None:
        return
    configs = installed_configs()
    for task in with_group_tasks(tasks):
        dataset = configs.get(task, {}).get("custom_dataset") or {}
        loader = str(dataset.get("function", "")).rpartition(":")[2]
        if loader in LOCAL_ONLY:
            raise MonkeysError(f"{task}: {MINIF2F_NEEDS_DATA}")
        for repo_id in HUB_DATASETS.get(loader, ()):
            check_loadable(
                "dataset",
                repo_id,
                f"set {DATA_DIR_ENV} to a directory laid out like shared/data (its README)",
            )


def codecontests_has_local_tests() -> bool:
    """Whether the local data directory holds CodeContests problems with tests."""
    root = local_data_dir()
    return root is not None and (root / "codecontests" / CODECONTESTS_TESTS_FILE).is_file()


def codecontests_fewshot() -> list[dict[str, str]]:
    """Two train problems with a Python 3 solution (hub), as few-shot examples."""
    root = local_data_dir()
    if root is not None:
        path = root / "codecontests" / "train.jsonl"
        if not path.is_file():
            return []  # the local layout has no train split: the prompt is zero-shot
        train = datasets.load_dataset("json", data_files=str(path), split="train")
    else:
        train = datasets.load_dataset(CODECONTESTS_HUB, split="train", streaming=True)
    examples = []
    for doc in train:
        solutions = doc.get("solutions") or {}
        python3 = [
            s
            for s, lang in zip(
                solutions.get("solution", []), solutions.get("language", []), strict=False
            )
            if lang == _PYTHON3
        ]
        if python3 and "<image>" not in doc["description"]:
            examples.append({"description": doc["description"], "solution": python3[0].strip()})
        if len(examples) == 2:
            break
    return examples


_PYTHON3 = 3  # deepmind/code_contests language enum: 1 Python 2, 2 C++, 3 Python 3, 4 Java


def _statement_to_hub_schema(record: dict[str, Any]) -> dict[str, Any]:
    empty: dict[str, list[str]] = {"input": [], "output": []}
    meta = record["meta_data"]
    return {
        "name": meta["task_name"],
        "description": record["prompt"].strip().strip("'").strip(),
        "public_tests": empty,
        "private_tests": empty,
        "generated_tests": empty,
        "time_limit": meta["time_limit"],
        "memory_limit_bytes": 256 << 20,
        "difficulty": meta["difficulty"],
    }


MINIF2F_NEEDS_DATA = (
    f"MiniF2F loads from local files: set {DATA_DIR_ENV} to a directory with "
    "minif2f/minif2f.jsonl (DeepSeek-Prover-V1.5's Lean 4 port, datasets/minif2f.jsonl)"
)


def load_minif2f(**_: Any) -> datasets.DatasetDict:
    """MiniF2F in Lean 4 (DeepSeek-Prover-V1.5's port): name, split, informal_prefix,
    formal_statement (ends ``:= by``), goal, header. Test split only; local files only."""
    if local_data_dir() is None:
        raise MonkeysError(MINIF2F_NEEDS_DATA)
    records = _local_json("minif2f", records="minif2f.jsonl")["records"]
    return datasets.DatasetDict(test=records.filter(lambda r: r["split"] == "test"))


def load_minif2f_mathd(**kwargs: Any) -> datasets.DatasetDict:
    """The paper's subset: the 130 MiniF2F test problems from MATH (``mathd_*``)."""
    test = load_minif2f(**kwargs)["test"]
    return datasets.DatasetDict(test=test.filter(lambda r: r["name"].startswith("mathd")))


def load_swebench_lite(**_: Any) -> datasets.DatasetDict:
    """SWE-bench Lite (300 test instances) with an oracle-style prompt in ``text``.

    Hub: princeton-nlp/SWE-bench_Lite_oracle, whose ``text`` is the oracle prompt (the issue
    plus the files the gold patch edits). Local: ``swebench_lite/test.json`` with the same
    prompt built here, the files read at ``base_commit`` from the mirrors named by
    MONKEYS_SWEBENCH_REPOS (without mirrors the prompt lists the files' paths only).
    """
    if local_data_dir() is None:
        return datasets.load_dataset(SWEBENCH_LITE_HUB)
    test = _local_json("swebench_lite", test="test.json")["test"]
    from lm_eval_monkeys.verifiers.swebench.local_runner import REPOS_ENV

    mirrors = os.environ.get(REPOS_ENV)
    if not mirrors:
        logger.warning(
            "%s is not set: SWE-bench prompts name the files to edit without their contents",
            REPOS_ENV,
        )
    return datasets.DatasetDict(
        test=test.map(lambda r: {"text": oracle_prompt(r, gold_files(r, mirrors))})
    )


def oracle_prompt(instance: dict[str, Any], files: dict[str, str | None]) -> str:
    """The issue, the files the fix touches (numbered lines) and the patch format asked for."""
    code = []
    for path, content in files.items():
        if content is None:
            code.append(f"[file {path}: contents not available]")
            continue
        numbered = "\n".join(f"{i} {line}" for i, line in enumerate(content.split("\n"), 1))
        code.append(f"[start of {path}]\n{numbered}\n[end of {path}]")
    return (
        "You are given an issue from a GitHub repository and the source files it concerns. "
        "Write a patch that resolves the issue.\n\n"
        f"<issue>\n{instance['problem_statement'].strip()}\n</issue>\n\n"
        "<code>\n" + "\n".join(code) + "\n</code>\n\n"
        "Answer with one patch in unified diff format, as `git diff` writes it, that applies "
        "to the repository with `git apply`, between <patch> and </patch>.\n<patch>\n"
    )


def gold_files(instance: dict[str, Any], mirrors: str | None) -> dict[str, str | None]:
    """The files the gold patch edits, at ``base_commit``, read from a local mirror."""
    paths = re.findall(r"^diff --git a/.* b/(.*)$", instance["patch"], re.M)
    mirror = Path(mirrors, instance["repo"].replace("/", "__")) if mirrors else None
    files: dict[str, str | None] = {}
    for path in dict.fromkeys(paths):
        files[path] = None
        if mirror is not None and mirror.is_dir():
            shown = subprocess.run(
                ["git", "-C", str(mirror), "show", f"{instance['base_commit']}:{path}"],
                capture_output=True,
                text=True,
                errors="replace",
            )
            files[path] = shown.stdout if shown.returncode == 0 else None
    return files
