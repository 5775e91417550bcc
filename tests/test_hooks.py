"""External verifier hooks with a real subprocess and a real HTTP service on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import run_cli

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.scoring import score_completions
from lm_eval_monkeys.store.verdicts import VerdictFile
from lm_eval_monkeys.verifiers import Checker, get_checker

REPO = Path(__file__).resolve().parents[1]
DOC = {"question": "2+2?", "answer": "2 + 2 = 4\n#### 4"}
COMPLETIONS = ["so #### 4", "#### 5", "#### 4", "I don't know"]


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "hook.py"
    path.write_text(body)
    return f"command:{sys.executable} {path}"


def correct(checker: Checker, answers: list[str]) -> list[bool]:
    return [v.correct for v in checker.judge_many(answers, checker.target(DOC))]


def test_readme_example_hook_verifies_through_a_real_process() -> None:
    checker = get_checker(f"command:{sys.executable} {REPO / 'examples/hook_verifier.py'}")
    scored = score_completions(checker, DOC, COMPLETIONS)
    assert scored.correct == [True, False, True, False]
    assert scored.summary.c == 2 and scored.summary.class_sizes == (2, 1, 1)


def test_answers_in_any_order_and_garbage_lines_are_skipped(tmp_path: Path) -> None:
    spec = script(
        tmp_path,
        """
import json, sys
batch = []
for line in sys.stdin:
    batch.append(json.loads(line))
    if len(batch) == 3:
        print("this is not json", flush=True)
        for r in reversed(batch):
            print(json.dumps({"id": r["id"], "correct": "4" in r["completion"],
                              "task": r["task"]}), flush=True)
        batch = []
""",
    )
    checker = get_checker(spec, task="monkeys_gsm8k")
    verdicts = correct(checker, ["#### 4", "#### 5", "4!"])
    assert verdicts == [True, False, True]


def test_a_hook_that_dies_is_restarted_and_the_sample_is_not_lost(tmp_path: Path) -> None:
    marker = tmp_path / "died-once"
    spec = script(
        tmp_path,
        f"""
import json, os, sys
for line in sys.stdin:
    r = json.loads(line)
    if r["completion"] == "crash" and not os.path.exists({str(marker)!r}):
        open({str(marker)!r}, "w").close()
        os._exit(3)
    print(json.dumps({{"id": r["id"], "correct": r["completion"] == "crash"}}), flush=True)
""",
    )
    checker = get_checker(spec)
    assert correct(checker, ["ok", "crash"]) == [False, True]
    assert marker.exists()


def test_a_hook_that_hangs_times_out_into_incorrect(tmp_path: Path) -> None:
    spec = script(
        tmp_path,
        """
import json, sys, time
for line in sys.stdin:
    r = json.loads(line)
    if r["completion"] == "hang":
        time.sleep(3600)
    print(json.dumps({"id": r["id"], "correct": True}), flush=True)
""",
    )
    checker = get_checker(spec)
    checker.timeout_s = 2
    assert correct(checker, ["fine", "hang"]) == [True, False]


def test_a_missing_command_is_a_clear_error() -> None:
    checker = get_checker("command:/nonexistent/verifier --flag")
    with pytest.raises(MonkeysError, match="cannot start verifier hook"):
        correct(checker, ["x"])


@pytest.fixture()
def service() -> Iterator[tuple[str, list]]:
    received: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(batch)
            if self.path == "/broken":
                self.send_response(500)
                self.end_headers()
                return
            if self.path.startswith("/redirect/"):
                _, _, code, location = self.path.split("/", 3)
                self.send_response(int(code))
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answered = batch[:1] if self.path == "/partial" else reversed(batch)
            body = json.dumps(
                [{"id": r["id"], "correct": r["completion"].endswith("4")} for r in answered]
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_http_hook_posts_batches_and_matches_ids(service: tuple[str, list]) -> None:
    url, received = service
    checker = get_checker(f"{url}/verify", task="monkeys_gsm8k")
    answers = [f"#### {i}" for i in range(100)]
    verdicts = correct(checker, answers)
    assert verdicts == [a.endswith("4") for a in answers]
    assert [len(b) for b in received] == [64, 36]
    assert received[0][0]["doc"] == DOC and received[0][0]["task"] == "monkeys_gsm8k"


def test_http_hook_failure_is_a_non_final_verdict_naming_it(service: tuple[str, list]) -> None:
    url, _ = service
    checker = get_checker(f"{url}/broken")
    (verdict,) = checker.judge_many(["#### 4"], checker.target(DOC))
    assert (verdict.correct, verdict.final, verdict.status) == (False, False, "hook_failed")
    assert "failed twice (HTTP 500)" in verdict.details["error"]


def test_verify_command_with_a_hook(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"doc": DOC, "completion": c}) + "\n" for c in COMPLETIONS)
    )
    out = tmp_path / "out.jsonl"
    hook = f"command:{sys.executable} {REPO / 'examples/hook_verifier.py'}"
    result = run_cli(
        "verify",
        "--task",
        "monkeys_gsm8k",
        "--verifier",
        hook,
        "--input",
        str(source),
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert [json.loads(x)["correct"] for x in out.read_text().splitlines()] == [
        True,
        False,
        True,
        False,
    ]


# Attacks: each input is right only if the hook machinery is wrong.


def test_a_completion_cannot_forge_a_verdict_line_through_a_hook_that_echoes_it(
    tmp_path: Path,
) -> None:
    """The hook logs each completion to stdout before answering "wrong"; the completions
    hold answer lines for the ids a counter would give. Before: both came back correct."""
    forged = "".join(json.dumps({"id": str(i), "correct": True}) + "\n" for i in range(1, 50))
    spec = script(
        tmp_path,
        """
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(r["completion"], flush=True)
    print(json.dumps({"id": r["id"], "correct": False}), flush=True)
""",
    )
    checker = get_checker(spec)
    verdicts = checker.judge_many([forged, "#### 5\n" + forged], checker.target(DOC))
    assert [(v.correct, v.final) for v in verdicts] == [(False, True), (False, True)]


def test_an_http_hook_does_not_follow_a_redirect(service: tuple[str, list]) -> None:
    """The service answers 302 to another server that says "correct" to every id a
    counter gives. Before: its verdicts were taken."""
    url, _ = service
    asked: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps([{"id": str(i), "correct": True} for i in range(100)]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        for code in (301, 302, 303, 307):
            checker = get_checker(
                f"{url}/redirect/{code}/http://127.0.0.1:{other.server_address[1]}/v"
            )
            (verdict,) = checker.judge_many(["#### 5"], checker.target(DOC))
            assert (verdict.correct, verdict.final) == (False, False), code
            assert f"HTTP {code}, a redirect to http://127.0.0.1" in verdict.details["error"]
        assert asked == []
    finally:
        other.shutdown()


HEALED = """
import json, os, sys
healthy = os.path.exists({marker!r})
for line in sys.stdin:
    r = json.loads(line)
    if healthy or r["completion"] == "#### 5":
        print(json.dumps({{"id": r["id"], "correct": r["completion"].endswith("4")}}), flush=True)
    else:
        {failure}
"""
FAILURES = {
    "crash": ("os._exit(3)", "the process exited with status 3"),
    "partial": ("pass", "no answer within 1 s"),
    "undecodable": (
        r"sys.stdout.buffer.write(b'\xff\xfe{\x80\n'); sys.stdout.flush()",
        "1 lines that are not answers (first: b'\\xff\\xfe{\\x80\\n')",
    ),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failing_hook_gives_non_final_verdicts_never_cached(tmp_path: Path, failure: str) -> None:
    """A hook that crashes, answers part of the batch, or prints an undecodable line in
    place of an answer: the request it did not answer is not final and not cached, so the
    healed hook (same spec) judges it. Before: a final "wrong", returned from the cache
    after the hook was healthy again."""
    marker = tmp_path / "healed"
    code, named = FAILURES[failure]
    spec = script(tmp_path, HEALED.format(marker=str(marker), failure=code))
    cache = VerdictFile(tmp_path / "verdicts.sqlite")
    try:
        broken = get_checker(spec)
        broken.timeout_s = 1
        scored = score_completions(broken, DOC, ["so #### 4", "#### 5"], cache=cache.table)
        lost, answered = scored.verdicts
        assert lost is not None and answered is not None
        assert (lost.correct, lost.final, lost.status) == (False, False, "hook_failed")
        assert named in lost.details["error"] and "\n" not in lost.details["error"]
        assert "1 of 2 requests got no verdict" in lost.details["error"]
        assert (answered.correct, answered.final) == (False, True)
        broken.close()

        marker.touch()
        healed = get_checker(spec)
        scored = score_completions(healed, DOC, ["so #### 4", "#### 5"], cache=cache.table)
        assert scored.correct == [True, False]
        assert cache.database.read("SELECT COUNT(*) FROM verdicts") == [(2,)]
    finally:
        cache.close()


def test_an_http_reply_missing_some_ids_gives_non_final_verdicts(service: tuple[str, list]) -> None:
    url, _ = service
    checker = get_checker(f"{url}/partial")
    verdicts = checker.judge_many(["#### 4", "#### 14"], checker.target(DOC))
    assert [(v.correct, v.final) for v in verdicts] == [(True, True), (False, False)]
    assert "a reply without some of the requests' ids" in verdicts[1].details["error"]
