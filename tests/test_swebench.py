"""The SWE-bench checker and its local runner, on a real git repository built here.

The repository ``acme/calc`` (tests/swebench_toy.py) has a bug (``add`` subtracts) in a
src-layout package whose environment setup commit already holds the fix; the instance's
test patch adds the failing test ``test_add``. Patches run through real clones, the
harness's apply fallbacks, a real virtualenv (pytest from PyPI), the reinstall and pytest
inside the bubblewrap sandbox, and swebench's own log parser and grading functions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import run_cli
from lm_eval.tasks import TaskManager
from swebench_toy import (
    BREAKS_NEG,
    CALC,
    CHEATS,
    FLAKY_GOLD,
    FUZZY,
    GOLD,
    MALFORMED,
    SPEC,
    TESTS,
    WRONG,
    environment,
    git,
    make_toy,
)

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.store.verdicts import VerdictFile
from lm_eval_monkeys.task_configs import TASK_DIR
from lm_eval_monkeys.tasks.data import gold_files, oracle_prompt
from lm_eval_monkeys.verifiers.swebench.grading import SWEbenchChecker, extract_patch, swebench
from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (README install command)"
)


@pytest.fixture(scope="module")
def swe(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("swebench")
    # Not under /tmp: bwrap gives the sandbox an empty one.
    sandbox_dir = Path(tempfile.mkdtemp(prefix="monkeys-toy-", dir="/var/tmp"))
    sandbox_dir.chmod(0o755)
    instance, env = make_toy(root, sandbox_dir)
    with environment(env):
        yield {"instance": instance, "root": root, "work": sandbox_dir / "swebench", "env": env}
    shutil.rmtree(sandbox_dir, ignore_errors=True)


def checker(gold: int = 0) -> SWEbenchChecker:
    return swebench(f"local,gold={gold}")


def test_patch_extraction() -> None:
    assert extract_patch(f"Here is the fix.\n<patch>\n{GOLD}</patch>\nDone.") == GOLD
    assert extract_patch(f"```diff\n{GOLD}```") == GOLD
    assert extract_patch(f"I changed calc.py:\n{GOLD}\n\n") == GOLD
    # A last hunk ending in a blank context line (" "), as sphinx-doc__sphinx-8721's
    # gold patch does: kept, or the patch no longer applies as written.
    blank_end = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n \n"
    assert extract_patch(f"<patch>\n{blank_end}</patch>") == blank_end
    assert extract_patch("") is None
    assert extract_patch("The bug is in add(); it should use +.") is None
    assert extract_patch("```diff\n--- a/calc.py\n+++ b/calc.py\n```") is None  # no hunk


def test_local_runner_grades_the_patched_tree(swe: dict) -> None:
    check = checker()
    target = check.target(swe["instance"])
    patches = [GOLD, WRONG, BREAKS_NEG, MALFORMED, FUZZY, CHEATS]
    verdicts = dict(zip(patches, check.judge_many(patches, target), strict=True))
    assert verdicts[GOLD].correct and verdicts[GOLD].status == "resolved"
    # The setup commit holds the fix: only the patched tree's install makes WRONG fail.
    assert (verdicts[WRONG].correct, verdicts[WRONG].status) == (False, "tests_failed")
    assert verdicts[WRONG].details["failing_tests"] == ["tests/test_calc.py::test_add"]
    assert verdicts[BREAKS_NEG].details["pass_to_pass_failed"] == ["tests/test_calc.py::test_neg"]
    assert not verdicts[BREAKS_NEG].correct
    assert (verdicts[MALFORMED].correct, verdicts[MALFORMED].status) == (False, "patch_failed")
    assert "patch --batch" in Path(verdicts[MALFORMED].details["log"]).read_text()
    assert verdicts[FUZZY].correct  # applied by a fallback, like the harness
    assert verdicts[CHEATS].status == "tests_failed"  # its edit of the tests was undone
    # Each distinct patch keeps its own test log.
    logs = {v.details["log"] for v in verdicts.values()}
    assert len(logs) == len(patches)
    assert "PASSED tests/test_calc.py::test_add" in Path(verdicts[GOLD].details["log"]).read_text()
    # One environment (two layers), reused by every patch; no run directory left
    # behind, and nothing registered in the mirror.
    assert len(list((swe["work"] / "images").iterdir())) == 2  # dependencies, instance
    assert not list((swe["work"] / "runs").iterdir())
    mirror = swe["root"] / "mirrors" / "acme__calc"
    assert git(mirror, "worktree", "list").count("\n") == 0


def test_identical_patches_run_once_and_verdicts_persist(swe: dict) -> None:
    completions = [f"<patch>\n{GOLD}</patch>", f"```diff\n{GOLD}\n```", WRONG, "no diff here"]
    check = checker(gold=1)
    runner = LocalRunner()
    runs: list[str] = []
    evaluate = runner.evaluate
    check._runner = runner
    runner.evaluate = lambda instance, patch: runs.append(patch) or evaluate(instance, patch)
    cache = VerdictFile(swe["root"] / "verdicts.sqlite")
    scored = score_completions(check, swe["instance"], completions, cache.table)
    assert scored.correct == [True, True, False, False]
    assert scored.answers[3] is None
    assert runs.count(GOLD) == 2  # the gold check, then once for both completions
    # A fresh checker (a rescore) reads every verdict from the cache: no patch runs.
    fresh = checker(gold=1)
    fresh._runner = LocalRunner()
    fresh._runner.evaluate = lambda instance, patch: pytest.fail("ran a patch again")
    again = score_completions(fresh, swe["instance"], completions, cache.table)
    assert again.verdicts == scored.verdicts


def test_gold_check_flaky_and_broken_setups(swe: dict, caplog: pytest.LogCaptureFixture) -> None:
    flaky = {**swe["instance"], "instance_id": "acme__calc-2", "patch": FLAKY_GOLD}
    check = checker(gold=2)
    with caplog.at_level("WARNING"):
        [verdict] = check.judge_many([GOLD], check.target(flaky))
    assert check.flaky == {"acme__calc-2": "gold patch resolved 1 of 2 runs"}
    assert verdict.correct and verdict.details["flaky"] == "gold patch resolved 1 of 2 runs"
    assert "acme__calc-2 is flaky" in caplog.text
    # A gold patch that never resolves means the setup is broken: even the right patch
    # gets env_failed, not final (never cached), rather than a verdict.
    broken = {**swe["instance"], "instance_id": "acme__calc-3", "patch": WRONG}
    check = checker(gold=1)
    verdicts = check.judge_many([GOLD, WRONG], check.target(broken))
    assert [(v.correct, v.status, v.final) for v in verdicts] == [(False, "env_failed", False)] * 2
    assert "resolved 0 of 1 runs: the setup is broken" in verdicts[0].details["reason"]


def test_failed_build_is_env_failed_and_leaves_nothing(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = tmp_path / "specs.json"
    bad = {**SPEC, "pip_packages": ["lm-eval-monkeys-no-such-package==0.0.1"]}
    specs.write_text(json.dumps({"acme/calc": {"default": bad}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    check = checker()
    [verdict] = check.judge_many([GOLD], check.target(swe["instance"]))
    assert (verdict.correct, verdict.status, verdict.final) == (False, "env_failed", False)
    assert "failed at pip_packages" in verdict.details["reason"]
    log = Path(verdict.details["log"])
    assert "lm-eval-monkeys-no-such-package" in log.read_text()
    envs = swe["work"] / "envs"
    assert not [p for p in envs.iterdir() if p.name.startswith(".build-")]


def test_failed_build_is_not_retried_per_patch(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three patches of an instance whose build fails: one build, its log kept."""
    specs, attempts = tmp_path / "specs.json", tmp_path / "attempts"
    fails = {**SPEC, "pre_install": [f"echo attempt >> {attempts}; exit 3"]}
    specs.write_text(json.dumps({"acme/calc": {"default": fails}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    check = checker()
    verdicts = check.judge_many([GOLD, WRONG, FUZZY], check.target(swe["instance"]))
    assert {(v.status, v.final) for v in verdicts} == {("env_failed", False)}
    assert attempts.read_text() == "attempt\n"
    log = Path(verdicts[2].details["log"])
    assert "failed at pre_install (exit 3)" in verdicts[2].details["reason"]
    assert f"$ echo attempt >> {attempts}; exit 3" in log.read_text()


def test_no_instance_ends_the_run(swe: dict, tmp_path: Path) -> None:
    """verify over instances that cannot be planned (no spec, a conda spec, a Python
    that is not here, no mirror) beside one that can: each gets env_failed naming its
    reason, not final; the good one is judged; the run succeeds."""
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({
        "acme/calc": {"default": SPEC},
        "acme/conda": {"default": {**SPEC, "packages": "environment.yml",
                                   "requirements_paths": ["environment.yml"]}},
        "acme/ancient": {"default": {**SPEC, "python": "2.1"}},
        "acme/nowhere": {"default": SPEC},
    }))  # fmt: skip
    mirrors = swe["root"] / "mirrors"
    for name in ("acme__conda", "acme__ancient"):  # the toy's history under other names
        (mirrors / name).unlink(missing_ok=True)
        (mirrors / name).symlink_to(mirrors / "acme__calc")
    good = swe["instance"]
    docs = [
        {**good, "repo": "acme/unknown", "instance_id": "acme__unknown-1"},
        {**good, "repo": "acme/conda", "instance_id": "acme__conda-1"},
        {**good, "repo": "acme/ancient", "instance_id": "acme__ancient-1"},
        {**good, "repo": "acme/nowhere", "instance_id": "acme__nowhere-1"},
        good,
    ]
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"doc": d, "completion": GOLD}) + "\n" for d in docs))
    done = run_cli("verify", "--task", "monkeys_swebench_lite", "--input", str(source),
                   "--output", str(output), "--verifier", "swebench:local,gold=0",
                   env={**swe["env"], "MONKEYS_SWEBENCH_SPECS": str(specs)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in output.open()]
    assert [line["status"] for line in lines] == ["env_failed"] * 4 + ["resolved"]
    reasons = [line["details"]["reason"] for line in lines[:4]]
    assert "no SWE-bench spec for acme/unknown" in reasons[0]
    assert "none of ['environment.yml'] at" in reasons[1]
    assert "needs Python 2.1" in reasons[2]
    assert "no local mirror of acme/nowhere" in reasons[3]
    assert "Traceback" not in done.stderr


def test_verdict_key_follows_the_spec(swe: dict, tmp_path: Path, monkeypatch) -> None:
    before = checker().target(swe["instance"])
    assert checker().target(swe["instance"]) == before  # stable across checkers
    specs = tmp_path / "specs.json"
    edited = {**SPEC, "test_cmd": "pytest -rA -p no:cacheprovider -x"}
    specs.write_text(json.dumps({"acme/calc": {"default": edited}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    assert checker().target(swe["instance"]) != before


def test_killed_build_leaves_no_environment(swe: dict, tmp_path: Path) -> None:
    """kill -9 during a build: no environment appears, the next runner cleans up."""
    specs, slow = tmp_path / "specs.json", tmp_path / "slow"
    slow.touch()
    waits = {**SPEC, "pre_install": [f"test ! -e {slow} || sleep 600"]}
    specs.write_text(json.dumps({"acme/calc": {"default": waits}}))
    env = {**os.environ, **swe["env"], "MONKEYS_SWEBENCH_SPECS": str(specs)}
    script = (
        "import json, sys\n"
        "from lm_eval_monkeys.verifiers.swebench.local_runner import LocalRunner\n"
        "instance = json.loads(sys.argv[1])\n"
        "LocalRunner().evaluate(instance, instance['patch'])\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(swe["instance"])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    envs = swe["work"] / "envs"
    deadline = time.monotonic() + 240
    while not any(envs.glob(".build-*/src")):  # the instance layer reached pre_install
        assert time.monotonic() < deadline and child.poll() is None, "the build never started"
        time.sleep(0.5)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    os.environ["MONKEYS_SWEBENCH_SPECS"] = str(specs)
    try:
        name = LocalRunner().plan(swe["instance"]).name  # a new runner removes the wreck
        assert not (envs / name).exists()
        assert not list(envs.glob(".build-*"))
        slow.unlink()  # the same environment now builds, and resolves the gold patch
        assert LocalRunner().evaluate(swe["instance"], GOLD)["resolved"]
        assert (envs / name).is_dir()
    finally:
        os.environ["MONKEYS_SWEBENCH_SPECS"] = swe["env"]["MONKEYS_SWEBENCH_SPECS"]


def test_clear_errors_for_missing_setup(swe: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    check = checker()
    other = {**swe["instance"], "repo": "acme/unknown", "instance_id": "acme__unknown-1"}
    [verdict] = check.judge_many([GOLD], check.target(other))
    assert (verdict.status, verdict.final) == ("env_failed", False)
    assert "no SWE-bench spec for acme/unknown 1.0" in verdict.details["reason"]
    old = {**swe["instance"], "instance_id": "acme__calc-9"}
    specs = Path(swe["env"]["MONKEYS_SWEBENCH_SPECS"]).with_name("old-python.json")
    specs.write_text(json.dumps({"acme/calc": {"default": {**SPEC, "python": "2.1"}}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    check = checker()
    [verdict] = check.judge_many([GOLD], check.target(old))
    assert "needs Python 2.1" in verdict.details["reason"]
    assert "uv python install 2.1" in verdict.details["reason"]
    monkeypatch.setenv("MONKEYS_SANDBOX_DIR", "/tmp/monkeys-under-tmp")
    with pytest.raises(MonkeysError, match="under /tmp"):
        LocalRunner()
    monkeypatch.setenv("MONKEYS_SWEBENCH_REPOS", str(swe["root"] / "nowhere"))
    with pytest.raises(MonkeysError, match="MONKEYS_SWEBENCH_REPOS"):
        LocalRunner()
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(MonkeysError, match="Docker daemon"):
        swebench("docker").runner  # noqa: B018
    with pytest.raises(MonkeysError, match="choose swebench"):
        swebench("podman")
    with pytest.raises(MonkeysError, match="use gold=N"):
        swebench("local,golden=2")


def test_verify_command_reports_status(swe: dict, tmp_path: Path) -> None:
    records = [
        {"doc": swe["instance"], "completion": f"<patch>\n{GOLD}</patch>"},
        {"doc": swe["instance"], "completion": f"<patch>\n{WRONG}</patch>"},
        {"doc": swe["instance"], "completion": "Sorry, I cannot produce a patch."},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    output = tmp_path / "out.jsonl"
    done = run_cli("verify", "--task", "monkeys_swebench_lite", "--input", str(source),
                   "--output", str(output), "--verifier", "swebench:local",
                   env=swe["env"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in output.open()]
    assert [line["correct"] for line in lines] == [True, False, False]
    assert [line["status"] for line in lines[:2]] == ["resolved", "tests_failed"]
    assert lines[1]["details"]["failing_tests"] == ["tests/test_calc.py::test_add"]
    assert Path(lines[1]["details"]["log"]).is_file()


def test_task_builds_oracle_prompts(swe: dict) -> None:
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    task = manager.load("monkeys_swebench_lite")["tasks"]["monkeys_swebench_lite"]
    docs = task.eval_docs
    assert len(docs) == 300
    # The Lite repositories have no mirror here: the files are named, contents missing.
    assert docs[0]["problem_statement"].strip()[:200] in docs[0]["text"]
    assert docs[0]["text"].endswith("<patch>\n")
    assert "contents not available]" in docs[0]["text"]
    assert task.config.generation_kwargs["until"] == ["</patch>"]
    assert task.config.metadata["verifier"] == "swebench"
    # With a mirror, the prompt shows each file the gold patch edits at base_commit.
    toy = swe["instance"]
    prompt = oracle_prompt(toy, gold_files(toy, os.environ["MONKEYS_SWEBENCH_REPOS"]))
    assert "[start of src/calc/__init__.py]\n1 def add(a, b):\n2     return a - b\n" in prompt
    assert "tests/test_calc.py" not in prompt  # test files are not shown


def new_test_file(name: str, code: str) -> str:
    """A test-patch hunk creating ``tests/<name>`` with ``code``."""
    lines = code.splitlines()
    head = f"diff --git a/tests/{name} b/tests/{name}\nnew file mode 100644\n"
    return (f"{head}--- /dev/null\n+++ b/tests/{name}\n@@ -0,0 +1,{len(lines)} @@\n"
            + "".join(f"+{line}\n" for line in lines))  # fmt: skip


def with_test(instance: dict, instance_id: str, name: str, code: str, test: str) -> dict:
    """The toy instance with one more PASS_TO_PASS test, in a new file."""
    p2p = [*json.loads(instance["PASS_TO_PASS"]), f"tests/{name}::{test}"]
    return {**instance, "instance_id": instance_id, "PASS_TO_PASS": json.dumps(p2p),
            "test_patch": instance["test_patch"] + new_test_file(name, code)}  # fmt: skip


ONLINE_TEST = """import urllib.request


def test_fetch():
    urllib.request.urlopen("http://httpbin.org/get", timeout=20).read()
"""


def test_tests_that_need_the_network_are_named(swe: dict) -> None:
    """A gold patch failing only because a test fetches a URL: the verdict says which
    test, which host and what to enable, not "broken setup". (The sandbox has no network:
    nothing is fetched.)"""
    online = with_test(swe["instance"], "acme__calc-net", "test_online.py", ONLINE_TEST,
                       "test_fetch")  # fmt: skip
    check = checker(gold=1)
    verdicts = check.judge_many([GOLD, WRONG], check.target(online))
    assert {(v.status, v.final) for v in verdicts} == {("env_failed", False)}
    reason = verdicts[0].details["reason"]
    assert "1 of its tests need the network (tests/test_online.py::test_fetch" in reason
    assert "hosts: httpbin.org" in reason
    assert "MONKEYS_SWEBENCH_NETWORK=acme/calc" in reason
    assert "setup is broken" not in reason
    gold = verdicts[0].details["gold"]
    assert gold["needs_network"] == {"tests": ["tests/test_online.py::test_fetch"],
                                     "hosts": ["httpbin.org"], "allowed": False}  # fmt: skip
    # A test failing for another reason is not called a network problem.
    check = checker()
    [wrong] = check.judge_many([WRONG], check.target(swe["instance"]))
    assert "needs_network" not in wrong.details


HTTPBIN_TEST = """import os
import urllib.request


def test_fetch():
    url = os.environ.get("HTTPBIN_URL", "http://httpbin.org/") + "get"
    assert urllib.request.urlopen(url, timeout=20).read() == b"{}"
"""


def test_a_local_httpbin_serves_the_network_tests_of_an_opted_in_repo(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psf/requests' tests read ``HTTPBIN_URL``: with the repository opted in to the
    network and ``eval_commands`` pointing it at a server on this machine, they run
    without the internet, and the gold patch resolves (not opted in, the sandbox has no
    network: test_tests_that_need_the_network_are_named)."""
    import http.server
    import threading

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "get").write_text("{}")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=tmp_path / "site")  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    spec = {**SPEC, "eval_commands": [f"export HTTPBIN_URL={url}"]}
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"acme/calc": {"default": spec}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    online = with_test(swe["instance"], "acme__calc-httpbin", "test_online.py", HTTPBIN_TEST,
                       "test_fetch")  # fmt: skip
    # A test that names a host directly (as some of requests' name httpbin.org): the
    # network is allowed, the host is still out of reach, and the reason says so.
    direct = HTTPBIN_TEST.replace('os.environ.get("HTTPBIN_URL", "http://httpbin.org/")',
                                  '"http://httpbin.invalid/"')  # fmt: skip
    unreachable = with_test(swe["instance"], "acme__calc-direct", "test_online.py", direct,
                            "test_fetch")  # fmt: skip
    monkeypatch.setenv("MONKEYS_SWEBENCH_NETWORK", "acme/calc")
    try:
        check = checker(gold=1)
        gold, wrong = check.judge_many([GOLD, WRONG], check.target(online))
        [out_of_reach] = check.judge_many([GOLD], check.target(unreachable))
    finally:
        server.shutdown()
    assert (out_of_reach.status, out_of_reach.final) == ("env_failed", False)
    reason = out_of_reach.details["reason"]
    assert "1 of its tests need the network (tests/test_online.py::test_fetch" in reason
    assert "hosts: httpbin.invalid), which this machine cannot reach" in reason
    assert (gold.correct, gold.status) == (True, "resolved"), gold.details
    assert (wrong.correct, wrong.status) == (False, "tests_failed")
    assert wrong.details["failing_tests"] == ["tests/test_calc.py::test_add"]


SKIPPING_TEST = """import pytest


def test_typesets():
    pytest.skip("latex could not be found")
"""


def test_a_broken_setup_names_why_listed_tests_were_skipped(swe: dict) -> None:
    """A listed test that the host cannot run skips (matplotlib's without TeX or
    Ghostscript): the gold check's reason gives pytest's skip reason, so the user knows
    what to install, not only that the setup is broken."""
    skipping = with_test(swe["instance"], "acme__calc-skips", "test_tex.py", SKIPPING_TEST,
                         "test_typesets")  # fmt: skip
    check = checker(gold=1)
    [verdict] = check.judge_many([GOLD], check.target(skipping))
    assert (verdict.status, verdict.final) == ("env_failed", False)
    reason = verdict.details["reason"]
    assert "the setup is broken" in reason
    assert "listed tests were skipped: latex could not be found" in reason


def test_a_patch_cannot_pass_its_failure_off_as_the_network(swe: dict) -> None:
    """A wrong patch whose failure reads like a missing network: still a final
    ``tests_failed`` (only the trusted gold patch's failures can make an instance
    ``env_failed``)."""
    error = "OSError('[Errno -3] Temporary failure in name resolution host=httpbin.org')"
    mimic = WRONG.replace("+    return a * b", f"+    raise {error}")
    check = checker(gold=1)
    [verdict] = check.judge_many([mimic], check.target(swe["instance"]))
    assert (verdict.correct, verdict.status, verdict.final) == (False, "tests_failed", True)
    assert verdict.details["fail_to_pass_failed"] == ["tests/test_calc.py::test_add"]


LOCALE_TEST = """import locale


def test_utf8_locale():
    locale.setlocale(locale.LC_ALL, "")
    assert locale.nl_langinfo(locale.CODESET) == "UTF-8"
"""


def test_djangos_locale_step_gives_utf8_without_writing_etc(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Django 3.0's eval commands (locale-gen into /etc, then en_US.UTF-8): the tests run
    in a UTF-8 locale that exists, and /etc is untouched."""
    from lm_eval_monkeys.verifiers.swebench.specs import spec_for

    django = spec_for("django/django", "3.0").eval_commands
    assert any("locale-gen" in command for command in django)
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"acme/calc": {"default": {**SPEC, "eval_commands": django}}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    before = {p: p.read_bytes() for p in map(Path, ("/etc/locale.gen",)) if p.is_file()}
    utf8 = with_test(swe["instance"], "acme__calc-locale", "test_locale.py", LOCALE_TEST,
                     "test_utf8_locale")  # fmt: skip
    check = checker()
    [verdict] = check.judge_many([GOLD], check.target(utf8))
    assert (verdict.correct, verdict.status) == (True, "resolved"), verdict.details
    assert {p: p.read_bytes() for p in before} == before


def test_builds_ignore_the_hosts_pip_setup(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's pip config and PIP_* variables say "no index": the build uses PyPI,
    upgrades pip first, and resolves; MONKEYS_SWEBENCH_PIP_CONFIG is the one file read."""
    hostile = tmp_path / "host-pip.conf"
    hostile.write_text("[global]\nno-index = true\nindex-url = http://127.0.0.1:9/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(hostile))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    specs = tmp_path / "specs.json"
    own = {**SPEC, "pip_packages": ["pytest", "iniconfig"]}  # an environment of its own
    specs.write_text(json.dumps({"acme/calc": {"default": own}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    check = checker()
    [verdict] = check.judge_many([GOLD], check.target(swe["instance"]))
    assert verdict.status == "resolved", verdict.details
    runner = check.runner
    plan = runner.plan(swe["instance"])
    log = runner.environments.log_path(plan.dependencies_name).read_text()
    assert log.index("'install', '--upgrade', 'pip']") < log.index("'pytest', 'iniconfig']")
    # A mirror named by MONKEYS_SWEBENCH_PIP_CONFIG is used (here one that refuses).
    mirror = tmp_path / "mirror.conf"
    mirror.write_text("[global]\nindex-url = http://127.0.0.1:9/simple\nretries = 0\n")
    monkeypatch.setenv("MONKEYS_SWEBENCH_PIP_CONFIG", str(mirror))
    unbuilt = {**own, "pip_packages": ["pytest", "packaging"]}  # not built yet
    specs.write_text(json.dumps({"acme/calc": {"default": unbuilt}}))
    check = checker()
    [verdict] = check.judge_many([GOLD], check.target(swe["instance"]))
    assert verdict.status == "env_failed" and "failed at pip_packages" in verdict.details["reason"]
    assert "127.0.0.1" in Path(verdict.details["log"]).read_text()
    (tmp_path / "bad.conf").write_text("index-url without a section\n")
    monkeypatch.setenv("MONKEYS_SWEBENCH_PIP_CONFIG", str(tmp_path / "bad.conf"))
    with pytest.raises(MonkeysError, match=r"MONKEYS_SWEBENCH_PIP_CONFIG=.*not a readable"):
        LocalRunner()


LEGACY_SETUP = (
    "from setuptools import setup\n\nsetup(name='legacy', version='1.0', py_modules=['legacy'])\n"
)


def test_pip_keeps_the_options_the_specs_install_commands_use() -> None:
    """scikit-learn's install runs pip with --no-use-pep517, which pip 25.3 dropped ("no
    such option"): its environments get pip 25.2; others the newest their Python runs."""
    from lm_eval_monkeys.verifiers.swebench.environments import LEGACY_OPTION, pip_upgrade
    from lm_eval_monkeys.verifiers.swebench.specs import spec_for

    sklearn = spec_for("scikit-learn/scikit-learn", "1.3", user_file="")
    assert LEGACY_OPTION in sklearn.install
    assert pip_upgrade("3.9.18", legacy=True) == "pip==25.2"
    assert pip_upgrade("3.6.15", legacy=True) == "pip==21.3.1"  # never newer than 3.6 runs
    assert pip_upgrade("3.11.7") == "pip"


def test_shipped_spec_fixes_apply_before_the_users_overrides(tmp_path: Path) -> None:
    """sphinx 3.x's harness spec builds with today's docutils, which no longer has
    ``docutils.utils.roman`` (every test: "No module named 'roman'"): the runner appends
    ``docutils<0.18`` from spec_fixes.json; pylint 2.14's editable install is set to
    setuptools' compat mode; versions not listed keep the harness's spec, and a user's
    field replaces the fixed one."""
    from dataclasses import fields

    from lm_eval_monkeys.verifiers.swebench.specs import FIXES, RepoSpec, spec_fixes, spec_for

    fixed = spec_for("sphinx-doc/sphinx", "3.5", user_file="")
    assert fixed.pip_packages[-1] == "docutils<0.18"
    assert fixed.source.endswith(f"+ {FIXES.name}")
    plain = spec_for("sphinx-doc/sphinx", "5.0", user_file="")
    assert not any(p.startswith("docutils") for p in plain.pip_packages)
    user = tmp_path / "specs.json"
    user.write_text(json.dumps({"sphinx-doc/sphinx": {"3.5": {"pip_packages": ["tox"]}}}))
    assert spec_for("sphinx-doc/sphinx", "3.5", user_file=str(user)).pip_packages == ("tox",)
    pylint = spec_for("pylint-dev/pylint", "2.14", user_file="")
    assert pylint.install.endswith(" --config-settings editable_mode=compat")
    reasons = json.loads(FIXES.read_text())["reasons"]
    lists = {f.name for f in fields(RepoSpec) if f.type.startswith("tuple")}
    strings = {f.name for f in fields(RepoSpec) if f.type == "str"}
    for versions in spec_fixes().values():
        for fix in versions.values():
            assert fix["why"] in reasons and set(fix) <= {"append", "set", "why"}
            assert set(fix.get("append", {})) <= lists and set(fix.get("set", {})) <= strings


def test_editable_install_without_build_editable_hook_gets_the_legacy_pip(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pylint 2.15's tree pins its build backend to setuptools~=62.6, which has no
    ``build_editable`` hook (PEP 660, setuptools 64): today's pip refuses ``pip install
    -e .`` ("missing the 'build_editable' hook"; pip 25.3 dropped the ``setup.py
    develop`` fallback). The instance layer then gets pip 25.2, the layer below keeps the
    newest, and the patched tree's offline reinstall works: the gold patch resolves."""
    pins = '"setuptools~=62.6", "wheel~=0.37.1"'  # pylint 2.15's
    pre_install = f"sed -i 's/\"setuptools>=61\"/{pins}/' pyproject.toml && touch setup.cfg"
    spec = {**SPEC, "pre_install": [pre_install]}
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"acme/calc": {"default": spec}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    check = checker()
    gold, wrong = check.judge_many([GOLD, WRONG], check.target(swe["instance"]))
    assert (gold.correct, gold.status) == (True, "resolved"), Path(gold.details["log"]).read_text()
    assert (wrong.correct, wrong.status) == (False, "tests_failed"), wrong.details
    runner = check.runner
    plan = runner.plan(swe["instance"])
    pips = {}
    for name in (plan.dependencies_name, plan.name):
        python = runner.workdir / "envs" / name / "bin" / "python"
        pips[name] = subprocess.run([str(python), "-m", "pip", "--version"],
                                    env={**os.environ, **plan.interpreter.env()},
                                    capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert pips[plan.name].startswith("pip 25.2 ")
    assert not pips[plan.dependencies_name].startswith("pip 25.2 ")
    build_log = runner.environments.log_path(plan.name).read_text()
    assert "no build_editable hook: pip==25.2" in build_log


def test_a_linked_interpreter_lets_extensions_link_its_libpython(swe: dict, tmp_path: Path) -> None:
    """pyenv's Python under a 0700 /root is run from its copy in the sandbox directory, but
    its sysconfig still passes /root's lib as ``-L``, which the sandbox hides; builds that
    link extensions against libpython (numpy.distutils does, for scikit-learn 0.20-0.22 on
    Python 3.6) find it in the copy, through the interpreter's environment."""
    from lm_eval_monkeys.verifiers.swebench.interpreters import find_python

    try:
        interpreter = find_python("3.9", swe["work"])
    except MonkeysError as err:
        pytest.skip(str(err))
    if not interpreter.library_path:
        pytest.skip("this Python is usable where it is installed: nothing is copied")
    (tmp_path / "ext.c").write_text("int answer(void) { return 42; }\n")
    hidden = tmp_path / "hidden"  # stands for the installation's lib, hidden in the sandbox
    minor = ".".join(interpreter.version.split(".")[:2])
    link = ["gcc", "-shared", "-fPIC", str(tmp_path / "ext.c"), f"-L{hidden}",
            f"-lpython{minor}", "-o", str(tmp_path / "ext.so")]  # fmt: skip
    bare = {"PATH": os.environ["PATH"]}
    if subprocess.run(link, env=bare, capture_output=True).returncode == 0:
        pytest.skip(f"the host's linker finds libpython{minor} without help")
    done = subprocess.run(link, env={**bare, **interpreter.env()}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_python36_environment_gets_a_pip_that_installs_todays_wheels(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python 3.6 instance (as Django 3.0-3.2's) whose environment needs bcrypt: the
    bundled pip 18.1 knows no manylinux2014 wheel and would build it from source (and
    fail); the environment's pip is upgraded to 21.3.1 first, and the gold patch resolves."""
    from lm_eval_monkeys.verifiers.swebench.interpreters import find_python

    try:
        find_python("3.6", swe["work"])
    except MonkeysError as err:
        pytest.skip(str(err))
    mirror = swe["root"] / "mirrors" / "acme__legacy"
    (mirror / "tests").mkdir(parents=True)
    (mirror / "legacy.py").write_text(CALC)
    (mirror / "setup.py").write_text(LEGACY_SETUP)
    (mirror / "tests" / "test_calc.py").write_text(TESTS.replace("from calc", "from legacy"))
    git(mirror, "init", "-q")
    git(mirror, "add", ".")
    git(mirror, "commit", "-qm", "base")
    spec = {**SPEC, "python": "3.6", "pip_packages": ["pytest==7.0.1", "bcrypt==4.0.1"]}
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"acme/legacy": {"default": spec}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    flat = {"src/calc/__init__.py": "legacy.py", "from calc import": "from legacy import"}
    patches = [swe["instance"]["patch"], swe["instance"]["test_patch"]]
    for old, new in flat.items():
        patches = [p.replace(old, new) for p in patches]
    legacy = {**swe["instance"], "repo": "acme/legacy", "instance_id": "acme__legacy-1",
              "base_commit": git(mirror, "rev-parse", "HEAD"), "environment_setup_commit": "",
              "patch": patches[0], "test_patch": patches[1]}  # fmt: skip
    check = checker()
    [verdict] = check.judge_many([legacy["patch"]], check.target(legacy))
    assert (verdict.status, verdict.correct) == ("resolved", True), verdict.details
    runner = check.runner
    plan = runner.plan(legacy)
    image = runner.environments.get(plan, runner.mirror("acme/legacy"))
    pip = subprocess.run([str(image / "bin" / "python"), "-m", "pip", "--version"],
                         env={**os.environ, **plan.interpreter.env()},
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert pip.startswith("pip 21.3.1 ")


def test_tox_current_env_runs_the_tests_in_the_environment(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sphinx's test command, ``tox --current-env -epy39``, with the harness's tox pins:
    tox-current-env's link to the environment's python would start the bare interpreter
    ("No module named pytest"); the tests run in the environment and resolve."""
    tox_ini = "[testenv]\\ncommands = python -m pytest -rA -p no:cacheprovider {posargs}\\n"
    spec = {**SPEC, "pip_packages": ["pytest", "tox==4.16.0", "tox-current-env==0.0.11"],
            "eval_commands": [f"printf '{tox_ini}' > tox.ini"],
            "test_cmd": "tox --current-env -epy39 -v --"}  # fmt: skip
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"acme/calc": {"default": spec}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    check = checker()
    verdicts = check.judge_many([GOLD, WRONG], check.target(swe["instance"]))
    assert (verdicts[0].correct, verdicts[0].status) == (True, "resolved"), verdicts[0].details
    assert (verdicts[1].correct, verdicts[1].status) == (False, "tests_failed")
    log = Path(verdicts[0].details["log"]).read_text()
    assert "py39: OK" in log and "PASSED tests/test_calc.py::test_add" in log


def test_resets_return_to_the_tree_after_pre_install(
    swe: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pre_install`` edits a tracked test-infrastructure file the tests need (as
    sphinx's adds ``-rA`` to tox.ini): here pyproject.toml's pytest ``addopts``, without
    which pytest prints no per-test results. The apply fallbacks' clean-up (FUZZY: plain
    ``git apply`` fails first) and the reset of infrastructure files (GOLD) keep that
    edit; a patch's own edit of those settings is still undone."""
    pre_install = "printf '\\n[tool.pytest.ini_options]\\naddopts = \"-rA\"\\n' >> pyproject.toml"
    spec = {**SPEC, "test_cmd": "pytest -p no:cacheprovider", "pre_install": [pre_install]}
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"acme/calc": {"default": spec}}))
    monkeypatch.setenv("MONKEYS_SWEBENCH_SPECS", str(specs))
    # WRONG, and pyproject.toml's pytest settings made to skip test_add: reset.
    skips_add = WRONG + (
        "diff --git a/pyproject.toml b/pyproject.toml\n--- a/pyproject.toml\n"
        "+++ b/pyproject.toml\n@@ -9,2 +9,2 @@\n [tool.pytest.ini_options]\n"
        '-addopts = "-rA"\n+addopts = "-rA --deselect tests/test_calc.py::test_add"\n'
    )
    check = checker()
    gold, fuzzy, wrong, cheat = check.judge_many(
        [GOLD, FUZZY, WRONG, skips_add], check.target(swe["instance"])
    )
    assert (gold.correct, gold.status) == (True, "resolved"), gold.details
    assert gold.details["reset"] == []
    assert (fuzzy.correct, fuzzy.status) == (True, "resolved"), fuzzy.details
    assert (wrong.correct, wrong.status) == (False, "tests_failed")
    assert (cheat.correct, cheat.status) == (False, "tests_failed"), cheat.details
    assert cheat.details["reset"] == ["pyproject.toml"]
    assert "PASSED tests/test_calc.py::test_neg" in Path(gold.details["log"]).read_text()
