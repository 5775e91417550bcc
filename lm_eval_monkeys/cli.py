"""``lm-eval-monkeys``: the ``lm_eval`` command with this package's tasks, plus tools.

lm-eval-monkeys --model hf --tasks monkeys_gsm8k --repeats 16 ...   # any lm_eval flags
lm-eval-monkeys verify --task monkeys_gsm8k --input IN.jsonl --output OUT.jsonl
lm-eval-monkeys task-dir    # the directory to pass to stock lm_eval --include_path
lm-eval-monkeys reward RUN_DIR --reward_model PATH_OR_ID   # reward scores, kept in the store
lm-eval-monkeys merge DIR_0 DIR_1 ... --output RUN_DIR   # runs made with --shard i/N
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.task_configs import TASK_DIR

OWN_COMMANDS = ("verify", "rescore", "export", "task-dir", "merge", "reward", "report", "compare")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in OWN_COMMANDS:
            _own_command(argv)
        else:
            _run_lm_eval(argv)
    except MonkeysError as err:
        sys.exit(f"lm-eval-monkeys: error: {err}")
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


def _own_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lm-eval-monkeys")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("task-dir", help="print the task config directory for --include_path")
    verify = commands.add_parser("verify", help="score JSONL completions with a task's checker")
    verify.add_argument("--task", required=True, help="a monkeys_* task name")
    verify.add_argument("--input", required=True, type=Path, help="JSONL of {doc, completion}")
    verify.add_argument("--output", required=True, type=Path, help="JSONL written with verdicts")
    verify.add_argument("--verifier", help="override the task's checker, e.g. gsm8k:flexible")
    verify.add_argument("--include_path", type=Path, help="another directory of task configs")
    _add_backend_flags(verify)
    rescore = commands.add_parser("rescore", help="recompute a stored run's metrics, no model")
    rescore.add_argument("run_dir", type=Path, help="the run's --output_path")
    rescore.add_argument("--verifier", help="re-verify with another checker, e.g. gsm8k:flexible")
    rescore.add_argument("--ks", help="k values to report, e.g. 1,10,100")
    rescore.add_argument("--reward_model", help="rewards for rm_* metrics (default: the only one)")
    rescore.add_argument("--metrics", help=_METRICS_HELP)
    _add_backend_flags(rescore)
    merge = commands.add_parser("merge", help="merge the stores of a sharded run's shards")
    merge.add_argument("shard_dirs", nargs="+", type=Path, help="every shard's --output_path")
    merge.add_argument("--output", required=True, type=Path, help="the merged run's directory")
    reward = commands.add_parser("reward", help="score a stored run's samples with a reward model")
    reward.add_argument("run_dir", type=Path, help="the run's --output_path")
    reward.add_argument("--reward_model", required=True, help="sequence-classification model")
    reward.add_argument("--batch_size", type=int, default=8, help="texts per forward pass")
    reward.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    reward.add_argument("--max_length", type=int, default=4096, help="tokens kept per text")
    reward.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    reward.add_argument("--trust_remote_code", action="store_true", help="needed by ArmoRM")
    report = commands.add_parser("report", help="figures, fits, forecasts and costs of runs")
    report.add_argument(
        "run_dirs", nargs="+", type=Path, help="runs' --output_path", metavar="RUN_DIR"
    )
    report.add_argument("--output", required=True, type=Path, help="directory the report goes to")
    report.add_argument("--prices", type=Path, help="YAML/JSON: model: {input: $/1M, output: $/1M}")
    report.add_argument("--params", nargs="+", default=[], metavar="MODEL=N", help="e.g. run=135M")
    report.add_argument("--target", type=float, default=0.9, help="coverage to find k for")
    report.add_argument("--budget", help="per problem: FLOPs (1e15) or dollars ($0.01)")
    report.add_argument("--verifier", help="verify with another checker")
    report.add_argument("--ks", help="k values to compute metrics at (default: powers of two)")
    report.add_argument("--reward_model", help="rewards for rm_* metrics (default: the only one)")
    report.add_argument("--metrics", help=_METRICS_HELP)
    _add_compare_parser(commands)
    export = commands.add_parser("export", help="write every stored sample with its verdict")
    export.add_argument("run_dir", type=Path, help="the run's --output_path")
    export.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    export.add_argument("--output", type=Path, help="file to write (JSONL: default stdout)")
    export.add_argument("--verifier", help="verify with another checker")
    args = parser.parse_args(argv)
    if args.command == "task-dir":
        print(TASK_DIR)
    elif args.command == "rescore":
        from lm_eval_monkeys.report import metric_table
        from lm_eval_monkeys.rescore import RESCORE_FILE, rescore_run
        from lm_eval_monkeys.tasks import parse_ks

        ks = parse_ks(args.ks, 1 << 62) if args.ks else None
        with _backend(args) as backend:
            results = rescore_run(
                args.run_dir,
                args.verifier,
                ks,
                backend=backend,
                reward_model=args.reward_model,
                metrics=_metric_list(args.metrics),
            )
        print(metric_table(results))
        print(f"\nwritten to {args.run_dir / RESCORE_FILE}")
    elif args.command == "reward":
        from lm_eval_monkeys.reward import score_run
        from lm_eval_monkeys.store import STORE_FILE

        scored = score_run(
            args.run_dir,
            args.reward_model,
            args.batch_size,
            args.device,
            args.max_length,
            args.dtype,
            args.trust_remote_code,
        )
        print(f"{scored} samples scored with {args.reward_model} -> {args.run_dir / STORE_FILE}")
    elif args.command == "report":
        _report(args)
    elif args.command == "compare":
        _compare(args)
    elif args.command == "export":
        from lm_eval_monkeys.export import export_run

        count = export_run(args.run_dir, args.format, args.output, args.verifier)
        if args.output:
            print(f"{count} samples -> {args.output}")
    elif args.command == "merge":
        from lm_eval_monkeys.shards import merge_shards

        merged = merge_shards(args.shard_dirs, args.output)
        print(
            f"{merged.shards} shards merged: {merged.tasks} tasks, {merged.problems} problems, "
            f"{merged.samples} samples -> {args.output}"
        )
    else:
        _verify(args)


def _verify(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.selection import Grader
    from lm_eval_monkeys.tasks import task_verifier
    from lm_eval_monkeys.verifiers import get_verifier
    from lm_eval_monkeys.verify import verify_file

    dirs = [TASK_DIR, *([args.include_path] if args.include_path else [])]
    spec = args.verifier or task_verifier(args.task, dirs)
    if args.verify_backend == "local":
        lines, correct = verify_file(args.input, args.output, Grader(get_verifier(spec, args.task)))
    else:
        from lm_eval_monkeys.verify_backends import VerdictResolver, known_grader

        with _backend(args) as backend:
            resolver = VerdictResolver(backend)
            grader = known_grader(args.task, spec)
            lines, correct = verify_file(args.input, args.output, grader, resolver)
            resolver.close()
    print(f"{lines} samples verified with {spec}: {correct} correct -> {args.output}")


def _report(args: argparse.Namespace) -> None:
    from lm_eval_monkeys.cost import Budget, parse_count
    from lm_eval_monkeys.report import build_report
    from lm_eval_monkeys.tasks import parse_ks

    params = {}
    for item in args.params:
        name, sep, count = item.rpartition("=")
        if not sep or not name:
            raise MonkeysError(f"--params takes MODEL=N (a run or model name), got {item!r}")
        params[name] = parse_count(count)
    report = build_report(
        args.run_dirs,
        args.output,
        prices=args.prices,
        params=params,
        target=args.target,
        budget=Budget.parse(args.budget) if args.budget else None,
        verifier=args.verifier,
        ks=parse_ks(args.ks, 1 << 62) if args.ks else None,
        reward_model=args.reward_model,
        metrics=_metric_list(args.metrics),
    )
    print(f"report of {len(args.run_dirs)} runs -> {report.output / 'report.html'}")
    for path in report.files:
        print(f"  {path}")


_METRICS_HELP = "comma-separated, e.g. coverage,majority,passall,gpass_0.5 (default: not opt-in)"


def _metric_list(value: str | None) -> list[str] | None:
    """``--metrics a,b``: the names in order, once each; None when not given."""
    return list(dict.fromkeys(m.strip() for m in value.split(",") if m.strip())) if value else None


def _add_compare_parser(commands: Any) -> None:
    compare = commands.add_parser(
        "compare", help="paired differences between runs on the same problems; a CI gate"
    )
    compare.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="baseline first, then the others"
    )
    compare.add_argument("--metrics", default="coverage,majority", help=_METRICS_HELP)
    compare.add_argument("--ks", help="k values to compare at (default: powers of two)")
    compare.add_argument("--verifier", help="verify every run with this checker")
    compare.add_argument(
        "--intersection", action="store_true", help="compare on the problems all runs hold"
    )
    compare.add_argument(
        "--different_prompts", action="store_true", help="allow prompts or sampling to differ"
    )
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level")
    compare.add_argument("--iters", type=int, default=2000, help="bootstrap resamples")
    compare.add_argument("--seed", type=int, default=0, help="seed of bootstrap and flips")
    compare.add_argument(
        "--fail_if",
        "--fail-if",
        action="append",
        default=[],
        metavar="CONDITION",
        help="e.g. 'coverage@16 < -0.02' or 'coverage@16 significant_drop 0.05' (repeatable)",
    )
    compare.add_argument("--summary", type=Path, help="Markdown summary file")
    compare.add_argument("--json", type=Path, help="JSON result file")
    compare.add_argument("--junit", type=Path, help="JUnit XML file, one test case per condition")


def _compare(args: argparse.Namespace) -> None:
    from lm_eval_monkeys import gate
    from lm_eval_monkeys.compare import compare_runs
    from lm_eval_monkeys.report import run_labels
    from lm_eval_monkeys.tasks import parse_ks

    conditions = [gate.parse_condition(text) for text in args.fail_if]
    metrics = _metric_list(args.metrics) or []
    metrics += [c.metric for c in conditions if c.metric not in metrics]
    comparison = compare_runs(
        args.run_dirs,
        run_labels(args.run_dirs),
        metrics=metrics,
        ks=parse_ks(args.ks, 1 << 62) if args.ks else None,
        also_ks=[c.k for c in conditions],
        verifier=args.verifier,
        intersection=args.intersection,
        different_prompts=args.different_prompts,
        alpha=args.alpha,
        iters=args.iters,
        seed=args.seed,
    )
    checks = gate.evaluate(comparison, conditions)
    summary = gate.markdown(comparison, checks)
    outputs = {
        path: render(comparison, checks)
        for path, render in (
            (args.summary, lambda *_: summary),
            (args.json, gate.json_text),
            (args.junit, gate.junit_xml),
        )
        if path is not None
    }
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    gate.write_outputs(outputs, Path(step_summary) if step_summary else None, summary)
    print(gate.text(comparison, checks))
    if any(check.failed for check in checks):
        sys.exit(1)


def _add_backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verify_backend",
        choices=("local", "ray"),
        default="local",
        help="where answers are verified: this machine, or a Ray cluster's workers",
    )
    parser.add_argument("--ray_address", help="the Ray head's HOST:PORT (default: $RAY_ADDRESS)")


@contextmanager
def _backend(args: argparse.Namespace) -> Iterator[Any]:
    """The verification backend the flags ask for, closed afterwards."""
    from lm_eval_monkeys.verify_backends import get_verify_backend

    backend = get_verify_backend(args.verify_backend, address=args.ray_address)
    try:
        yield backend
    finally:
        backend.close()


def _run_lm_eval(argv: list[str]) -> None:
    """Run lm_eval's own CLI with our task directory included and --repeats/--ks applied."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--repeats", help="k: samples drawn per problem")
    own.add_argument("--ks", help="k values to report, e.g. 1,4,16 (default: powers of two)")
    own.add_argument("--shard", help="i/N: generate only every N-th problem, from the i-th")
    own.add_argument("--shards_on_ray", type=int, help="N: run N shards as Ray tasks, merged")
    own.add_argument("--ray_address", help="the Ray cluster (default: RAY_ADDRESS)")
    own.add_argument("--ray_gpus_per_shard", type=float, default=0.0)
    extra, rest = own.parse_known_args(argv)
    # Fail on bad input before lm-eval spends a minute loading a model.
    from lm_eval_monkeys.data import local_data_dir
    from lm_eval_monkeys.tasks import parse_ks, parse_repeats

    local_data_dir()
    repeats = None if extra.repeats is None else parse_repeats(extra.repeats)
    if repeats is not None and extra.ks is not None:
        parse_ks(extra.ks, repeats)
    from lm_eval_monkeys.shards import bind_shard, parse_shard

    shard = parse_shard(extra.shard)
    if extra.shards_on_ray is not None:
        _run_shards_on_ray(extra, rest)
        return

    flags = {arg.split("=", 1)[0] for arg in rest}
    if _is_run(rest) and not {"--model", "-M", "--model_args", "-a"} & flags:
        from lm_eval_monkeys.embedded import embedded_model_args

        rest = [*rest, "--model", "monkeys-hf", "--model_args", embedded_model_args()]

    import lm_eval_monkeys.backends  # noqa: F401  (registers the monkeys-* models)

    setup_logging()
    cli = HarnessCLI()
    sys.argv = ["lm-eval-monkeys", *rest]
    args = cli.parse_args()
    if hasattr(args, "include_path"):
        args.include_path = [str(TASK_DIR), *([args.include_path] if args.include_path else [])]
    if str(getattr(args, "model", "")).startswith("monkeys-") and args.output_path:
        # The run's sample store lives under --output_path (a directory, or a file's parent).
        out = Path(args.output_path)
        run_dir = out.parent if out.suffix == ".json" else out
        args.model_args = {"run_dir": str(run_dir), **(args.model_args or {})}
        bind_shard(run_dir, shard)  # a shard's store says which shard it holds
    elif shard is not None:
        raise MonkeysError(
            "--shard writes each shard's samples to its own store: use a monkeys-* model "
            "and --output_path (then `lm-eval-monkeys merge`)"
        )
    if hasattr(args, "metadata"):
        metadata = dict(args.metadata or {})
        if repeats is not None:
            metadata["repeats"] = repeats
        if extra.ks is not None:
            metadata["ks"] = extra.ks
        if shard is not None:
            metadata["shard"] = str(shard)
        args.metadata = metadata
    results = _capture_results()
    try:
        cli.execute(args)
    except ValueError as err:
        # lm-eval reports unknown task names this way, before any model is loaded.
        if shard is not None and "did not find any docs" in str(err):
            raise MonkeysError(
                f"shard {shard} holds no problems of some task (fewer problems than shards); "
                "use fewer shards"
            ) from None
        if not str(err).startswith("Tasks not found"):
            raise
        ours = ", ".join(sorted(path.stem for path in TASK_DIR.glob("monkeys*.yaml")))
        raise MonkeysError(f"{err}; `lm-eval-monkeys ls tasks` lists them (ours: {ours})") from None
    if results.get("results"):
        from lm_eval_monkeys.report import metric_table

        print("\n" + metric_table(results["results"]))


def _run_shards_on_ray(extra: argparse.Namespace, rest: list[str]) -> None:
    """The run as ``--shards_on_ray`` shards on a Ray cluster, merged into --output_path."""
    from lm_eval_monkeys.ray_shards import run_shards_on_ray
    from lm_eval_monkeys.report import metric_table
    from lm_eval_monkeys.rescore import rescore_run

    if extra.shard is not None:
        raise MonkeysError("--shards_on_ray chooses the shards itself: drop --shard")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--output_path", "-o")
    found, argv = output.parse_known_args(rest)
    if not found.output_path:
        raise MonkeysError(
            "--shards_on_ray needs --output_path RUN_DIR on storage every node sees: "
            "the shards write under RUN_DIR/shards and are merged into RUN_DIR"
        )
    for flag in ("repeats", "ks"):
        if getattr(extra, flag) is not None:
            argv += [f"--{flag}", str(getattr(extra, flag))]
    run_dir = Path(found.output_path)
    merged = run_shards_on_ray(
        argv, extra.shards_on_ray, run_dir, extra.ray_address, extra.ray_gpus_per_shard
    )
    print(
        f"{merged.shards} shards run on Ray and merged into {run_dir}: {merged.tasks} tasks, "
        f"{merged.problems} problems, {merged.samples} samples\n"
    )
    print(metric_table(rescore_run(run_dir)))


def _capture_results() -> dict:
    """Keep what lm-eval's run computes, to print it as a k-by-metric table afterwards.

    lm-eval's CLI prints its own table but returns nothing; its run command looks up
    ``lm_eval.simple_evaluate`` when it runs, so wrapping that attribute sees the results.
    """
    import lm_eval

    captured: dict = {}
    evaluate = lm_eval.simple_evaluate

    def capturing(*args: object, **kwargs: object) -> dict | None:
        output = evaluate(*args, **kwargs)
        captured["results"] = (output or {}).get("results")
        return output

    lm_eval.simple_evaluate = capturing
    return captured


def _is_run(argv: list[str]) -> bool:
    """Whether lm-eval will treat these arguments as its `run` command."""
    return bool(argv) and (argv[0] == "run" or argv[0].startswith("-"))
