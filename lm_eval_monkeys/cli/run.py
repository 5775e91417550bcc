"""The ``lm_eval`` run: lm-eval's own CLI with our task directory, models and flags.

``--repeats``, ``--ks``, ``--preset``, ``--shard`` and ``--shards_on_ray`` are ours;
everything else is lm-eval's. Bad input is refused before lm-eval spends a minute loading
a model. After a store-backed run, the k-by-metric table is read back from the run's
store (whose verdicts the run cached), so nothing of lm-eval's is patched or parsed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store.shards import Shard, bind_shard, parse_shard
from lm_eval_monkeys.task_configs import TASK_DIR, installed_metadata
from lm_eval_monkeys.tasks.run_options import parse_ks, parse_repeats

_MODEL_FLAGS = {"--model", "-M", "--model_args", "-a"}


def run_lm_eval(argv: list[str]) -> None:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--repeats", help="k: samples drawn per problem")
    own.add_argument("--ks", help="k values to report, e.g. 1,4,16 (default: powers of two)")
    own.add_argument("--shard", help="i/N: generate only every N-th problem, from the i-th")
    own.add_argument("--shards_on_ray", type=int, help="N: run N shards as Ray tasks, merged")
    own.add_argument("--ray_address", help="the Ray cluster (default: RAY_ADDRESS)")
    own.add_argument("--ray_gpus_per_shard", type=float, default=0.0)
    own.add_argument("--preset", help="run each task's preset variant, e.g. paper")
    extra, rest = own.parse_known_args(argv)
    if extra.preset is not None:
        rest = _with_preset(rest, extra.preset)
    from lm_eval_monkeys.tasks.data import local_data_dir

    local_data_dir()
    repeats = None if extra.repeats is None else parse_repeats(extra.repeats)
    if repeats is not None and extra.ks is not None:
        parse_ks(extra.ks, repeats)
    shard = parse_shard(extra.shard)
    if extra.shards_on_ray is not None:
        from lm_eval_monkeys.cli.shards_on_ray import run_from_cli

        run_from_cli(extra, rest)
        return
    flags = {arg.split("=", 1)[0] for arg in rest}
    if _is_run(rest) and not _MODEL_FLAGS & flags:
        from lm_eval_monkeys.models.embedded import embedded_model_args

        rest = [*rest, "--model", "monkeys-hf", "--model_args", embedded_model_args()]
    _execute(rest, repeats, extra.ks, shard)


def _execute(rest: list[str], repeats: int | None, ks: str | None, shard: Shard | None) -> None:
    from lm_eval.utils import setup_logging

    import lm_eval_monkeys.models  # noqa: F401  (registers the monkeys-* models)
    from lm_eval_monkeys.cli.harness import HarnessCommand
    from lm_eval_monkeys.tasks.data import refuse_unverifiable_codecontests

    setup_logging()
    cli = HarnessCommand()
    args = cli.parse(rest)
    if hasattr(args, "include_path"):
        args.include_path = [str(TASK_DIR), *([args.include_path] if args.include_path else [])]
        names = _task_names(getattr(args, "tasks", None))
        _check_task_names(names, args.include_path)
        if not getattr(args, "predict_only", False):  # generating only needs no tests
            refuse_unverifiable_codecontests(names)
    if hasattr(args, "gen_kwargs"):
        from lm_eval_monkeys.models.generation import check_gen_kwargs

        check_gen_kwargs(str(getattr(args, "model", "")), args.gen_kwargs or {})
    run_dir = _run_dir(args)
    if run_dir is not None:
        args.model_args = {"run_dir": str(run_dir), **(args.model_args or {})}
        bind_shard(run_dir, shard)  # a shard's store says which shard it holds
    elif shard is not None:
        raise MonkeysError(
            "--shard writes each shard's samples to its own store: use a monkeys-* model "
            "and --output_path (then `lm-eval-monkeys merge`)"
        )
    if hasattr(args, "metadata"):
        metadata: dict[str, Any] = dict(args.metadata or {})
        if repeats is not None:
            metadata["repeats"] = repeats
        if ks is not None:
            metadata["ks"] = ks
        if shard is not None:
            metadata["shard"] = str(shard)
        if run_dir is not None:
            metadata["run_dir"] = str(run_dir)  # tasks record themselves in the store
        args.metadata = metadata
    cli.execute(args)
    predict_only = getattr(args, "predict_only", False)  # nothing judged, no table
    if run_dir is not None and not predict_only and (run_dir / "samples.sqlite").is_file():
        from lm_eval_monkeys.cli.table import metric_table
        from lm_eval_monkeys.scoring.rescore import rescore_run

        print("\n" + metric_table(rescore_run(run_dir)))


def _with_preset(rest: list[str], preset: str) -> list[str]:
    """lm-eval's arguments with ``--tasks`` naming each task's preset variant."""
    from lm_eval_monkeys.tasks.presets import preset_tasks

    tasks = argparse.ArgumentParser(add_help=False)
    tasks.add_argument("--tasks", "-t", nargs="+", default=[])
    found, others = tasks.parse_known_args(rest)
    names = [name.strip() for item in found.tasks for name in item.split(",") if name.strip()]
    return [*others, "--tasks", ",".join(preset_tasks(names, preset))]


def _run_dir(args: argparse.Namespace) -> Path | None:
    """The run's store directory: --output_path (a directory, or a file's parent) of a
    monkeys-* model run."""
    if not (str(getattr(args, "model", "")).startswith("monkeys-") and args.output_path):
        return None
    out = Path(args.output_path)
    return out.parent if out.suffix == ".json" else out


def _task_names(tasks: str | list[str] | None) -> list[str]:
    items = tasks if isinstance(tasks, list) else [tasks] if tasks else []
    return [name.strip() for item in items for name in str(item).split(",") if name.strip()]


def _check_task_names(names: list[str], include_path: list[str]) -> None:
    """Refuse unknown task names before any model loads: ours are known from their
    configs; any other name is looked up with lm-eval's TaskManager."""
    if not names:
        return
    ours = set(installed_metadata([Path(p) for p in include_path])) | {"monkeys"}
    others = [n for n in names if n not in ours and not Path(n).exists()]
    if not others:
        return
    from lm_eval.tasks import TaskManager

    known = set(TaskManager(include_path=include_path).all_tasks)
    unknown = [n for n in others if n not in known]
    if unknown:
        listed = ", ".join(sorted(n for n in ours if n.startswith("monkeys")))
        raise MonkeysError(
            f"unknown task {', '.join(unknown)}; ours: {listed} "
            "(`lm-eval-monkeys ls tasks` lists every task)"
        )


def _is_run(argv: list[str]) -> bool:
    """Whether lm-eval will treat these arguments as its `run` command."""
    return bool(argv) and (argv[0] == "run" or argv[0].startswith("-"))
