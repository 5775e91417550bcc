"""Connecting to a Ray cluster: one place for the address, the import and the errors."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from lm_eval_monkeys.errors import MonkeysError

RAY_INSTALL = "pip install 'lm-eval-monkeys[ray]'"


def connect(address: str | None, flag: str) -> Any:
    """The ``ray`` module, connected to the cluster at ``address`` (else RAY_ADDRESS);
    ``flag`` names the option that needs it, for the error messages."""
    ray = import_ray(flag)
    address = address or os.environ.get("RAY_ADDRESS") or ""
    if not address:
        raise MonkeysError(
            f"{flag} needs the cluster's address: --ray_address HEAD_IP:6379 "
            "or RAY_ADDRESS=HEAD_IP:6379 (what `ray start --head` printed)"
        )
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise MonkeysError(
            f"cannot connect to the Ray cluster at {address} ({err}); check that "
            "`ray status` works on this machine and that it runs the same Ray and Python"
        ) from None
    return ray


def import_ray(flag: str) -> Any:
    try:
        import ray
    except ImportError:
        raise MonkeysError(
            f"{flag} needs Ray on this machine and every node: {RAY_INSTALL}"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds, not Ray's minute of retries, when nothing listens at HOST:PORT."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray resolves them
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise MonkeysError(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}); start it with "
            "`ray start --head` on the head node, or fix --ray_address / RAY_ADDRESS"
        ) from None
