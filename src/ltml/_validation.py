"""Input contracts shared by every part of ltml: one check per kind of argument, one wording each.

Every public entry point checks its arguments with these functions, so that a bad argument gives
the same error wherever it is passed: a ``TypeError`` for a value of the wrong kind (a string
for a number, a list where an array is needed), a ``ValueError`` for a value of the right kind
outside its domain, a ``FileNotFoundError`` for a missing file. Each message names the argument
(in backticks), says what was expected and what was seen. ``docs/inputs.md`` lists the contracts.

Kinds of argument: integers (counts, sizes, epochs, seeds), real numbers (hyper-parameters,
probabilities), choices among strings, flags, label matrices, score / logit matrices, per-class
vectors, per-class counts, class index lists and groups, paths.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

# --------------------------------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------------------------------


def _seen(value: Any) -> str:
    """How an error shows the value it got: its type, and its repr when short."""
    text = repr(value)
    kind = type(value).__name__
    return f"{kind} {text}" if len(text) <= 40 else kind


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float | np.floating)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
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
    if not _is_int(value):
        raise TypeError(f"`{name}` must be an integer, got {_seen(value)}")
    v = int(value)
    if v < low or (high is not None and v > high):
        raise ValueError(
            f"`{name}` must be an integer {_interval(low, high, False, False)}, got {v}"
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
    if not _is_real(value):
        raise TypeError(f"`{name}` must be a real number, got {_seen(value)}")
    v = float(value)
    ok = math.isfinite(v)
    if low is not None:
        ok = ok and (v > low if low_open else v >= low)
    if high is not None:
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        bounds = _interval(low, high, low_open, high_open)
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
        raise ValueError(f"`{name}` must be one of {shown}, got {_seen(value)}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Check for a flag: ``True`` or ``False`` (a string such as ``"no"`` would read as true)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be True or False, got {_seen(value)}")
    return bool(value)


def check_callable(value: Any, name: str, *, optional: bool = False) -> None:
    """Check for a callable (a function or a module), or None when ``optional``."""
    if not (callable(value) or (optional and value is None)):
        expected = "a callable or None" if optional else "a callable"
        raise TypeError(f"`{name}` must be {expected}, got {_seen(value)}")


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: Any) -> None:
    """Check a ``reduction`` argument against torch's three values."""
    check_choice(reduction, "reduction", REDUCTIONS)


UNKNOWN_POLICIES = ("ignore", "negative")


def check_unknown(unknown: Any) -> None:
    """Check an ``unknown`` argument: the unknown-label policy of a loss."""
    check_choice(unknown, "unknown", UNKNOWN_POLICIES)


# --------------------------------------------------------------------------------------------------
# Arrays: tensors, label matrices, score matrices, per-class vectors, counts
# --------------------------------------------------------------------------------------------------

# Dtypes every part computes with; others (complex, quantised, float8, wide unsigned) are refused.
_DTYPES = (
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
    if x.dtype not in _DTYPES:
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
        odd = next((v for v in x if not _is_real(v)), None)
        if odd is not None:
            raise TypeError(
                f"`{name}` must be a sequence of real numbers, got an element {_seen(odd)}"
            )
        t = torch.tensor([float(v) for v in x], dtype=torch.float64)
    else:
        raise TypeError(
            f"`{name}` must be a tensor, array or sequence of real numbers, got {_seen(x)}"
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
        odd = next((v for v in x if not _is_int(v)), None)
        if odd is not None:
            raise TypeError(
                f"`{name}` must be a sequence of integer class indices, got an element {_seen(odd)}"
            )
        values = [int(v) for v in x]
    else:
        raise TypeError(f"`{name}` must be a sequence of integer class indices, got {_seen(x)}")
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
            f"`groups` must be a mapping of group name to class indices, got {_seen(groups)}"
        )
    checked = {}
    for key, members in groups.items():
        if not isinstance(key, str):
            raise TypeError(f"`groups` keys must be group names (str), got {_seen(key)}")
        checked[key] = as_indices(members, f"groups[{key!r}]", num_classes)
    return checked


def as_class_names(classes: Any, name: str = "classes") -> tuple[str, ...]:
    """Return class names: a non-empty sequence of distinct names (not a single string)."""
    if isinstance(classes, str | bytes):
        raise TypeError(f"`{name}` must be a sequence of class names, got a single string")
    if not isinstance(classes, Iterable):
        raise TypeError(f"`{name}` must be a sequence of class names, got {_seen(classes)}")
    names = tuple(str(c) for c in classes)
    if not names:
        raise ValueError(f"`{name}` must name at least one class, got none")
    if len(set(names)) != len(names):
        repeated = next(c for c in names if names.count(c) > 1)
        raise ValueError(f"`{name}` must be distinct, got {repeated!r} twice")
    return names


# --------------------------------------------------------------------------------------------------
# Sparse label matrices: compressed sparse rows (CSR)
# --------------------------------------------------------------------------------------------------


def as_positions(x: Any, name: str, size: int, what: str = "row indices") -> Tensor:
    """Return integers in ``[0, size)`` as a 1-D int32 or int64 tensor; repeats allowed.

    From a 1-D integer tensor or array (int32 and int64 kept as they are, without a copy:
    web-scale index arrays are large), or a sequence of ints. Booleans (a mask would silently
    become the positions 0 and 1), floats and strings are refused.
    """
    if isinstance(x, Tensor | np.ndarray):
        t = as_tensor(x, name)
        if t.ndim != 1 or t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(
                f"`{name}` must be a 1-D sequence of integer {what}, "
                f"got shape {tuple(t.shape)} of dtype {t.dtype}"
            )
        if t.dtype not in (torch.int32, torch.int64):
            t = t.to(torch.int64)
    elif isinstance(x, Sequence) and not isinstance(x, str | bytes):
        odd = next((v for v in x if not _is_int(v)), None)
        if odd is not None:
            raise TypeError(
                f"`{name}` must be a sequence of integer {what}, got an element {_seen(odd)}"
            )
        t = torch.tensor([int(v) for v in x], dtype=torch.int64)
    else:
        raise TypeError(f"`{name}` must be a sequence of integer {what}, got {_seen(x)}")
    if t.numel() and not (int(t.min()) >= 0 and int(t.max()) < size):
        bad = t[(t < 0) | (t >= size)][:5].tolist()
        raise ValueError(f"`{name}` must hold {what} in [0, {size}), got {bad}")
    return t


def check_csr(indptr: Tensor, indices: Tensor) -> None:
    """Check compressed sparse rows (CSR), 1-D integer tensors (see :func:`as_positions`).

    ``indptr`` runs from 0 to ``len(indices)`` without decreasing, and each row's
    ``indices[indptr[i]:indptr[i + 1]]`` strictly increase (sorted, each column once).
    """
    nnz = indices.numel()
    if indptr.numel() == 0 or int(indptr[0]) != 0 or int(indptr[-1]) != nnz:
        ends = tuple(indptr[[0, -1]].tolist()) if indptr.numel() else "empty"
        raise ValueError(
            f"`indptr` must run from 0 to len(`indices`) = {nnz} (N + 1 row offsets), got {ends}"
        )
    step = indptr.diff()
    if bool((step < 0).any()):
        row = int(torch.nonzero(step < 0)[0])
        raise ValueError(f"`indptr` must never decrease, got a decrease after row {row}")
    rising = indices.diff() > 0
    rising[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < nnz)] - 1] = True  # row boundaries
    if not bool(rising.all()):
        at = int(torch.nonzero(~rising)[0]) + 1
        row = int(torch.searchsorted(indptr, at, right=True)) - 1
        raise ValueError(
            f"`indices` must strictly increase within each row (sorted, each class once), "
            f"row {row} is not"
        )


def as_shape(x: Any, name: str) -> tuple[int, int]:
    """Return the shape ``(N, C)`` of a label matrix: ``N >= 0`` rows, ``C >= 1`` classes.

    At most 2**62 entries: an entry's position ``row * C + class`` is an int64 key, doubled
    while sorting.
    """
    if not (isinstance(x, Sequence) and not isinstance(x, str | bytes) and len(x) == 2):
        raise TypeError(f"`{name}` must be a pair (N, C) of integers, got {_seen(x)}")
    n, c = check_int(x[0], f"{name}[0]", low=0), check_int(x[1], f"{name}[1]")
    if n * c > 2**62:
        raise ValueError(f"`{name}` must have at most 2**62 entries (N x C), got {n} x {c}")
    return n, c


def check_signed_dtype(dtype: Any, name: str) -> torch.dtype:
    """Check for a real torch dtype that holds -1 (unknown): a signed integer or a float."""
    if not (isinstance(dtype, torch.dtype) and dtype in _DTYPES and dtype.is_signed):
        raise TypeError(
            f"`{name}` must be a signed integer or floating torch dtype (to hold -1), "
            f"got {_seen(dtype)}"
        )
    return dtype


# --------------------------------------------------------------------------------------------------
# Metric arguments: inputs, thresholds, top-k
# --------------------------------------------------------------------------------------------------


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


def check_probabilities(x: Tensor, name: str, why: str = "") -> None:
    """Check that every value of ``x`` is a probability in [0, 1] (``why`` adds the reason)."""
    if x.numel():
        low, high = (float(v) for v in torch.aminmax(x))
        if low < 0 or high > 1:
            raise ValueError(
                f"`{name}` must be probabilities in [0, 1]{why}, got values in [{low:g}, {high:g}]"
            )


def as_thresholds(threshold: Any, num_classes: int) -> Tensor:
    """Return a scalar or one threshold per class as a float64 ``(C,)`` tensor on the CPU.

    Infinite thresholds are valid (never / always predict the class); NaN and booleans are not.
    """
    if isinstance(threshold, bool) or (
        isinstance(threshold, (Tensor, np.ndarray)) and threshold.dtype in (torch.bool, np.bool_)
    ):
        raise TypeError("`threshold` must be a number or a vector of numbers, got booleans")
    if isinstance(threshold, (int, float, Tensor, np.ndarray, list, tuple)):
        try:
            value = torch.as_tensor(threshold, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            value = None
        if value is not None and value.ndim <= 1:
            if value.ndim == 1 and value.numel() != num_classes:
                raise ValueError(
                    f"`threshold` must be a number or hold one value per class "
                    f"({num_classes}), got {value.numel()} values"
                )
            nan = int(torch.isnan(value).sum())
            if nan:
                raise ValueError(f"`threshold` must not be NaN, got {nan} NaN value(s)")
            return value.expand(num_classes).clone()
    shape = tuple(threshold.shape) if hasattr(threshold, "shape") else type(threshold).__name__
    raise TypeError(
        f"`threshold` must be a number or a 1-D vector of {num_classes} numbers, got {shape}"
    )


def check_top_k(top_k: Any, num_classes: int) -> int | None:
    """Check a ``top_k`` argument: None (no top-k rule) or an integer in ``[1, num_classes]``."""
    return None if top_k is None else check_int(top_k, "top_k", low=1, high=num_classes)


# --------------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------------


def as_path(x: Any, name: str) -> Path:
    """Return a path given as ``str`` or ``os.PathLike`` (bytes paths are refused)."""
    if isinstance(x, str | os.PathLike):
        p = os.fspath(x)
        if isinstance(p, str):
            return Path(p)
    raise TypeError(f"`{name}` must be a path (str or os.PathLike of str), got {_seen(x)}")


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
