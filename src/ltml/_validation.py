"""Input checks shared by every part of ltml.

Each check raises with one wording: the argument's name, what was expected and what was seen, so
that an error from a sampler, a loss or a metric reads the same way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_tensor(x: Any, name: str) -> Tensor:
    """Return ``x`` as a tensor without copying where possible (numpy arrays share memory)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"`{name}` must be a numeric array, got an array of dtype object")
        return torch.from_numpy(x)
    raise TypeError(f"`{name}` must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def check_matrix(x: Tensor, name: str, num_classes: int | None = None) -> None:
    """Check that ``x`` is ``(N, C)``, with ``C == num_classes`` when given."""
    if x.ndim != 2:
        raise ValueError(
            f"`{name}` must be 2-D of shape (N, C), got {x.ndim}-D with shape {tuple(x.shape)}"
        )
    if num_classes is not None and x.shape[1] != num_classes:
        raise ValueError(
            f"`{name}` must have {num_classes} columns (num_classes), got shape {tuple(x.shape)}"
        )


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Check that two tensors have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_floating(x: Tensor, name: str) -> None:
    """Check that ``x`` is a floating-point tensor."""
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {x.dtype}")


def check_finite(x: Tensor, name: str) -> None:
    """Check that ``x`` holds no NaN or infinity."""
    if not x.is_floating_point():
        return
    # A NaN or an infinity makes the sum non-finite: one pass and no (N, C) temporary in the
    # common case. Only then (or if a finite sum overflowed) are the bad values counted.
    if bool(torch.isfinite(x.sum(dtype=torch.promote_types(x.dtype, torch.float32)))):
        return
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    if nan or inf:
        raise ValueError(f"`{name}` must be finite, got {nan} NaN and {inf} infinite value(s)")


def check_labels(y: Tensor, name: str, *, allow_unknown: bool = True, soft: bool = False) -> None:
    """Check that ``y`` holds only 0 / 1 (and -1 = unknown when ``allow_unknown``).

    With ``soft``, any value in [0, 1] is a target too (mixed or smoothed labels).
    """
    if y.dtype == torch.bool or y.numel() == 0:
        return
    low = -1 if allow_unknown else 0
    if not y.is_floating_point():
        # Integers in [low, 1] are valid: one pass, no per-value masks.
        lo, hi = torch.aminmax(y)
        if lo >= low and hi <= 1:
            return
    bad = ((y < 0) | (y > 1)) if soft else ((y != 0) & (y != 1))
    if allow_unknown:
        bad &= y != -1
    if bool(bad.any()):
        seen = torch.unique(y[bad])
        shown = ", ".join(f"{v:g}" for v in seen[:5].tolist())
        allowed = (-1, 0, 1) if allow_unknown else (0, 1)
        expected = ("{-1} ∪ [0, 1]" if allow_unknown else "[0, 1]") if soft else str(set(allowed))
        raise ValueError(
            f"`{name}` must contain only values in {expected}, got {shown}"
            + (" (and more)" if seen.numel() > 5 else "")
        )


def check_class_counts(counts: Tensor, name: str, num_samples: int | None = None) -> None:
    """Check per-class positive counts: 1-D, non-negative, and at most ``num_samples``."""
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 1-D sequence of per-class counts, "
            f"got shape {tuple(counts.shape)}"
        )
    check_finite(counts, name)
    if bool((counts < 0).any()):
        raise ValueError(f"`{name}` must be non-negative, got {counts.min().item()}")
    if num_samples is not None:
        if num_samples <= 0:
            raise ValueError(f"`num_samples` must be positive, got {num_samples}")
        if bool((counts > num_samples).any()):
            raise ValueError(
                f"`{name}` cannot exceed num_samples={num_samples}, got {counts.max().item()}"
            )


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    """Check a ``reduction`` argument against torch's three values."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")


def check_scalar(value: float, name: str, *, low: float, low_open: bool = False) -> None:
    """Check a hyper-parameter against its lower bound (``value > low`` when ``low_open``)."""
    ok = value > low if low_open else value >= low
    if not (ok and math.isfinite(value)):
        raise ValueError(f"`{name}` must be {'>' if low_open else '>='} {low}, got {value}")


def is_compiling() -> bool:
    """Whether ``torch.compile`` is tracing: data-dependent checks would break its graph."""
    return bool(torch.compiler.is_compiling())
