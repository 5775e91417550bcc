"""Local SWE-bench runner on all 20 Lite instances of pallets/flask and pytest-dev/pytest.

    python benchmarks/bench_swebench.py [--work /var/tmp/lm-eval-monkeys-bench] [--fresh]
        [--instances ID,ID,...]

For each instance, with no spec file: the environment build (the first instance of each
environment pays it; ``--fresh`` empties the work directory first), then the gold patch
and an unrelated patch (applies, fixes nothing) graded with the environment reused: clone,
patches, environment copy, reinstall and tests in the sandbox, swebench grading. The
baseline, measured in the same run, is the same test command run by hand in a prepared
checkout (gold and test patches applied, the project installed there), unsandboxed.
Prints one row per instance and the medians; exits non-zero if any gold patch does not
resolve or any unrelated patch does.

    python benchmarks/bench_swebench.py --conformance --repos DIR --instances ID,ID,...
        [--specs FILE]

Any Lite instances whose mirrors are in ``DIR`` (named ``owner__repo``), each through
``lm-eval-monkeys verify --verifier swebench:local`` as a user runs it (gold check on):
the gold patch and the unrelated patch as two completions, one verify run per instance
(its seconds include the environment build on first use); ``--specs`` names a
``MONKEYS_SWEBENCH_SPECS`` file (none by default: the harness's specs alone). Prints one
row per instance with both statuses and the reason of any verdict that is not a
judgement; exits non-zero if an unrelated patch resolves or a verify run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from swebench_real import REPO, instances, mirrors, unrelated_patch

from lm_eval_monkeys.verifiers.swebench.environments import BUILD_BACKEND, build_env, copy_env
from lm_eval_monkeys.verifiers.swebench.local_runner import (
    LocalRunner,
    apply_patch,
    clone,
    reset_files,
)
from lm_eval_monkeys.verifiers.swebench.specs import patched_files, test_directives


def by_hand(runner: LocalRunner, instance: dict, scratch: Path) -> float:
    """Seconds of the test command alone, in a checkout prepared once (not timed)."""
    plan = runner.plan(instance)
    image = runner.environments.get(plan, runner.mirror(instance["repo"]))
    shutil.rmtree(scratch, ignore_errors=True)
    tree, venv = scratch / "tree", scratch / "venv"
    clone(runner.mirror(instance["repo"]), instance["base_commit"], tree)
    assert apply_patch(tree, instance["patch"])[0]
    reset_files(tree, instance["base_commit"], patched_files(instance["test_patch"]))
    assert apply_patch(tree, instance["test_patch"])[0]
    copy_env(image, venv)
    env = {
        **build_env(plan.interpreter),
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "SETUPTOOLS_SCM_PRETEND_VERSION": plan.version,
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
    }
    install = f'PYTHONPATH="{venv / BUILD_BACKEND}" {plan.spec.install}'
    subprocess.run(["bash", "-c", install], cwd=tree, env=env, capture_output=True, check=True)
    directives = test_directives(instance["repo"], instance["test_patch"])
    command = " ".join([plan.spec.test_cmd, *map(shlex.quote, directives)])
    start = time.perf_counter()
    subprocess.run(["bash", "-c", command], cwd=tree, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


def conformance(work: Path, repos: Path, chosen: list[dict]) -> int:
    """One verify run per instance (gold and unrelated patch); the number of failures."""
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    print("| instance | version | seconds | gold | unrelated | reason |")
    print("|---|---|---|---|---|---|")
    env = {**os.environ, "MONKEYS_SWEBENCH_REPOS": str(repos),
           "MONKEYS_SANDBOX_DIR": str(work), "MONKEYS_CACHE_DIR": str(work / "cache")}  # fmt: skip
    failures = 0
    for instance in chosen:
        mirror = repos / instance["repo"].replace("/", "__")
        patches = [instance["patch"], unrelated_patch(instance, mirror)]
        source, output = work / "conformance-in.jsonl", work / "conformance-out.jsonl"
        source.write_text("".join(json.dumps({"doc": instance, "completion": f"<patch>\n{p}"
                                              "</patch>"}) + "\n" for p in patches))  # fmt: skip
        output.unlink(missing_ok=True)
        start = time.perf_counter()
        done = subprocess.run(
            ["lm-eval-monkeys", "verify", "--task", "monkeys_swebench_lite", "--input",
             str(source), "--output", str(output), "--verifier", "swebench:local"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            failures += 1
            print(
                f"| {instance['instance_id']} | {instance['version']} | {seconds:.0f} | "
                f"verify failed: {done.stderr.strip().splitlines()[-1:]} | | |",
                flush=True,
            )
            continue
        gold, other = (json.loads(line) for line in output.open())
        failures += bool(other["correct"])
        reason = next((v["details"].get("reason", "") for v in (gold, other)
                       if v["status"] == "env_failed"), "")  # fmt: skip
        print(
            f"| {instance['instance_id']} | {instance['version']} | {seconds:.0f} | "
            f"{gold['status']} | {other['status']} | {reason[:300]} |",
            flush=True,
        )
    print(f"load average at end: {os.getloadavg()}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/lm-eval-monkeys-bench"))
    parser.add_argument("--fresh", action="store_true", help="build every environment anew")
    parser.add_argument("--instances", default="", help="comma-separated ids (default: all)")
    parser.add_argument("--conformance", action="store_true", help="through verify, any repo")
    parser.add_argument("--repos", type=Path, help="mirrors named owner__repo (--conformance)")
    parser.add_argument("--specs", help="a MONKEYS_SWEBENCH_SPECS file (--conformance)")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.work / "swebench", ignore_errors=True)
    if args.conformance:
        if args.repos is None or not args.instances:
            parser.error("--conformance needs --repos DIR and --instances ID,...")
        data = Path(os.environ.get("MONKEYS_DATA_DIR") or REPO.parent / "shared" / "data")
        lite = json.loads((data / "swebench_lite" / "test.json").read_text())
        wanted = args.instances.split(",")
        args.work.mkdir(parents=True, exist_ok=True)
        args.work.chmod(0o755)
        os.environ.pop("MONKEYS_SWEBENCH_SPECS", None)
        if args.specs:
            os.environ["MONKEYS_SWEBENCH_SPECS"] = args.specs
        sys.exit(1 if conformance(args.work, args.repos, [r for r in lite if
                                  r["instance_id"] in wanted]) else 0)  # fmt: skip
    (args.work / "mirrors").mkdir(parents=True, exist_ok=True)
    args.work.chmod(0o755)
    os.environ.pop("MONKEYS_SWEBENCH_SPECS", None)
    data = Path(os.environ.get("MONKEYS_DATA_DIR") or REPO.parent / "shared" / "data")
    chosen = [i for i in instances(data) if not args.instances or i["instance_id"] in
              args.instances.split(",")]  # fmt: skip
    runner = LocalRunner(mirrors=mirrors(args.work / "mirrors"), workdir=args.work / "swebench")
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    print("| instance | env | build s | gold s | unrelated s | by hand s | gold | unrelated |")
    print("|---|---|---|---|---|---|---|---|")
    rows, failures = [], 0
    for instance in chosen:
        plan = runner.plan(instance)
        mirror = runner.mirror(instance["repo"])
        shared = (runner.workdir / "envs" / plan.dependencies_name).exists()
        built = not (runner.workdir / "envs" / plan.name).exists()
        start = time.perf_counter()
        runner.environments.get(plan, mirror)
        build_s = time.perf_counter() - start if built else None
        start = time.perf_counter()
        gold = runner.evaluate(instance, instance["patch"])
        gold_s = time.perf_counter() - start
        start = time.perf_counter()
        other = runner.evaluate(instance, unrelated_patch(instance, mirror))
        other_s = time.perf_counter() - start
        hand_s = by_hand(runner, instance, args.work / "by-hand")
        failures += (not gold["resolved"]) + bool(other["resolved"])
        layer = plan.dependencies_name
        rows.append({"id": instance["instance_id"], "env": layer, "build_s": build_s,
                     "gold_s": gold_s, "unrelated_s": other_s, "by_hand_s": hand_s,
                     "gold": gold["status"], "unrelated": other["status"],
                     "dependencies_reused": shared})  # fmt: skip
        build = "reused" if build_s is None else f"{build_s:.0f}" + (" (+)" if shared else "")
        print(f"| {instance['instance_id']} | {layer.rsplit('-', 1)[0]} | {build} | "
              f"{gold_s:.1f} | {other_s:.1f} | {hand_s:.1f} | {gold['status']} | "
              f"{other['status']} |", flush=True)  # fmt: skip
    per_patch = statistics.median([r[k] for r in rows for k in ("gold_s", "unrelated_s")])
    hand = statistics.median([r["by_hand_s"] for r in rows])
    builds = [
        r["build_s"] for r in rows if r["build_s"] is not None and not r["dependencies_reused"]
    ]
    layers = [r["build_s"] for r in rows if r["build_s"] is not None and r["dependencies_reused"]]
    images = runner.workdir / "images"
    size = subprocess.run(["du", "-sm", str(images)], capture_output=True, text=True).stdout
    print(f"\nper patch, environment reused (median of {2 * len(rows)}): {per_patch:.1f} s")
    print(f"the same test command by hand in a prepared checkout (median): {hand:.1f} s")
    print(f"ratio: {per_patch / hand:.2f}x")
    if builds:
        print(f"environment builds, both layers: {len(builds)}, {min(builds):.0f}-"
              f"{max(builds):.0f} s, median {statistics.median(builds):.0f} s")  # fmt: skip
    if layers:
        print(f"instance layer only, dependencies reused (+): {len(layers)}, median "
              f"{statistics.median(layers):.0f} s")  # fmt: skip
    print(f"environments: {len({r['env'] for r in rows})} dependency layers, "
          f"{len(list(images.iterdir()))} images, {size.split()[0]} MB")  # fmt: skip
    print(f"load average at end: {os.getloadavg()}")
    (args.work / "bench_swebench.json").write_text(json.dumps(rows, indent=1))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
