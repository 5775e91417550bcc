"""Local SWE-bench runner on the Lite instances of pallets/flask and pytest-dev/pytest.

    python benchmarks/bench_swebench.py [--work /var/tmp/lm-eval-monkeys-bench] [--fresh]
        [--instances ID,ID,...] [--baseline-ref main] [--repeat 1]

For each instance, with no spec file: the environment build, the base commit's git
directory and the installed tree (the first instance of each environment pays them;
``--fresh`` empties the work directory first), then the gold patch
and an unrelated patch (applies, fixes nothing) graded with the environment reused: the
installed tree copied, patch applied in the sandbox, resets, test patch, the reinstall
where a patch needs it, and tests in the sandbox, swebench grading. The test command
alone, by hand (unsandboxed, in a checkout prepared once: patches applied, project
installed), is timed in the same round; each patch's seconds are also given as paired
ratios over it.
The baseline, measured in the same run on the same
environments, is the runner as it is at ``--baseline-ref`` (its ``local_runner.py``
read from git): the same two patches, alternating with this runner's, ``--repeat``
times. Prints one row per instance and round, the medians and the median of the paired
ratios; exits non-zero if any gold patch does not resolve or any unrelated patch does,
with either runner.

    python benchmarks/bench_swebench.py --conformance --repos DIR --instances ID,ID,...
        [--specs FILE] [--instances-file FILE]

Any Lite instances whose mirrors are in ``DIR`` (named ``owner__repo``), each through
``lm-eval-monkeys verify --verifier swebench:local`` as a user runs it (gold check on):
the gold patch and the unrelated patch as two completions, one verify run per instance
(its seconds include the environment build on first use); ``--specs`` names a
``MONKEYS_SWEBENCH_SPECS`` file (none by default: the harness's specs alone). Prints one
row per instance with both statuses and the reason of any verdict that is not a
judgement; exits non-zero if an unrelated patch resolves or a verify run fails.
``--instances-file`` reads the instances from a JSON list instead of the Lite data, e.g.
the one ``benchmarks/swebench_standins.py`` writes for its stand-in repositories.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from swebench_real import REPO, instances, mirrors, unrelated_patch

from lm_eval_monkeys.verifiers.swebench.environments import (
    BUILD_BACKEND,
    OFFLINE_PIP,
    build_env,
    relocate,
)
from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner, clone
from lm_eval_monkeys.verifiers.swebench.specs import test_directives


def module_at(ref: str, path: str) -> ModuleType:
    """``path`` as at ``ref``, loaded as its own module (nothing else replaced)."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:{path}"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    name = f"baseline_{Path(path).stem}"
    file = Path(tempfile.mkdtemp(prefix="monkeys-baseline-"), f"{name}.py")
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def baseline_module(ref: str) -> ModuleType:
    """The runner as at ``ref``: its ``local_runner.py``, with the environment copy of
    its ``environments.py`` (the per-patch part of that module); builds are shared."""
    module = module_at(ref, "verifiers/swebench/local_runner.py")
    module.copy_env = module_at(ref, "verifiers/swebench/environments.py").copy_env
    return module


def by_hand(runner: LocalRunner, instance: dict, scratch: Path) -> float:
    """Seconds of the test command alone, unsandboxed, in a checkout prepared once
    (gold and test patch applied, the project installed; not timed)."""
    plan = runner.plan(instance)
    image = runner.environments.get(plan, runner.mirror(instance["repo"]))
    shutil.rmtree(scratch, ignore_errors=True)
    tree, venv = scratch / "tree", scratch / "venv"
    clone(runner.base(instance), instance["base_commit"], tree)
    for patch in (instance["patch"], instance["test_patch"]):
        subprocess.run(["git", "apply", "-"], cwd=tree, input=patch, text=True, check=True)
    shutil.copytree(image, venv, symlinks=True)
    relocate(venv, image, venv)
    env = {**build_env(plan.interpreter), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
           "VIRTUAL_ENV": str(venv), "SETUPTOOLS_SCM_PRETEND_VERSION": plan.version,
           **OFFLINE_PIP, "PYTHONPATH": str(venv / BUILD_BACKEND)}  # fmt: skip
    subprocess.run(["bash", "-c", "\n".join([*plan.spec.pre_install, plan.spec.install])],
                   cwd=tree, env=env, capture_output=True, check=True)  # fmt: skip
    env.pop("PYTHONPATH")
    directives = test_directives(instance["repo"], instance["test_patch"])
    command = " ".join([plan.spec.test_cmd, *map(shlex.quote, directives)])
    start = time.perf_counter()
    subprocess.run(["bash", "-c", command], cwd=tree, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


def timed(runner: LocalRunner, instance: dict, patch: str) -> tuple[float, dict]:
    start = time.perf_counter()
    result = runner.evaluate(instance, patch)
    return time.perf_counter() - start, result


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
        # This process's own files: two runs sharing --work must not read each other's.
        source, output = (work / f"conformance-{os.getpid()}-{n}.jsonl" for n in ("in", "out"))
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
    parser.add_argument("--instances-file", type=Path, help="a JSON list (--conformance)")
    parser.add_argument("--baseline-ref", default="main", help="git ref of the baseline runner")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the four runs")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.work / "swebench", ignore_errors=True)
    if args.conformance:
        if args.repos is None or not args.instances:
            parser.error("--conformance needs --repos DIR and --instances ID,...")
        data = Path(os.environ.get("MONKEYS_DATA_DIR") or REPO.parent / "shared" / "data")
        source = args.instances_file or data / "swebench_lite" / "test.json"
        if not source.is_file():
            parser.error(f"no instances file {source}; check --instances-file")
        lite = json.loads(source.read_text())
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
    places = {"mirrors": mirrors(args.work / "mirrors"), "workdir": args.work / "swebench"}
    runner = LocalRunner(**places)
    baseline = baseline_module(args.baseline_ref).LocalRunner(**places)
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    print("| instance | env | build s | gold s | unrelated s | baseline gold s | "
          "baseline unrelated s | by hand s | gold | unrelated |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows, failures = [], 0
    for instance in chosen:
        plan = runner.plan(instance)
        mirror = runner.mirror(instance["repo"])
        shared = (runner.workdir / "envs" / plan.dependencies_name).exists()
        built = not (runner.workdir / "envs" / plan.name).exists()
        start = time.perf_counter()
        image = runner.environments.get(plan, mirror)
        # made once like the environment: the base commit's git directory, the tree
        # installed (this runner; the baseline reinstalls in every patch's run)
        runner.installed(instance, plan, image, runner.base(instance))
        build_s = time.perf_counter() - start if built else None
        unrelated = unrelated_patch(instance, mirror)
        for _ in range(args.repeat):
            gold_s, gold = timed(runner, instance, instance["patch"])
            base_gold_s, base_gold = timed(baseline, instance, instance["patch"])
            other_s, other = timed(runner, instance, unrelated)
            base_other_s, base_other = timed(baseline, instance, unrelated)
            hand_s = by_hand(runner, instance, args.work / "by-hand")
            failures += sum(not r["resolved"] for r in (gold, base_gold))
            failures += sum(bool(r["resolved"]) for r in (other, base_other))
            layer = plan.dependencies_name
            rows.append({"id": instance["instance_id"], "env": layer, "build_s": build_s,
                         "gold_s": gold_s, "unrelated_s": other_s,
                         "baseline_gold_s": base_gold_s, "baseline_unrelated_s": base_other_s,
                         "by_hand_s": hand_s,
                         "gold": gold["status"], "unrelated": other["status"],
                         "dependencies_reused": shared})  # fmt: skip
            build = "reused" if build_s is None else f"{build_s:.0f}" + (" (+)" if shared else "")
            print(f"| {instance['instance_id']} | {layer.rsplit('-', 1)[0]} | {build} | "
                  f"{gold_s:.1f} | {other_s:.1f} | {base_gold_s:.1f} | {base_other_s:.1f} | "
                  f"{hand_s:.1f} | "
                  f"{gold['status']} | {other['status']} |", flush=True)  # fmt: skip
            build_s = None
    per_patch = statistics.median([r[k] for r in rows for k in ("gold_s", "unrelated_s")])
    keys = ("baseline_gold_s", "baseline_unrelated_s")
    before = statistics.median([r[k] for r in rows for k in keys])
    builds = [
        r["build_s"] for r in rows if r["build_s"] is not None and not r["dependencies_reused"]
    ]
    layers = [r["build_s"] for r in rows if r["build_s"] is not None and r["dependencies_reused"]]
    images = runner.workdir / "images"
    size = subprocess.run(["du", "-sm", str(images)], capture_output=True, text=True).stdout
    print(f"\nper patch, environment reused (median of {2 * len(rows)}): {per_patch:.1f} s")
    print(f"per patch, the runner at {args.baseline_ref} (median of {2 * len(rows)}): "
          f"{before:.1f} s")  # fmt: skip
    paired = [r[k] / r[f"baseline_{k}"] for r in rows for k in ("gold_s", "unrelated_s")]
    print(f"ratio of the medians: {per_patch / before:.2f}x; median of the {len(paired)} "
          f"paired ratios: {statistics.median(paired):.2f}x")  # fmt: skip
    hand = statistics.median([r["by_hand_s"] for r in rows])
    print(f"the test command by hand (median of {len(rows)}): {hand:.1f} s; per patch over by "
          f"hand: {per_patch / hand:.2f}x, the runner at {args.baseline_ref}: "
          f"{before / hand:.2f}x")  # fmt: skip
    for prefix, label in (("", "this runner"), ("baseline_", f"the runner at {args.baseline_ref}")):
        over = [r[f"{prefix}{k}"] / r["by_hand_s"] for r in rows for k in ("gold_s", "unrelated_s")]
        print(f"{label} over the test command by hand, same round: median of the "
              f"{len(over)} paired ratios {statistics.median(over):.2f}x")  # fmt: skip
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
