"""MiniF2F: Lean 4 proofs checked by a pool of leanprover-community ``repl`` processes.

Each REPL elaborates the problem header (``import Mathlib`` ...) once and every proof is
checked in that environment (``{"cmd": ..., "env": <header env>}``), as kimina-lean-server
and LeanInteract do: the import costs seconds, a proof usually far less. A REPL is
restarted after a timeout, a crash, or ``max_uses`` proofs (elaboration memory grows).
A proof counts only with no error, no ``sorry``, and the statement untouched: the
completion is the proof body after the given ``:= by``, and may not declare anything.

The Lean toolchain and a Mathlib project are the user's (``lean:/path/to/project`` or
``MONKEYS_LEAN_PROJECT``); the REPL runs as ``lake env repl`` inside that project.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.verifiers.base import CORRECT, WRONG, Checker, Verdict

PROJECT_ENV = "MONKEYS_LEAN_PROJECT"
_FORBIDDEN = re.compile(
    r"\b(sorry|admit|axiom)\b|#exit|^\s*(theorem|lemma|def|example|instance|macro|syntax|elab|"
    r"notation|open|import|namespace|end|set_option|attribute)\b",
    re.M,
)


class LeanRepl:
    """One REPL process with the header elaborated; commands are JSON, blank-line separated."""

    def __init__(
        self, command: list[str], cwd: Path, header: str, memory_bytes: int, timeout_s: float
    ) -> None:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

        try:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=limit,
            )
            self._pending = b""
        except OSError as err:
            raise MonkeysError(f"cannot start the Lean REPL {' '.join(command)}: {err}") from None
        self.uses = 0
        reply = self.send({"cmd": header}, timeout_s)
        if reply is None or "env" not in reply or _errors(reply):
            self.close()
            raise MonkeysError(f"the Lean REPL could not elaborate the header: {reply}")
        self.env = reply["env"]

    def send(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """The REPL's reply, or None if it timed out or died."""
        assert self.process.stdin is not None and self.process.stdout is not None  # PIPEs
        try:
            self.process.stdin.write(json.dumps(request) + "\n\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        deadline = time.monotonic() + timeout_s
        fd = self.process.stdout.fileno()
        while True:
            # A reply is one JSON object followed by a blank line.
            reply, sep, rest = self._pending.partition(b"\n\n")
            if sep:
                self._pending = rest
                start = reply.find(b"{")  # skip stray output printed before the reply
                if start < 0:
                    continue
                try:
                    return json.loads(reply[start:])
                except json.JSONDecodeError:
                    continue  # not a reply: keep reading
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None  # the REPL exited
            self._pending += chunk

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class LeanChecker(Checker):
    """Checks proofs of MiniF2F-schema problems with a pool of REPLs (one per header)."""

    def __init__(
        self,
        project: Path,
        repl_command: list[str] | None = None,
        pool_size: int = 2,
        timeout_s: float = 60.0,
        memory_bytes: int = 16 << 30,
        max_uses: int = 100,
    ) -> None:
        if not project.is_dir():
            raise MonkeysError(
                f"Lean project {project} does not exist; point --metadata verifier=lean:/path "
                f"(--verifier lean:/path to rescore) or {PROJECT_ENV} at a Lean 4 project with "
                "Mathlib and the leanprover-community repl built"
            )
        self.project, self.command = project, repl_command or ["lake", "env", "repl"]
        self.pool_size, self.timeout_s = pool_size, timeout_s
        self.memory_bytes, self.max_uses = memory_bytes, max_uses
        self._idle: dict[str, list[LeanRepl]] = {}
        self._statements: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.started = 0  # REPL processes started (each elaborates its header once)

    def extract(self, completion: str) -> str | None:
        proof = completion.split("```")[0].rstrip()
        return proof if proof.strip() else None

    def target(self, doc: dict[str, Any]) -> str:
        key = doc["name"]
        self._statements[key] = (doc.get("header", "import Mathlib"), doc["formal_statement"])
        return key

    def judge_many(self, answers: Sequence[str], target: str) -> list[Verdict]:
        return [CORRECT if self.is_correct(a, target) else WRONG for a in answers]

    def is_correct(self, answer: str, target: str) -> bool:
        if _FORBIDDEN.search(answer):
            return False  # sorry/admit, or an attempt to add or change declarations
        header, statement = self._statements[target]
        for _ in range(2):  # a crashed or timed-out REPL is replaced and the proof retried once
            repl = self._take(header)
            reply = repl.send({"cmd": f"{statement}\n{answer}", "env": repl.env}, self.timeout_s)
            if reply is None:
                repl.close()
                continue
            repl.uses += 1
            self._give_back(header, repl)
            return not _errors(reply) and not reply.get("sorries")
        return False

    def _take(self, header: str) -> LeanRepl:
        with self._lock:
            idle = self._idle.setdefault(header, [])
            if idle:
                return idle.pop()
            self.started += 1
        return LeanRepl(self.command, self.project, header, self.memory_bytes, self.timeout_s)

    def _give_back(self, header: str, repl: LeanRepl) -> None:
        with self._lock:
            idle = self._idle.setdefault(header, [])
            if repl.uses >= self.max_uses or len(idle) >= self.pool_size:
                repl.close()
            else:
                idle.append(repl)

    def close(self) -> None:
        with self._lock:
            for repls in self._idle.values():
                for repl in repls:
                    repl.close()
            self._idle.clear()


def _errors(reply: dict[str, Any]) -> list[dict[str, Any]]:
    messages = reply.get("messages") or []
    return [m for m in messages if m.get("severity") == "error" or "sorry" in str(m.get("data"))]


def lean(mode: str) -> LeanChecker:
    """``lean:/path/to/project``, or ``lean`` with MONKEYS_LEAN_PROJECT set."""
    project = mode or os.environ.get(PROJECT_ENV, "")
    if not project:
        raise MonkeysError(
            "MiniF2F needs a Lean 4 + Mathlib project: run with --metadata "
            "verifier=lean:/path/to/project (rescore, verify, compare: --verifier "
            f"lean:/path/to/project), or set {PROJECT_ENV}"
        )
    return LeanChecker(Path(project).expanduser().absolute())
