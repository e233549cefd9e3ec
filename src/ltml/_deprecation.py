"""Deprecations: an old name or form keeps working and warns, naming the new one."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TypeVar

from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")


def renamed_keyword(old: str, new: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept keyword ``old`` as ``new``, with a ``FutureWarning`` (a user-facing deprecation)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"got both `{old}` (deprecated) and `{new}`: pass `{new}` only")
                warn_renamed(old, new)
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def warn_renamed(old: str, new: str) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (pointing at the caller's caller)."""
    warn_deprecated(
        f"`{old}` is deprecated and will be removed in a future release; use `{new}`", stacklevel=3
    )


def warn_deprecated(message: str, *, stacklevel: int = 2) -> None:
    """Warn with ``message`` as a ``FutureWarning`` (a user-facing deprecation).

    ``stacklevel`` counts from the caller, as if it called ``warnings.warn`` itself: 2 (the
    default) points at the caller's caller.
    """
    warnings.warn(message, FutureWarning, stacklevel=stacklevel + 1)
