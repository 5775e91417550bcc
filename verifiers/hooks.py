"""External verifier hooks: your own verifier as a process (``command:``) or a service (``http:``).

Protocol (both): requests ``{"id", "task", "doc", "completion"}``, answers
``{"id", "correct", ...}``, matched by id, in any order.

- ``command:<cmdline>`` starts one long-lived process and writes one JSON request per line
  to its stdin; it writes one JSON answer per line to stdout. A request unanswered within
  the timeout, or a process that exits, gets the process restarted and the unanswered
  requests sent again once. Lines that are not answers are skipped with a warning.
- ``http:<url>`` (or ``https:``) POSTs a JSON list of requests per batch and expects a JSON
  list of answers back; a failed POST is tried once more; redirects are not followed.

A verdict comes only from the hook: ids are random (128 bits, new per request), so text a
completion makes the hook print can never be an answer to a request. A request the hook
does not answer (it crashed, hung, answered part of a batch, printed lines that are not
answers, answered an id twice differently, or its service failed) gets a non-final
verdict, status ``hook_failed``, with one line naming the failure: it counts as incorrect
in this pass, is never cached, and is asked again on the next rescore.

The completion itself is the answer key, so identical completions are verified once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import secrets
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import CORRECT, WRONG, Checker, Verdict

logger = logging.getLogger(__name__)
TIMEOUT_S = 60.0
HTTP_BATCH = 64
_SHOWN = 100  # characters of a hook's bad line quoted in its failure


@dataclass
class Replies:
    """What a hook said to one set of requests: verdicts by id, and what went wrong."""

    correct: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    conflicting: set[str] = field(default_factory=set)

    def take(self, item: Any, wanted: Iterable[str]) -> bool:
        """Record one answer; False when ``item`` is not an answer to a wanted request."""
        answer = _parse_answer(item)
        if answer is None or answer[0] not in wanted:
            return False
        rid, correct = answer
        if self.correct.setdefault(rid, correct) != correct:
            self.conflicting.add(rid)
        return True

    def failure(self) -> str:
        """The one line that names what went wrong."""
        problems = list(dict.fromkeys(self.problems))  # each failure once, in order
        if self.conflicting:
            problems.append(f"{len(self.conflicting)} requests answered both true and false")
        return "; ".join(problems) or "no answer"


class HookChecker(Checker):
    """Shared by both transports: documents by hash, requests by id, verdicts by answer."""

    def __init__(self, name: str, timeout_s: float = TIMEOUT_S) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._docs: dict[str, dict[str, Any]] = {}

    def extract(self, completion: str) -> str | None:
        return completion

    def target(self, doc: dict[str, Any]) -> str:
        key = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
        self._docs.setdefault(key, doc)
        return key

    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        requests = {}
        for answer in answers:
            rid = secrets.token_hex(16)  # unguessable: no completion can answer for itself
            requests[rid] = {
                "id": rid,
                "task": self.task,
                "doc": self._docs[target],
                "completion": answer,
            }
        replies = self._ask(requests)
        lost = {rid for rid in requests if rid not in replies.correct or rid in replies.conflicting}
        failed = WRONG
        if lost:
            failure = (
                f"verifier hook {self.name}: {len(lost)} of {len(requests)} requests got no "
                f"verdict ({replies.failure()})"
            )
            logger.warning("%s; counted incorrect for now, not cached", failure)
            failed = Verdict(False, "hook_failed", {"error": failure}, final=False)
        return [
            failed if rid in lost else CORRECT if replies.correct[rid] else WRONG
            for rid in requests
        ]

    def _ask(self, requests: dict[str, dict[str, Any]]) -> Replies:
        raise NotImplementedError


class CommandHook(HookChecker):
    """A verifier process speaking JSON lines on stdin/stdout."""

    def __init__(self, cmdline: str, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(f"command:{cmdline}", timeout_s)
        self.argv = shlex.split(cmdline)
        if not self.argv:
            raise MonkeysError("command: needs a command line, e.g. command:python my_verifier.py")
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()

    def _ask(self, requests: dict[str, dict[str, Any]]) -> Replies:
        replies = Replies()
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
            self._collect(set(pending), replies)
            pending = {rid: r for rid, r in pending.items() if rid not in replies.correct}
        return replies

    def _send(self, requests: Iterable[dict[str, Any]]) -> None:
        process = self._ensure_started()
        assert process.stdin is not None  # started with stdin=PIPE
        try:
            for request in requests:
                process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died; _collect sees the end of its output and the retry restarts it

    def _collect(self, wanted: set[str], replies: Replies) -> None:
        """Answers to ``wanted`` until all came, the timeout, or the end of the output."""
        deadline = time.monotonic() + self.timeout_s
        skipped: list[bytes] = []
        while wanted - replies.correct.keys():
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                replies.problems.append(f"no answer within {self.timeout_s:g} s")
                break
            if line is None:
                replies.problems.append(self._exit_status())
                break
            if not replies.take(line.decode("utf-8", "replace"), wanted):
                skipped.append(line)
                logger.warning("%s: skipping a line that is not an answer: %.100r", self.name, line)
        if skipped:
            replies.problems.append(
                f"{len(skipped)} lines that are not answers (first: {skipped[0][:_SHOWN]!r})"
            )

    def _exit_status(self) -> str:
        """Why its output ended: its exit status, or that it closed stdout and lives on."""
        assert self._process is not None  # its output ended, so it was started
        try:
            return f"the process exited with status {self._process.wait(timeout=5)}"
        except subprocess.TimeoutExpired:
            return "the process closed its output"

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            try:
                self._process = subprocess.Popen(
                    self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE
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


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx answer is the service's failure: its target is never asked."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class HttpHook(HookChecker):
    """A verifier service: POST a JSON list of requests, get a JSON list of answers."""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(url, timeout_s)
        self.url = url

    def _ask(self, requests: dict[str, dict[str, Any]]) -> Replies:
        replies = Replies()
        batch = list(requests.values())
        for start in range(0, len(batch), HTTP_BATCH):
            self._post(batch[start : start + HTTP_BATCH], replies)
        return replies

    def _post(self, batch: list[dict[str, Any]], replies: Replies) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(batch).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        wanted = {r["id"] for r in batch}
        last_error = ""
        for _ in range(2):  # one retry for a transient failure
            try:
                with _OPENER.open(request, timeout=self.timeout_s) as response:
                    body = json.loads(response.read())
                if not isinstance(body, list):
                    raise ValueError("the response is not a JSON list")
                skipped = [item for item in body if not replies.take(item, wanted)]
                if skipped:
                    replies.problems.append(
                        f"{len(skipped)} items that are not answers (first: "
                        f"{json.dumps(skipped[0])[:_SHOWN]})"
                    )
                if wanted - replies.correct.keys():
                    replies.problems.append("a reply without some of the requests' ids")
                return
            except urllib.error.HTTPError as err:
                moved = err.headers.get("Location") if 300 <= err.code < 400 else None
                last_error = f"HTTP {err.code}" + (
                    f", a redirect to {moved} (not followed)" if moved else ""
                )
            except (urllib.error.URLError, TimeoutError, ValueError, OSError) as err:
                last_error = str(err)
        replies.problems.append(
            f"POST to {self.url} failed twice ({last_error}); it must answer a POSTed JSON list "
            'of requests with a JSON list of {"id", "correct"}'
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


def _pump(process: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> None:
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
