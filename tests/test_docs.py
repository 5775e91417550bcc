"""The README and the docs/ pages, tested as a reader would use them.

Sybil finds the fenced blocks of each page; every block is evaluated in page order:

- ```` ```bash ````: run by bash in a scratch copy of the checkout (symlinks, so ``runs/``
  lands in the scratch directory), offline, with the benchmark data in ``MONKEYS_DATA_DIR``
  and a scratch ``MONKEYS_CACHE_DIR``. Its first line may say, visibly, that CI does
  otherwise: ``# not run by CI: REASON`` skips it (GPUs, network, Docker, a cluster);
  ``# CI appends: FLAGS`` runs it with FLAGS added to each ``lm-eval-monkeys``/``lm_eval``
  run in it (a smaller size, or ``--model monkeys-synthetic`` for a model CI cannot load).
  The README's ``<!-- ci: install -->`` and ``<!-- ci: test -->`` blocks are CI's own
  steps (``.ci/run``), left alone here.
- ```` ```output ````: must appear, line for line, in what the bash block above it printed;
  output is only shown for a block CI runs as written.
- ```` ```python ````: its first line names the file it shows (``# examples/x.py``), which
  must hold exactly the rest of the block.
- ```` ```yaml ```` and ```` ```json ````: must parse.

``docs/benchmarks.md`` records measurements whose commands take minutes to hours: its
commands are not run (the paths they name are checked by ``test_layout``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser

from lm_eval_monkeys.cli import COMMANDS

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RECORDS = {"benchmarks.md"}  # pages of measurements, whose commands are not rerun
MARKER = re.compile(r"\A# (not run by CI|CI appends): (.+)\n")
RUN_COMMAND = re.compile(r"((?:^|&&)\s*(?:\w+=\S+\s+)*(?:lm-eval-monkeys|lm_eval)\s+--.*)$")
MKDOCS_PAGES = re.compile(r"^\s*- [^:]+: (\S+\.md)\s*$", re.MULTILINE)


MODEL_FLAGS = re.compile(r"\s--model(?:_args)?\s+\S+")


def _resized(script: str, flags: str) -> str:
    """The script with FLAGS after each run command (continuation lines joined first); a
    FLAGS naming its own --model replaces the command's model and its --model_args (a
    monkeys-* model refuses keys it does not take)."""
    joined = re.sub(r"\\\n\s*", " ", script)

    def resize(match: re.Match[str]) -> str:
        command = MODEL_FLAGS.sub("", match[1]) if "--model " in flags else match[1]
        return f"{command} {flags}"

    return "\n".join(RUN_COMMAND.sub(resize, line) for line in joined.splitlines())


def run_bash(example: Example) -> str | None:
    namespace = example.namespace
    source = str(example.parsed)
    marker = MARKER.match(source)
    namespace["output"] = None
    ci_step = re.search(r"<!-- ci: \w+ -->\n\Z", example.document.text[: example.start])
    if namespace["record"] or ci_step or (marker and marker[1] == "not run by CI"):
        return None
    script = _resized(source, marker[2]) if marker else source
    if marker and script == re.sub(r"\\\n\s*", " ", source).rstrip("\n"):
        return f"'# CI appends' in a block with no lm-eval-monkeys run:\n{source}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=namespace["checkout"],
        capture_output=True,
        text=True,
        timeout=1800,  # a hang guard only
        env={**os.environ, "MONKEYS_CACHE_DIR": str(namespace["cache"])},
    )
    if done.returncode != 0:
        return f"exit {done.returncode} from\n{script}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    namespace["output"] = None if marker else done.stdout
    return None


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def check_output(example: Example) -> str | None:
    printed = example.namespace["output"]
    if printed is None:
        return "an output block must follow a bash block that CI runs as written"
    shown, got = _lines(str(example.parsed)), _lines(printed)
    if any(got[i : i + len(shown)] == shown for i in range(len(got) - len(shown) + 1)):
        return None
    return "output shown is not what the command printed:\n" + "\n".join(got[-40:])


def check_python(example: Example) -> str | None:
    first, _, body = str(example.parsed).partition("\n")
    path = REPO / first.removeprefix("# ").strip()
    if not first.startswith("# ") or not path.is_file():
        return f"a python block's first line names the file it shows, got {first!r}"
    if path.read_text() != body:
        return f"the block differs from {path.relative_to(REPO)}"
    return None


def check_yaml(example: Example) -> None:
    yaml.safe_load(str(example.parsed))


def check_json(example: Example) -> None:
    json.loads(str(example.parsed))


SYBIL = Sybil(
    parsers=[
        CodeBlockParser("bash", run_bash),
        CodeBlockParser("output", check_output),
        CodeBlockParser("python", check_python),
        CodeBlockParser("yaml", check_yaml),
        CodeBlockParser("json", check_json),
    ]
)


def _checkout(scratch: Path) -> Path:
    """A scratch directory that looks like the checkout, with ``../shared`` beside it."""
    checkout = scratch / "checkout"
    checkout.mkdir()
    for entry in REPO.iterdir():
        if entry.name != "runs":
            (checkout / entry.name).symlink_to(entry)
    (scratch / "shared").symlink_to(REPO.parent / "shared")
    return checkout


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_page_examples(page: Path, tmp_path: Path) -> None:
    document = SYBIL.parse(page)
    namespace: dict[str, Any] = document.namespace
    namespace.update(
        checkout=_checkout(tmp_path), cache=tmp_path / "cache", record=page.name in RECORDS
    )
    examples = list(document)
    assert examples or page.name != "README.md"
    for example in examples:
        example.evaluate()


def _named(pattern: str) -> set[tuple[str, str]]:
    """What PATTERN finds in each page, shell continuation lines joined."""
    return {
        (page.name, name)
        for page in PAGES
        for name in re.findall(pattern, re.sub(r"\\\n\s*", " ", page.read_text()))
    }


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_module_paths_named_exist() -> None:
    named = _named(r"\blm_eval_monkeys(?:\.\w+)+")
    assert named
    missing = sorted(f"{page}: {name}" for page, name in named if not _resolves(name))
    assert not missing, "\n".join(missing)


LM_EVAL_COMMANDS = ("run", "ls", "validate")  # lm-eval 0.4.13's subcommands


def test_commands_and_flags_named_exist() -> None:
    import argparse

    # a command, and the rest of its line up to the end of the code or the shell command
    named = _named(r"lm-eval-monkeys ([a-z][\w-]*)((?:[^`\n#;&|)]|\|(?! ))*)")
    assert named
    wrong = []
    for page, (command, rest) in named:
        if command in LM_EVAL_COMMANDS:  # handed to lm-eval's own command line
            continue
        if command not in COMMANDS:
            wrong.append(f"{page}: lm-eval-monkeys {command}")
            continue
        parser = argparse.ArgumentParser()
        import_module(f"lm_eval_monkeys.cli.{COMMANDS[command][0]}").add_arguments(parser)
        known = {flag for action in parser._actions for flag in action.option_strings}
        wrong += [
            f"{page}: lm-eval-monkeys {command} {flag}"
            for flag in re.findall(r"(--\w[\w-]*)", rest)
            if flag not in known
        ]
    assert not wrong, "\n".join(wrong)


def test_readme_links_resolve() -> None:
    from pymdownx.slugs import slugify

    anchor = slugify(case="lower")
    broken = []
    for target in re.findall(r"\]\((?!https?:)([^)]+)\)", (REPO / "README.md").read_text()):
        path, _, fragment = target.partition("#")
        page = REPO / path if path else REPO / "README.md"
        headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M) if page.is_file() else []
        if not page.exists() or (fragment and fragment not in {anchor(h, "-") for h in headings}):
            broken.append(target)
    assert not broken, broken


def test_site_lists_every_page() -> None:
    listed = set(MKDOCS_PAGES.findall((REPO / "mkdocs.yml").read_text()))
    on_disk = {page.name for page in PAGES if page.parent.name == "docs"}
    assert listed == on_disk


def test_architecture_page_states_the_enforced_layers() -> None:
    from test_layout import LAYERS

    table = re.findall(r"^\| (\d) \| (.+) \|$", (REPO / "docs/architecture.md").read_text(), re.M)
    stated = {name.strip("` "): int(layer) for layer, names in table for name in names.split(",")}
    assert stated == LAYERS
