"""Whether a Hugging Face hub repository can be loaded, asked before anything loads it.

transformers and datasets find out only when they load, after retrying an unreachable hub
for close to a minute, and then raise a traceback. Here the answer comes first, in one
line naming the fix: a repository in the local cache can be loaded; without one, an
offline flag (``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``) means it cannot, and otherwise
one short request to the hub (``HF_ENDPOINT``) says whether it exists and is reachable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from lm_eval_monkeys.errors import MonkeysError

Kind = Literal["model", "dataset"]
PROBE_TIMEOUT_S = 10.0
_TRUE = {"1", "on", "yes", "true"}


def offline_flags(kind: Kind) -> list[str]:
    """The offline variables set for loading a ``kind`` (``HF_HUB_OFFLINE`` covers both)."""
    names = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE" if kind == "model" else "HF_DATASETS_OFFLINE"]
    return [name for name in names if os.environ.get(name, "").strip().lower() in _TRUE]


def is_cached(kind: Kind, repo_id: str) -> bool:
    """Whether the hub cache (or, for a dataset, the datasets cache) holds the repository."""
    from huggingface_hub import constants

    owner_name = repo_id.replace("/", "--")
    folders = [Path(constants.HF_HUB_CACHE) / f"{kind}s--{owner_name}"]
    if kind == "dataset":
        cache = os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets"
        folders.append(Path(cache) / repo_id.replace("/", "___"))
    return any(folder.is_dir() for folder in folders)


def check_loadable(kind: Kind, repo_id: str, fix: str) -> None:
    """Refuse, naming ``fix`` (what to do instead), a repository that cannot be loaded:
    not cached and offline, not on the hub, gated, or the hub unreachable."""
    if is_cached(kind, repo_id):
        return
    flags = offline_flags(kind)
    if flags:
        raise MonkeysError(
            f"the {kind} {repo_id} is not in the Hugging Face cache and {flags[0]}=1 "
            f"keeps the hub offline; {fix}, or download it where the hub is reachable "
            f"(`hf download {repo_id}{' --repo-type dataset' if kind == 'dataset' else ''}`)"
        )
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    api = HfApi()
    info = api.model_info if kind == "model" else api.dataset_info
    try:
        info(repo_id, timeout=PROBE_TIMEOUT_S)
    except HFValidationError:
        raise MonkeysError(
            f"{repo_id!r} is neither an existing local path nor a Hugging Face hub name "
            f"(OWNER/NAME); {fix}"
        ) from None
    except GatedRepoError:
        raise MonkeysError(
            f"the {kind} {repo_id} is gated on the Hugging Face hub: accept its terms on the "
            "hub and log in (`hf auth login`, or set HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise MonkeysError(
            f"the Hugging Face hub has no {kind} {repo_id} (or it is private: set HF_TOKEN); "
            f"check the name, or {fix}"
        ) from None
    # Any transport failure (refused, unresolvable, timed out): the HTTP client and its
    # error types vary across huggingface_hub versions.
    except Exception as err:
        raise MonkeysError(
            f"cannot reach the Hugging Face hub at {constants.ENDPOINT} for the {kind} "
            f"{repo_id} ({type(err).__name__}); {fix}, or set HF_HUB_OFFLINE=1 to use a "
            "cached copy"
        ) from None
