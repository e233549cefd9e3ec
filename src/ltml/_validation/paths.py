"""Contracts of paths, and value checks that must not stall an accelerator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .scalars import described


def as_path(x: Any, name: str) -> Path:
    """Return a path given as ``str`` or ``os.PathLike`` (bytes paths are refused)."""
    if isinstance(x, str | os.PathLike):
        p = os.fspath(x)
        if isinstance(p, str):
            return Path(p)
    raise TypeError(f"`{name}` must be a path (str or os.PathLike of str), got {described(x)}")


def check_file(path: Path, name: str, what: str) -> Path:
    """Check for an existing regular file (``FileNotFoundError`` naming the argument)."""
    if path.is_dir():
        raise FileNotFoundError(f"`{name}`: {what} {path} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"`{name}`: {what} {path} not found")
    return path


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing: data-dependent checks would break its graph."""
    return bool(torch.compiler.is_compiling())


def sync_free(x: Tensor) -> bool:
    """Whether checks of ``x``'s values must not wait for them.

    True when ``x`` is not on the CPU, or while ``torch.compile`` traces. Reading a value of a
    GPU tensor on the host (``.item()``, ``bool(t)``) stalls until the GPU has computed it; such
    checks become device-side assertions (:func:`assert_on_device`).
    """
    return x.device.type != "cpu" or is_compiling()


def assert_on_device(condition: Tensor, message: str) -> None:
    """Fail with ``message`` where ``condition`` (a bool scalar tensor) is False, without a sync.

    On an accelerator the failure is a device-side assertion, reported at the next
    synchronisation; on the CPU (under ``torch.compile``) a ``RuntimeError``.
    """
    torch._assert_async(condition, message)
