"""Contracts of metric arguments: score / label inputs, thresholds, top-k."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .arrays import (
    DTYPES,
    as_labels,
    as_scores,
    as_tensor,
    check_labels,
    check_matrix,
    check_same_shape,
    finite_contract,
    labels_contract,
)
from .paths import assert_on_device
from .scalars import check_int, described


def as_metric_inputs(
    scores: Any, targets: Any, num_classes: int | None = None
) -> tuple[Tensor, Tensor]:
    """Apply a metric's contracts: ``(N, C)`` scores and labels of one shape; return both.

    The scores come back detached: metrics need no autograd graph.
    """
    s = as_scores(scores, "scores", num_classes).detach()
    y = as_labels(targets, "targets")
    check_same_shape(s, y, "scores", "targets")
    return s, y


def as_device_metric_inputs(
    scores: Tensor, targets: Any, num_classes: int | None = None, probs: str | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`as_metric_inputs` for scores on an accelerator, without reading values back.

    Shapes and dtypes are checked on the host as there; the values of the scores (finite, and
    probabilities when ``probs`` gives the reason) by device-side assertions worded alike.
    Targets on the CPU are checked eagerly (no device involved); on the device, by an assertion.
    """
    s = as_tensor(scores, "scores")
    check_matrix(s, "scores", num_classes)
    if s.dtype == torch.bool:
        raise TypeError(f"`scores` must hold real numbers, got dtype {s.dtype}")
    s = s.detach()
    y = as_tensor(targets, "targets")
    check_matrix(y, "targets")
    check_same_shape(s, y, "scores", "targets")
    if y.device.type == "cpu":
        check_labels(y, "targets")
    elif y.dtype != torch.bool and y.numel():
        # an unsigned dtype cannot hold -1 (a -1 cast to uint8 reads 255 and is refused)
        ok = y <= 1 if y.dtype == torch.uint8 else (y == 0) | (y == 1) | (y == -1)
        assert_on_device(ok.all(), labels_contract("targets"))
    if s.numel() and s.is_floating_point():
        assert_on_device(torch.isfinite(s).all(), finite_contract("scores"))
    if probs is not None and s.numel():
        message = f"`scores` must be probabilities in [0, 1]{probs}"
        assert_on_device(((s >= 0) & (s <= 1)).all(), message)
    return s, y


def check_probabilities(x: Tensor, name: str, why: str = "") -> None:
    """Check that every value of ``x`` is a probability in [0, 1] (``why`` adds the reason)."""
    if x.numel():
        low, high = (float(v) for v in torch.aminmax(x))
        if low < 0 or high > 1:
            raise ValueError(
                f"`{name}` must be probabilities in [0, 1]{why}, got values in [{low:g}, {high:g}]"
            )


def as_thresholds(threshold: Any, num_classes: int, name: str = "threshold") -> Tensor:
    """Return a scalar or one threshold per class as a float64 ``(C,)`` tensor on the CPU.

    Infinite thresholds are valid (never / always predict the class); NaN and booleans are not.
    ``name``: the argument's name, for the error messages.
    """
    if isinstance(threshold, bool) or (
        isinstance(threshold, (Tensor, np.ndarray)) and threshold.dtype in (torch.bool, np.bool_)
    ):
        raise TypeError(f"`{name}` must be a number or a vector of numbers, got booleans")
    if (isinstance(threshold, Tensor) and threshold.dtype not in DTYPES) or (
        isinstance(threshold, np.ndarray) and threshold.dtype.kind not in "iuf"
    ):
        raise TypeError(
            f"`{name}` must be a number or a vector of real numbers, got dtype {threshold.dtype}"
        )
    real = (int, float, np.integer, np.floating)
    if isinstance(threshold, (*real, Tensor, np.ndarray, list, tuple)):
        try:
            value = torch.as_tensor(threshold, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            value = None
        if value is not None and value.ndim <= 1:
            if value.ndim == 1 and value.numel() != num_classes:
                raise ValueError(
                    f"`{name}` must be a number or hold one value per class "
                    f"({num_classes}), got {value.numel()} values"
                )
            nan = int(torch.isnan(value).sum())
            if nan:
                raise ValueError(f"`{name}` must not be NaN, got {nan} NaN value(s)")
            return value.expand(num_classes).clone()
    shape = getattr(threshold, "shape", ())
    seen = str(tuple(shape)) if len(shape) > 1 else described(threshold)
    raise TypeError(
        f"`{name}` must be a number or a 1-D vector of {num_classes} numbers, got {seen}"
    )


def check_top_k(top_k: Any, num_classes: int) -> int | None:
    """Check a ``top_k`` argument: None (no top-k rule) or an integer in ``[1, num_classes]``."""
    return None if top_k is None else check_int(top_k, "top_k", low=1, high=num_classes)
