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
            body = json.dumps(
                [{"id": r["id"], "correct": r["completion"].endswith("4")} for r in reversed(batch)]
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


def test_http_hook_failure_is_a_clear_error(service: tuple[str, list]) -> None:
    url, _ = service
    checker = get_checker(f"{url}/broken")
    with pytest.raises(MonkeysError, match="failed twice"):
        correct(checker, ["#### 4"])


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
