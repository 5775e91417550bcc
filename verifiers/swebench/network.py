"""Which failing tests failed for want of a network, and which hosts they tried to reach.

The sandbox has no network unless a repository is opted in (``MONKEYS_SWEBENCH_NETWORK``),
so a test that fetches a URL fails there whatever the patch. Telling that apart from a
broken setup needs the failure's text: each failing test's section of the log (pytest's
``___ name ___`` blocks, unittest's ``ERROR: name`` blocks) is searched for the errors a
missing network raises, and the host names or addresses in them are collected.
"""

from __future__ import annotations

import re

# What resolvers, sockets, urllib3 and requests say when there is no route or no DNS.
_OFFLINE = re.compile(
    r"Temporary failure in name resolution|Name or service not known|No address associated"
    r"|Network is unreachable|No route to host|gaierror|NewConnectionError|ConnectTimeout"
    r"|Failed to establish a new connection|nodename nor servname|getaddrinfo failed"
)
_HOSTS = (
    re.compile(r"host='([^']+)'"),  # urllib3: HTTPConnectionPool(host='httpbin.org', port=80)
    re.compile(r"https?://([A-Za-z0-9.-]+)"),
    re.compile(r"\('(\d{1,3}(?:\.\d{1,3}){3})', \d+\)"),  # socket addresses ('10.0.0.1', 80)
)
_PYTEST_SECTION = re.compile(r"^_{3,} (.+?) _{3,}$", re.M)
_UNITTEST_SECTION = re.compile(r"^(?:ERROR|FAIL): (.+)$", re.M)
_SEPARATOR = re.compile(r"^={3,}", re.M)  # pytest's "=== FAILURES ===", unittest's rules


def network_failures(log: str, failing: list[str]) -> dict[str, list[str]]:
    """``{"tests": [...], "hosts": [...]}`` of the ``failing`` tests whose failures show a
    missing network (empty lists when none does)."""
    sections = _sections(log)
    tests, hosts = [], []
    for test in failing:
        blocks = [body for name, body in sections if _names(test, name)]
        summary = [line for line in log.splitlines() if test in line and " - " in line]
        text = "\n".join(blocks + summary)
        if _OFFLINE.search(text):
            tests.append(test)
            hosts += [h for pattern in _HOSTS for h in pattern.findall(text)]
    return {"tests": tests, "hosts": list(dict.fromkeys(hosts))}


def _sections(log: str) -> list[tuple[str, str]]:
    """(name, text) of each failure block, pytest's and unittest's."""
    marks = [(m.start(), m.group(1)) for m in _PYTEST_SECTION.finditer(log)]
    marks += [(m.start(), m.group(1).strip()) for m in _UNITTEST_SECTION.finditer(log)]
    marks += [(m.start(), "") for m in _SEPARATOR.finditer(log)]  # ends a block
    marks.sort()
    ends = [start for start, _ in marks[1:]] + [len(log)] if marks else []
    blocks = zip(marks, ends, strict=True)
    return [(name, log[start:end]) for (start, name), end in blocks if name]


def _names(test: str, section: str) -> bool:
    """Whether a failure block's title names ``test`` (unittest's title is the test's id
    in SWE-bench; pytest's drops the file and joins classes with dots)."""
    tail = test.split("::", 1)[-1].replace("::", ".")
    return section in (test, tail) or tail.endswith(f".{section}")
