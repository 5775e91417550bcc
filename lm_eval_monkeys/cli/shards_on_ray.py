"""A sharded run placed on a Ray cluster: one Ray task per shard, then one merged store.

``lm-eval-monkeys ... --shards_on_ray N --output_path RUN_DIR`` runs the same command
with ``--shard i/N --output_path RUN_DIR/shards/i-of-N`` as N Ray tasks, each a
subprocess on whichever node Ray places it (with ``--ray_gpus_per_shard`` GPUs), then
merges the shards into RUN_DIR. RUN_DIR must be on storage every node sees. Paths mean
what they mean where the command was typed: RUN_DIR and the MONKEYS_* paths are made
absolute, and each shard runs in the driver's working directory when its node has it (so
relative paths in other flags hold too on shared storage). A shard whose
worker or node dies is rerun by Ray and resumes from its own store; a shard that fails
stops the run with its name and log, and rerunning the command resumes every shard.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.ray_connect import connect
from lm_eval_monkeys.store.shards import Merged, merge_shards

SHARD_LOG = "shard.log"
_RETRIES = 3


def run_shards_on_ray(
    argv: list[str], count: int, run_dir: Path, address: str | None, gpus: float = 0.0
) -> Merged:
    """Run ``argv`` (the run command without --output_path) as ``count`` shards on the
    cluster at ``address`` and merge them into ``run_dir``."""
    if count < 1:
        raise MonkeysError(f"--shards_on_ray must be at least 1, got {count}")
    ray = connect(address, "--shards_on_ray")
    # The driver's MONKEYS_* settings (data directory, caches) hold on every node too,
    # relative paths among them resolved here.
    env = {
        k: os.path.abspath(v) if v and os.path.exists(v) else v
        for k, v in os.environ.items()
        if k.startswith("MONKEYS_")
    }
    run_dir = run_dir.expanduser().absolute()
    cwd = os.getcwd()
    shard_dirs = [run_dir / "shards" / f"{i}-of-{count}" for i in range(count)]
    task = ray.remote(run_shard).options(
        num_cpus=1, num_gpus=gpus, max_retries=_RETRIES, retry_exceptions=False
    )
    try:
        pending = {
            task.remote([*argv, "--shard", f"{i}/{count}", "--output_path", str(d)], env, cwd): i
            for i, d in enumerate(shard_dirs)
        }
        failed = []
        with tqdm(total=count, desc="shards on ray", unit="shard") as bar:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ref)
                try:
                    code = ray.get(ref)
                except ray.exceptions.RayError as err:  # lost more often than retried
                    code = f"lost {_RETRIES + 1} times with its worker ({type(err).__name__})"
                if code != 0:
                    failed.append(f"shard {index}/{count}: {code}, log {shard_dirs[index]}")
                bar.update()
    finally:
        ray.shutdown()
    if failed:
        raise MonkeysError(
            f"{len(failed)} of {count} shards failed ({'; '.join(failed)}); the samples "
            "they wrote are kept: fix the cause and rerun the same command to resume"
        )
    return merge_shards(shard_dirs, run_dir)


def run_shard(argv: list[str], env: dict[str, str], cwd: str | None = None) -> int | str:
    """On a worker: one shard's run command as a subprocess, logged in its directory, in
    the driver's working directory ``cwd`` when this node has it; its exit status, or the
    last line of its log when it failed."""
    output = Path(argv[argv.index("--output_path") + 1])
    output.mkdir(parents=True, exist_ok=True)
    log = output / SHARD_LOG
    command = [sys.executable, "-c", "from lm_eval_monkeys.cli import main; main()", *argv]
    with open(log, "a") as out:
        done = subprocess.run(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=cwd if cwd and os.path.isdir(cwd) else None,
        )
    if done.returncode == 0:
        return 0
    lines = log.read_text(errors="replace").strip().splitlines()
    return f"exit {done.returncode}: {lines[-1] if lines else 'no output'}"


def run_from_cli(extra: argparse.Namespace, rest: list[str]) -> None:
    """The run as ``--shards_on_ray`` shards on a Ray cluster, merged into --output_path."""
    from lm_eval_monkeys.cli.table import metric_table
    from lm_eval_monkeys.scoring.rescore import rescore_run

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
    run_dir = Path(found.output_path).expanduser().absolute()
    merged = run_shards_on_ray(
        argv, extra.shards_on_ray, run_dir, extra.ray_address, extra.ray_gpus_per_shard
    )
    print(
        f"{merged.shards} shards run on Ray and merged into {run_dir}: {merged.tasks} tasks, "
        f"{merged.problems} problems, {merged.samples} samples\n"
    )
    print(metric_table(rescore_run(run_dir)))
