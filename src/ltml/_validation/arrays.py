"""Contracts of arrays: tensors, label, score and logit matrices, per-class vectors, counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .scalars import check_int, described, is_int, is_real

# Dtypes every part computes with; others (complex, quantised, float8, wide unsigned) are refused.
DTYPES = (
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
)


def check_tensor(x: Any, name: str) -> Tensor:
    """Check for a tensor with data (not on the meta device) of a real dtype; return it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    if x.device.type == "meta":
        raise ValueError(f"`{name}` must hold data, got a tensor on the meta device")
    if x.dtype not in DTYPES:
        raise TypeError(
            f"`{name}` must hold real numbers (bool, int or float), got dtype {x.dtype}"
        )
    return x


def as_tensor(x: Any, name: str) -> Tensor:
    """Return a tensor or a numpy array as a tensor, sharing memory where numpy's layout allows.

    Arrays that torch cannot view (big-endian, negative strides, unsigned wider than 8 bits)
    are copied into an equivalent native array first; object, string and complex arrays are
    refused.
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must be a numeric array, got an array of dtype {x.dtype}")
        if not x.dtype.isnative:
            x = x.astype(x.dtype.newbyteorder("="))
        if x.dtype.kind == "u" and x.dtype.itemsize > 1:
            if x.size and int(x.max()) > np.iinfo(np.int64).max:
                raise ValueError(f"`{name}` values must fit in int64, got {int(x.max())}")
            x = x.astype(np.int64)
        if any(s < 0 for s in x.strides):
            x = np.ascontiguousarray(x)
        return check_tensor(torch.from_numpy(x), name)
    if isinstance(x, Tensor):
        return check_tensor(x, name)
    raise TypeError(f"`{name}` must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def check_matrix(x: Tensor, name: str, num_classes: int | None = None) -> None:
    """Check that ``x`` is ``(N, C)`` with ``C >= 1``, and ``C == num_classes`` when given."""
    if x.ndim != 2:
        raise ValueError(
            f"`{name}` must be 2-D of shape (N, C), got {x.ndim}-D with shape {tuple(x.shape)}"
        )
    if num_classes is not None and x.shape[1] != num_classes:
        raise ValueError(
            f"`{name}` must have {num_classes} columns (num_classes), got shape {tuple(x.shape)}"
        )
    if x.shape[1] == 0:
        raise ValueError(
            f"`{name}` must have at least one column (class), got shape {(x.shape[0], 0)}"
        )


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Check that two tensors have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_same_rows(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Check that two tensors describe the same samples: equal first dimension ``N``."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same number of rows N, "
            f"got {a.shape[0]} and {b.shape[0]}"
        )


def check_floating(x: Tensor, name: str) -> None:
    """Check that ``x`` is a floating-point tensor."""
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {x.dtype}")


def finite_contract(name: str) -> str:
    """Word the finite-values contract: the start of :func:`check_finite`'s error.

    Also the message of the device-side assertion that checks the same without a sync.
    """
    return f"`{name}` must be finite"


def check_finite(x: Tensor, name: str) -> None:
    """Check that ``x`` holds no NaN or infinity."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    # A NaN or an infinity makes the sum non-finite: one pass and no (N, C) temporary in the
    # common case. Only then (or if a finite sum overflowed) are the bad values counted.
    if bool(torch.isfinite(x.sum(dtype=torch.promote_types(x.dtype, torch.float32)))):
        return
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    if nan or inf:
        raise ValueError(f"{finite_contract(name)}, got {nan} NaN and {inf} infinite value(s)")


def check_non_negative(x: Tensor, name: str) -> None:
    """Check that ``x`` holds no negative value (weights; counts: :func:`check_class_counts`)."""
    if bool((x < 0).any()):
        raise ValueError(f"`{name}` must be non-negative, got {x.min().item()}")


def check_shape(x: Tensor, name: str, shape: tuple[int, ...]) -> None:
    """Check that ``x`` has exactly the shape ``shape``."""
    if tuple(x.shape) != shape:
        raise ValueError(f"`{name}` must have shape {shape}, got {tuple(x.shape)}")


def labels_contract(name: str, *, allow_unknown: bool = True, soft: bool = False) -> str:
    """Word the label contract: the start of :func:`check_labels`'s error.

    Also the message of the device-side assertion that checks the same without a sync.
    """
    allowed = "{0, 1, -1}" if allow_unknown else "{0, 1}"
    expected = ("{-1} ∪ [0, 1]" if allow_unknown else "[0, 1]") if soft else allowed
    return f"`{name}` must contain only values in {expected}"


def check_labels(y: Tensor, name: str, *, allow_unknown: bool = True, soft: bool = False) -> None:
    """Check that ``y`` holds only 0 / 1 (and -1 = unknown when ``allow_unknown``).

    With ``soft``, any value in [0, 1] is a target too (mixed or smoothed labels). An unsigned
    dtype cannot hold -1: there, only values in [0, 1] are valid (a -1 cast to ``uint8`` reads
    255 and is refused, never taken for "unknown").
    """
    if y.dtype == torch.bool or y.numel() == 0:
        return
    low = -1 if allow_unknown and y.dtype != torch.uint8 else 0
    if not y.is_floating_point():
        # Integers in [low, 1] are valid: one pass, no per-value masks.
        lo, hi = torch.aminmax(y)
        if lo >= low and hi <= 1:
            return
    bad = ~((y >= 0) & (y <= 1)) if soft else ((y != 0) & (y != 1))  # NaN is bad too
    if low == -1:
        bad &= y != -1
    if bool(bad.any()):
        seen = torch.unique(y[bad])
        shown = ", ".join(f"{v:g}" for v in seen[:5].tolist())
        hint = (
            " (an unsigned dtype cannot hold -1: use a signed one)"
            if y.dtype == torch.uint8
            else ""
        )
        raise ValueError(
            f"{labels_contract(name, allow_unknown=allow_unknown, soft=soft)}, got {shown}"
            + (" (and more)" if seen.numel() > 5 else "")
            + hint
        )


def check_holds_unknown(y: Tensor, name: str, why: str = "") -> None:
    """Check that ``y``'s dtype can hold -1 (unknown): a signed integer or a float.

    ``bool`` and ``uint8`` cannot: a -1 written into them reads ``True`` (a positive) or 255.
    ``why``: what would write the -1, and how else to call, for the message.
    """
    if not y.dtype.is_signed:
        raise TypeError(
            f"`{name}` must have a dtype that holds -1 (unknown), a signed integer or a float, "
            f"got dtype {y.dtype}{why}"
        )


def as_labels(
    x: Any, name: str, num_classes: int | None = None, *, allow_unknown: bool = True
) -> Tensor:
    """Apply the label-matrix contract: an ``(N, C)`` array or tensor of 0 / 1 (-1 = unknown).

    Any real dtype (bool, signed or unsigned integers, floats holding those values); never a
    nested list, which could be read either as a dense matrix or as per-image class lists.
    """
    y = as_tensor(x, name)
    check_matrix(y, name, num_classes)
    check_labels(y, name, allow_unknown=allow_unknown)
    return y


def as_scores(x: Any, name: str, num_classes: int | None = None) -> Tensor:
    """Apply the score-matrix contract: an ``(N, C)`` array or tensor of finite real numbers."""
    s = as_tensor(x, name)
    check_matrix(s, name, num_classes)
    if s.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold real numbers, got dtype {s.dtype}")
    check_finite(s, name)
    return s


def as_logits(x: Any, name: str, num_classes: int | None = None) -> Tensor:
    """Apply the logit contract of the losses: a floating ``(N, C)`` tensor (values apart)."""
    z = check_tensor(x, name)
    check_floating(z, name)
    check_matrix(z, name, num_classes)
    return z


def as_class_vector(x: Any, name: str, num_classes: int | None = None) -> Tensor:
    """Return a per-class vector of real numbers, shape ``(C,)``, from a tensor, array or sequence.

    Sequences become float64 tensors; tensors are returned as given (gradients kept). Only the
    form is checked here (no device synchronisation): values are checked where they are stored.
    """
    if isinstance(x, Tensor | np.ndarray):
        t = as_tensor(x, name)
    elif isinstance(x, Sequence) and not isinstance(x, str | bytes):
        odd = next((v for v in x if not is_real(v)), None)
        if odd is not None:
            raise TypeError(
                f"`{name}` must be a sequence of real numbers, got an element {described(odd)}"
            )
        t = torch.tensor([float(v) for v in x], dtype=torch.float64)
    else:
        raise TypeError(
            f"`{name}` must be a tensor, array or sequence of real numbers, got {described(x)}"
        )
    if t.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold real numbers, got dtype {t.dtype}")
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 1-D vector (one value per class), "
            f"got shape {tuple(t.shape)}"
        )
    if num_classes is not None and t.numel() != num_classes:
        raise ValueError(
            f"`{name}` must have {num_classes} entries (one per class), got shape {tuple(t.shape)}"
        )
    return t


def check_class_counts(
    counts: Tensor, name: str, num_samples: Any = None, total_name: str = "num_samples"
) -> None:
    """Check per-class counts: whole, non-negative, and at most the ``total_name`` images."""
    check_finite(counts, name)
    if bool((counts < 0).any()):
        raise ValueError(f"`{name}` must be non-negative counts, got {counts.min().item():g}")
    if counts.is_floating_point() and bool((counts != counts.round()).any()):
        odd = counts[counts != counts.round()][0].item()
        raise ValueError(f"`{name}` must be whole numbers (counts), got {odd:g}")
    if num_samples is not None:
        total = check_int(num_samples, total_name)
        if bool((counts > total).any()):
            raise ValueError(
                f"`{name}` cannot exceed {total_name}={total}, got {counts.max().item():g}"
            )


def as_counts(
    x: Any, name: str, num_samples: Any = None, total_name: str = "num_samples"
) -> Tensor:
    """Apply the per-class count contract: ``(C,)`` whole non-negative numbers; as float64."""
    counts = as_class_vector(x, name)
    check_class_counts(counts, name, num_samples, total_name)
    return counts.to(torch.float64)


def counts_tensor(class_counts: Any, num_images: Any = None) -> Tensor:
    """Apply the count contract to a ``class_counts`` argument (at most ``num_images``)."""
    return as_counts(class_counts, "class_counts", num_images, "num_images")


def as_indices(x: Any, name: str, size: int) -> list[int]:
    """Return distinct integer indices in ``[0, size)`` from a sequence or a 1-D integer array.

    Booleans (a mask would silently become the indices 0 and 1), floats and strings are refused.
    """
    if isinstance(x, Tensor | np.ndarray):
        t = as_tensor(x, name)
        if t.ndim != 1 or t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(
                f"`{name}` must be a 1-D sequence of integer class indices, "
                f"got shape {tuple(t.shape)} of dtype {t.dtype}"
            )
        values = t.tolist()
    elif isinstance(x, Sequence) and not isinstance(x, str | bytes):
        odd = next((v for v in x if not is_int(v)), None)
        if odd is not None:
            raise TypeError(
                f"`{name}` must be a sequence of integer class indices, "
                f"got an element {described(odd)}"
            )
        values = [int(v) for v in x]
    else:
        raise TypeError(f"`{name}` must be a sequence of integer class indices, got {described(x)}")
    bad = [i for i in values if not 0 <= i < size]
    if bad:
        raise ValueError(f"`{name}` must hold class indices in [0, {size}), got {bad[:5]}")
    if len(set(values)) != len(values):
        repeated = next(i for i in values if values.count(i) > 1)
        raise ValueError(f"`{name}` must list each class once, got class {repeated} more than once")
    return values


def check_groups(groups: Any, num_classes: int) -> dict[str, list[int]]:
    """Check named class groups: a mapping of ``str`` to distinct class indices in ``[0, C)``."""
    if not isinstance(groups, Mapping):
        raise TypeError(
            f"`groups` must be a mapping of group name to class indices, got {described(groups)}"
        )
    checked = {}
    for key, members in groups.items():
        if not isinstance(key, str):
            raise TypeError(f"`groups` keys must be group names (str), got {described(key)}")
        checked[key] = as_indices(members, f"groups[{key!r}]", num_classes)
    return checked


def as_class_names(classes: Any, name: str = "classes") -> tuple[str, ...]:
    """Return class names: a non-empty sequence of distinct names (not a single string)."""
    if isinstance(classes, str | bytes):
        raise TypeError(f"`{name}` must be a sequence of class names, got a single string")
    if not isinstance(classes, Iterable):
        raise TypeError(f"`{name}` must be a sequence of class names, got {described(classes)}")
    names = tuple(str(c) for c in classes)
    if not names:
        raise ValueError(f"`{name}` must name at least one class, got none")
    if len(set(names)) != len(names):
        repeated = next(c for c in names if names.count(c) > 1)
        raise ValueError(f"`{name}` must be distinct, got {repeated!r} twice")
    return names
