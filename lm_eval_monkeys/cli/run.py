"""The ``lm_eval`` run: lm-eval's own CLI with our task directory, models and flags.

``--repeats``, ``--ks``, ``--preset``, ``--shard``, ``--shards_on_ray`` and the adaptive
sampling flags (``--until_verified``, ``--round_size``, ``--budget``) are ours; everything
else is lm-eval's. Bad input is refused before lm-eval spends a minute loading
a model (``preflight``). Ctrl-C or SIGTERM ends a run in one line saying what was kept and
how to resume (``interrupt``). After a store-backed run, the k-by-metric table is read
back from the run's store (whose verdicts the run cached), so nothing of lm-eval's is
patched or parsed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lm_eval_monkeys.cli.interrupt import run_resumably
from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.store import check_writer
from lm_eval_monkeys.store.shards import Shard, bind_shard, parse_shard
from lm_eval_monkeys.task_configs import TASK_DIR, installed_metadata
from lm_eval_monkeys.tasks.run_options import (
    DEFAULT_ROUND_SIZE,
    parse_ks,
    parse_repeats,
    parse_sampling,
    sampled_metrics,
)

_MODEL_FLAGS = {"--model", "-M", "--model_args", "-a"}


def run_lm_eval(argv: list[str]) -> None:
    if _is_run(argv) and {"-h", "--help"} & set(argv):  # ours first, then lm-eval's
        print(own_parser().format_help())
    own, rest = _own_flags(argv)
    if own.shards_on_ray is not None:
        from lm_eval_monkeys.cli.shards_on_ray import run_from_cli

        run_from_cli(own, rest)
        return
    flags = {arg.split("=", 1)[0] for arg in rest}
    if _is_run(rest) and not _MODEL_FLAGS & flags:
        from lm_eval_monkeys.models.embedded import embedded_model_args

        rest = [*rest, "--model", "monkeys-hf", "--model_args", embedded_model_args()]
    _execute(rest, own, argv)


def own_parser() -> argparse.ArgumentParser:
    """This project's run flags (lm-eval's are passed through)."""
    own = argparse.ArgumentParser(
        prog="lm-eval-monkeys",
        usage="lm-eval-monkeys [run] [--repeats K] [--ks KS] [--preset NAME] "
        "[--shard I/N | --shards_on_ray N] [--until_verified] [--round_size R] [--budget N] "
        "[lm-eval's run flags]\n"
        "       lm-eval-monkeys COMMAND ...",
        description="lm-eval with repeated sampling: k samples per problem, verified, "
        "coverage@k and more.",
        add_help=False,
    )
    own.add_argument("--repeats", metavar="K", help="k: samples drawn per problem")
    own.add_argument(
        "--ks", metavar="KS", help="k values to report, e.g. 1,4,16 (default: powers of two)"
    )
    own.add_argument("--preset", metavar="NAME", help="run each task's preset variant, e.g. paper")
    own.add_argument(
        "--shard", metavar="I/N", help="i/N: generate only every N-th problem, from the i-th"
    )
    own.add_argument(
        "--shards_on_ray", type=int, metavar="N", help="N: run N shards as Ray tasks, merged"
    )
    own.add_argument(
        "--ray_address", metavar="HOST:PORT", help="the Ray cluster (default: RAY_ADDRESS)"
    )
    own.add_argument(
        "--ray_gpus_per_shard", type=float, default=0.0, metavar="G", help="GPUs per shard's task"
    )
    own.add_argument(
        "--until_verified",
        action="store_true",
        help="sample in rounds; a problem with a verified-correct sample gets no more (up to K)",
    )
    own.add_argument(
        "--round_size",
        metavar="R",
        help=f"samples per unsolved problem a round (default {DEFAULT_ROUND_SIZE}; "
        "implies --until_verified)",
    )
    own.add_argument(
        "--budget",
        metavar="N",
        help="N samples per task in all, in rounds to the unsolved problems (implies "
        "--until_verified; needs --repeats K, the most one problem may get)",
    )
    return own


def _own_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, checked, and lm-eval's arguments (with a preset's task variants)."""
    own, rest = own_parser().parse_known_args(argv)
    if own.preset is not None:
        rest = _with_preset(rest, own.preset)
    from lm_eval_monkeys.tasks.data import local_data_dir

    local_data_dir()
    own.repeats = None if own.repeats is None else parse_repeats(own.repeats)
    if own.repeats is not None and own.ks is not None:
        parse_ks(own.ks, own.repeats)
    own.shard = parse_shard(own.shard)
    own.sampling = _sampling(own)
    return own, rest


def _sampling(own: argparse.Namespace) -> dict[str, Any] | None:
    """The adaptive flags as the tasks' ``metadata.sampling`` (checked), or None."""
    if not (own.until_verified or own.round_size is not None or own.budget is not None):
        return None
    sampling = {"round_size": own.round_size or DEFAULT_ROUND_SIZE, "budget": own.budget}
    parse_sampling(sampling)
    if own.budget is not None and own.repeats is None:
        raise MonkeysError(
            "--budget N needs --repeats K, the most samples one problem may get; "
            "e.g. --budget 1000 --repeats 100"
        )
    if own.shard is not None or own.shards_on_ray is not None:
        raise MonkeysError(
            "adaptive sampling (--until_verified, --budget) runs on one machine's store; "
            "drop --shard/--shards_on_ray"
        )
    return sampling


def _execute(rest: list[str], own: argparse.Namespace, argv: list[str]) -> None:
    """lm-eval's run, in phases: parse its arguments, check everything that needs no
    model, give it our settings, run it (a signal ends it in one line), print our table."""
    from lm_eval.utils import setup_logging

    import lm_eval_monkeys.models  # noqa: F401  (registers the monkeys-* models)

    setup_logging()
    cli, args = _lm_eval_args(rest)
    run_dir = _run_dir(args)
    _check(args, run_dir, own.shard)
    _check_sampling(args, run_dir, own.sampling)
    _give_settings(args, run_dir, own)
    run_resumably(lambda: cli.execute(args), run_dir, argv)
    predict_only = getattr(args, "predict_only", False)  # nothing judged, no table
    if run_dir is not None and not predict_only and (run_dir / "samples.sqlite").is_file():
        from lm_eval_monkeys.cli.table import metric_table
        from lm_eval_monkeys.scoring.rescore import rescore_run

        print("\n" + metric_table(rescore_run(run_dir)))


def _lm_eval_args(rest: list[str]) -> tuple[Any, argparse.Namespace]:
    """lm-eval's command and its parse of ``rest`` (behind the guard of ``harness``)."""
    from lm_eval_monkeys.cli.harness import HarnessCommand

    cli = HarnessCommand()
    return cli, cli.parse(rest)


def _check(args: argparse.Namespace, run_dir: Path | None, shard: Shard | None) -> None:
    """Every check that needs no model, before lm-eval loads the model or the data."""
    from lm_eval_monkeys.cli import preflight
    from lm_eval_monkeys.tasks.data import check_task_data, refuse_unverifiable_codecontests

    predict_only = getattr(args, "predict_only", False)  # generating only needs no checker
    if hasattr(args, "include_path"):
        args.include_path = [str(TASK_DIR), *([args.include_path] if args.include_path else [])]
        names = _task_names(getattr(args, "tasks", None))
        _check_task_names(names, args.include_path)
        if not predict_only:
            refuse_unverifiable_codecontests(names)
            preflight.check_checkers(names, dict(getattr(args, "metadata", None) or {}))
        preflight.check_unsafe_code(names, getattr(args, "confirm_run_unsafe_code", False))
        check_task_data(names)
    if getattr(args, "model", None):
        preflight.check_model(str(args.model), dict(args.model_args or {}))
    if hasattr(args, "gen_kwargs"):
        from lm_eval_monkeys.models.generation import check_gen_kwargs

        check_gen_kwargs(str(getattr(args, "model", "")), args.gen_kwargs or {})
    if run_dir is not None:
        check_writer(run_dir)
        bind_shard(run_dir, shard)  # a shard's store says which shard it holds
    elif shard is not None:
        raise MonkeysError(
            "--shard writes each shard's samples to its own store: use a monkeys-* model "
            "and --output_path (then `lm-eval-monkeys merge`)"
        )


def _check_sampling(
    args: argparse.Namespace, run_dir: Path | None, sampling: dict[str, Any] | None
) -> None:
    """An adaptive run reads its rounds' verdicts from its store, and gives coverage only."""
    if sampling is None:
        return
    if run_dir is None:
        raise MonkeysError(
            "adaptive sampling (--until_verified, --budget) verifies each round through the "
            "run's store: use a monkeys-* model and --output_path"
        )
    sampled_metrics(
        (getattr(args, "metadata", None) or {}).get("metrics"), parse_sampling(sampling)
    )


def _give_settings(args: argparse.Namespace, run_dir: Path | None, own: argparse.Namespace) -> None:
    """Our settings into lm-eval's arguments: the store to the model, the rest to the
    tasks (through ``metadata``, which lm-eval hands every task config)."""
    if run_dir is not None:
        args.model_args = {"run_dir": str(run_dir), **(args.model_args or {})}
    if not hasattr(args, "metadata"):
        return
    metadata: dict[str, Any] = dict(args.metadata or {})
    if own.repeats is not None:
        metadata["repeats"] = own.repeats
    if own.ks is not None:
        metadata["ks"] = own.ks
    if own.shard is not None:
        metadata["shard"] = str(own.shard)
    if own.sampling is not None:
        metadata["sampling"] = own.sampling
    if run_dir is not None:
        metadata["run_dir"] = str(run_dir)  # tasks record themselves in the store
    args.metadata = metadata


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
    out = Path(args.output_path).expanduser().absolute()  # the user's working directory
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
