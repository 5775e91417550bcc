"""The package's layout: light packages stay light, and imports only go downward."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("lm_eval", "torch", "sympy", "math_verify", "transformers")

# Each package may import its own layer and those below it, never above.
LAYERS = {
    "digest": 0,
    "errors": 0,
    "output_file": 0,
    "ray_connect": 0,
    "hub": 0,
    "task_configs": 0,
    "text_tables": 0,
    "verifiers": 1,
    "metrics": 1,
    "store": 2,
    "scoring": 3,
    "tasks": 4,
    "models": 5,
    "forecasts": 5,
    "comparison": 5,
    "export": 5,
    "importing": 5,
    "reports": 6,
    "cli": 7,
}


def loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("lm_eval_monkeys.metrics", HEAVY),
        ("lm_eval_monkeys.verifiers", (*HEAVY, "scipy")),
        ("lm_eval_monkeys.store", (*HEAVY, "scipy")),
        ("lm_eval_monkeys", (*HEAVY, "scipy")),
    ],
)
def test_light_packages_load_no_heavy_dependency(module: str, forbidden: tuple[str, ...]) -> None:
    assert not loaded_after(module) & set(forbidden)


def package_of(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[0] == "verifiers":
        return "verifiers"
    if parts[0] == "task_configs":
        return "task_configs"
    return parts[1]


def test_imports_only_go_downward() -> None:
    files = [*REPO.glob("lm_eval_monkeys/**/*.py"), *REPO.glob("verifiers/**/*.py")]
    wrong = []
    for path in files:
        source = package_of(path)
        if source == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "lm_eval_monkeys" or len(parts) < 2:
                    continue
                target = parts[1]
                if LAYERS[target] > LAYERS[source]:
                    wrong.append(f"{path.relative_to(REPO)} ({source}) imports {name}")
    assert not wrong, "\n".join(wrong)


def test_module_stems_are_unique() -> None:
    # A file's name says its job: no two modules share one, but for package fronts and
    # the cli/ modules named after their command.
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted([*REPO.glob("lm_eval_monkeys/**/*.py"), *REPO.glob("verifiers/**/*.py")]):
        if path.stem == "__init__" or path.parent.name == "cli":
            continue
        if path.stem in seen:
            clashes.append(f"{seen[path.stem].relative_to(REPO)} and {path.relative_to(REPO)}")
        seen[path.stem] = path
    assert not clashes, "\n".join(clashes)


def test_paths_named_in_docs_exist() -> None:
    named = set()
    pattern = re.compile(
        r"(?<![\w/.-])((?:lm_eval_monkeys|verifiers|task_configs|benchmarks|tests)"
        r"/[\w/]+(?:\.py|\.json|/))"
    )
    for doc in [REPO / "README.md", *REPO.glob("docs/**/*.md")]:
        named |= {(doc.name, path) for path in pattern.findall(doc.read_text())}
    missing = sorted(f"{doc}: {path}" for doc, path in named if not (REPO / path).exists())
    assert not missing, "\n".join(missing)
