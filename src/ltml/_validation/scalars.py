"""Contracts of scalar arguments: integers, seeds, real numbers, probabilities, choices, flags."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np


def described(value: Any) -> str:
    """How an error shows the value it got: its type, and its repr when short."""
    text = repr(value)
    kind = type(value).__name__
    return f"{kind} {text}" if len(text) <= 40 else kind


def is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    return is_int(value) or isinstance(value, float | np.floating)


def interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    def show(v: float) -> str:
        return str(v) if isinstance(v, int) else f"{v:g}"

    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {show(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {show(high)}"
    return ""


def check_int(value: Any, name: str, *, low: int = 1, high: int | None = None) -> int:
    """Check for an integer (a Python or numpy int, not a bool or a float) in ``[low, high]``.

    The contract of counts, sizes, epochs and ranks (``low=1`` for positive, ``0`` for
    non-negative).
    """
    if not is_int(value):
        raise TypeError(f"`{name}` must be an integer, got {described(value)}")
    v = int(value)
    if v < low or (high is not None and v > high):
        raise ValueError(
            f"`{name}` must be an integer {interval(low, high, False, False)}, got {v}"
        )
    return v


def check_seed(value: Any, name: str = "seed") -> int:
    """Check for a random seed: a non-negative integer (numpy refuses negative seeds)."""
    return check_int(value, name, low=0)


def check_scalar(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check for a finite real number (not a bool, a string or a tensor) within the bounds."""
    if not is_real(value):
        raise TypeError(f"`{name}` must be a real number, got {described(value)}")
    v = float(value)
    ok = math.isfinite(v)
    if low is not None:
        ok = ok and (v > low if low_open else v >= low)
    if high is not None:
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        bounds = interval(low, high, low_open, high_open)
        raise ValueError(
            f"`{name}` must be a finite real number{' ' + bounds if bounds else ''}, got {v}"
        )
    return v


def check_probability(value: Any, name: str) -> float:
    """Check for a real number in [0, 1]."""
    return check_scalar(value, name, low=0.0, high=1.0)


def check_choice(value: Any, name: str, choices: Collection[Any]) -> Any:
    """Check for one of a few allowed values (strings, or None where None is allowed)."""
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {shown}, got {described(value)}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Check for a flag: ``True`` or ``False`` (a string such as ``"no"`` would read as true)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be True or False, got {described(value)}")
    return bool(value)


def check_callable(value: Any, name: str, *, optional: bool = False) -> None:
    """Check for a callable (a function or a module), or None when ``optional``."""
    if not (callable(value) or (optional and value is None)):
        expected = "a callable or None" if optional else "a callable"
        raise TypeError(f"`{name}` must be {expected}, got {described(value)}")


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: Any) -> None:
    """Check a ``reduction`` argument against torch's three values."""
    check_choice(reduction, "reduction", REDUCTIONS)


UNKNOWN_POLICIES = ("ignore", "negative")


def check_unknown(unknown: Any) -> None:
    """Check an ``unknown`` argument: the unknown-label policy of a loss."""
    check_choice(unknown, "unknown", UNKNOWN_POLICIES)
