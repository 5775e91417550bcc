"""The checks of a run that need no model, made before lm-eval loads the model or the data.

Each refuses in one line naming what works instead: a model name lm-eval does not know,
a ``--model_args`` key the model does not take, a local model path that does not exist, a
hub model or dataset that cannot be loaded (offline, missing, hub unreachable), a task
running model-written code without ``--confirm_run_unsafe_code``, an output directory
that cannot be written or that another run is writing, a checker that cannot run.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lm_eval_monkeys.errors import MonkeysError
from lm_eval_monkeys.hub import check_loadable
from lm_eval_monkeys.task_configs import installed_configs, with_group_tasks

# Models whose ``pretrained`` (and ``tokenizer``) name a local path or a hub model.
_HUB_MODELS = ("hf", "huggingface", "monkeys-hf", "vllm", "monkeys-vllm")
_PATH_PREFIXES = ("/", "./", "../", "~")
# Keys lm-eval adds to every model's arguments (and a user may pass): how fast, not what.
_SPEED_KEYS = ("batch_size", "max_batch_size", "device", "run_dir")


def check_model(name: str, model_args: Mapping[str, Any]) -> None:
    """The model is registered with lm-eval, takes every ``--model_args`` key (ours check
    their own keys; lm-eval's pass unknown ones on) and its weights can be loaded. The
    caller has registered ours (imported ``lm_eval_monkeys.models``)."""
    from lm_eval.api.registry import get_model, model_registry

    try:
        model_class = get_model(name)
    except ValueError:
        names = sorted(model_registry.keys())
        close = difflib.get_close_matches(name, names, n=1)
        ours = ", ".join(n for n in names if n.startswith("monkeys-"))
        hint = f"did you mean {close[0]}? " if close else ""
        raise MonkeysError(
            f"unknown model {name!r}; {hint}ours: {ours} (lm-eval's: `lm_eval ls models`, "
            "or leave --model out for the embedded model)"
        ) from None
    if name.startswith("monkeys-"):
        _check_model_keys(name, model_class, model_args)
    if name in _HUB_MODELS:
        for key in ("pretrained", "tokenizer"):
            if model_args.get(key):
                check_model_source(str(model_args[key]), key)


def _check_model_keys(name: str, model_class: type, model_args: Mapping[str, Any]) -> None:
    """Refuse keys no class in the model's chain takes by name (a ``**`` catch-all that
    passes keys on to transformers or vLLM takes any)."""
    taken = set(_SPEED_KEYS)
    for cls in model_class.__mro__[:-1]:  # not object, whose **kwargs take nothing
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        if any(p.kind is p.VAR_KEYWORD and p.name not in ("_", "identity") for p in parameters):
            return
        taken |= {p.name for p in parameters}
    unknown = sorted(set(model_args) - taken)
    if unknown:
        keys = ", ".join(sorted(taken - {"self", "run_dir", "_", "identity"}))
        raise MonkeysError(
            f"{name} takes no --model_args key {', '.join(unknown)}; its keys: {keys}"
        )


def check_model_source(value: str, key: str = "pretrained") -> None:
    """A local path exists; a hub name can be loaded (cached, or the hub reachable)."""
    path = Path(value).expanduser()
    if path.exists():
        return
    if value.startswith(_PATH_PREFIXES) or value.count("/") > 1:
        raise MonkeysError(
            f"--model_args {key}={value}: no such file or directory; pass an existing "
            "model directory or a Hugging Face hub name (OWNER/NAME)"
        )
    check_loadable(
        "model",
        value,
        f"pass --model_args {key}=/path/to/a/local/copy, or leave --model out for the "
        "embedded model",
    )


def check_unsafe_code(tasks: list[str], confirmed: bool) -> None:
    """Tasks that run model-written programs need ``--confirm_run_unsafe_code``."""
    if confirmed:
        return
    configs = installed_configs()
    unsafe = [t for t in with_group_tasks(tasks) if configs.get(t, {}).get("unsafe_code")]
    if unsafe:
        raise MonkeysError(
            f"{', '.join(unsafe)} runs model-written programs (in the sandbox): add "
            "--confirm_run_unsafe_code to allow it"
        )


def check_checkers(tasks: list[str], metadata: Mapping[str, Any]) -> None:
    """Each of our tasks' checker (``--metadata verifier=SPEC``, else its config's) can be
    built: a Lean project exists, a verifier name is known."""
    from lm_eval_monkeys.verifiers import get_checker

    configs = installed_configs()
    for task in with_group_tasks(tasks):
        spec = metadata.get("verifier") or (configs.get(task, {}).get("metadata") or {}).get(
            "verifier"
        )
        if spec and isinstance(configs.get(task, {}).get("task"), str):
            get_checker(str(spec), task).close()
