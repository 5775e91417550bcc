"""External verifier hooks: your own verifier as a process (``command:``) or a service (``http:``).

Protocol (both): requests ``{"id", "task", "doc", "completion"}``, answers
``{"id", "correct", ...}``, matched by id, in any order.

- ``command:<cmdline>`` starts one long-lived process and writes one JSON request per line
  to its stdin; it writes one JSON answer per line to stdout. A request unanswered within
  the timeout, or a process that exits, gets the process restarted and the unanswered
  requests sent again once; still unanswered, they count as incorrect (with a warning).
  Lines that are not answers are skipped with a warning.
- ``http:<url>`` (or ``https:``) POSTs a JSON list of requests per batch and expects a JSON
  list of answers back.

The completion itself is the answer key, so identical completions are verified once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import CORRECT, WRONG, Checker, Verdict

logger = logging.getLogger(__name__)
TIMEOUT_S = 60.0
HTTP_BATCH = 64


class HookChecker(Checker):
    """Shared by both transports: documents by hash, requests by id, verdicts by answer."""

    def __init__(self, name: str, timeout_s: float = TIMEOUT_S) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._docs: dict[str, dict[str, Any]] = {}
        self._next_id = 0

    def extract(self, completion: str) -> str | None:
        return completion

    def target(self, doc: dict[str, Any]) -> str:
        key = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        self._docs.setdefault(key, doc)
        return key

    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        requests = {}
        for answer in answers:
            self._next_id += 1
            requests[str(self._next_id)] = {
                "id": str(self._next_id),
                "task": self.task,
                "doc": self._docs[target],
                "completion": answer,
            }
        verdicts = self._ask(requests)
        return [CORRECT if verdicts.get(rid, False) else WRONG for rid in requests]

    def _ask(self, requests: dict[str, dict[str, Any]]) -> dict[str, bool]:
        raise NotImplementedError


class CommandHook(HookChecker):
    """A verifier process speaking JSON lines on stdin/stdout."""

    def __init__(self, cmdline: str, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(f"command:{cmdline}", timeout_s)
        self.argv = shlex.split(cmdline)
        if not self.argv:
            raise MonkeysError("command: needs a command line, e.g. command:python my_verifier.py")
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def _ask(self, requests: dict[str, dict[str, Any]]) -> dict[str, bool]:
        answers: dict[str, bool] = {}
        pending = dict(requests)
        for attempt in range(2):
            if not pending:
                break
            if attempt:
                logger.warning(
                    "%s: restarting and resending %d unanswered requests", self.name, len(pending)
                )
                self._stop()
            self._send(pending.values())
            answers.update(self._collect(set(pending)))
            pending = {rid: r for rid, r in pending.items() if rid not in answers}
        if pending:
            logger.warning(
                "%s: %d requests unanswered after a restart; counted incorrect",
                self.name,
                len(pending),
            )
        return answers

    def _send(self, requests: Any) -> None:
        process = self._ensure_started()
        assert process.stdin is not None  # started with stdin=PIPE
        try:
            for request in requests:
                process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died; _collect sees the end of its output and the retry restarts it

    def _collect(self, wanted: set[str]) -> dict[str, bool]:
        answers: dict[str, bool] = {}
        deadline = time.monotonic() + self.timeout_s
        while wanted - answers.keys():
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break  # timed out
            if line is None:
                break  # the process exited
            answer = _parse_answer(line)
            if answer is None:
                logger.warning("%s: skipping a line that is not an answer: %.100r", self.name, line)
            elif answer[0] in wanted:
                answers[answer[0]] = answer[1]
        return answers

    def _ensure_started(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            try:
                self._process = subprocess.Popen(
                    self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
                )
            except OSError as err:
                raise MonkeysError(f"cannot start verifier hook {self.name}: {err}") from None
            self._lines = queue.Queue()
            threading.Thread(target=_pump, args=(self._process, self._lines), daemon=True).start()
        return self._process

    def _stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:
            pass


class HttpHook(HookChecker):
    """A verifier service: POST a JSON list of requests, get a JSON list of answers."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(url, timeout_s)
        self.url = url

    def _ask(self, requests: dict[str, dict[str, Any]]) -> dict[str, bool]:
        answers: dict[str, bool] = {}
        batch = list(requests.values())
        for start in range(0, len(batch), HTTP_BATCH):
            answers.update(self._post(batch[start : start + HTTP_BATCH]))
        return answers

    def _post(self, batch: list[dict[str, Any]]) -> dict[str, bool]:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(batch).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        last_error = ""
        for _ in range(2):  # one retry for a transient failure
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    body = json.loads(response.read())
                if not isinstance(body, list):
                    raise ValueError("the response is not a JSON list")
                parsed = [_parse_answer(item) for item in body]
                return {a[0]: a[1] for a in parsed if a is not None}
            except (urllib.error.URLError, TimeoutError, ValueError, OSError) as err:
                last_error = str(err)
        raise MonkeysError(
            f"verifier service {self.url} failed twice ({last_error}); it must answer a POSTed "
            'JSON list of requests with a JSON list of {"id", "correct"}'
        )


def _parse_answer(item: Any) -> tuple[str, bool] | None:
    if isinstance(item, str):
        try:
            item = json.loads(item)
        except json.JSONDecodeError:
            return None
    if not isinstance(item, dict) or "id" not in item or not isinstance(item.get("correct"), bool):
        return None
    return str(item["id"]), item["correct"]


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    """Move a hook's stdout lines to a queue; None marks its end."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip():
            lines.put(line)
    lines.put(None)


def command(options: str) -> CommandHook:
    """``command:CMDLINE``: a long-lived process answering JSON lines."""
    return CommandHook(options)


def http(options: str) -> HttpHook:
    """``http://host/path``: batched POSTs."""
    return HttpHook(f"http:{options}")


def https(options: str) -> HttpHook:
    return HttpHook(f"https:{options}")
