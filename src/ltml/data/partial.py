"""Partial labels: simulate missing labels on any label matrix, and PLT-style benchmarks.

Zhang et al. (ICCV 2023, "Learning in Imperfect Environment: Multi-Label Classification with
Long-Tailed Distribution and Partial Labels", code "COMIC") define PLT-VOC and PLT-COCO: a
long-tailed subset of VOC2012 trainval / COCO train2017 with 40% of the labels missing. The
authors released their label files but no script that drops the labels; :func:`drop_labels` and
:func:`make_plt` are the documented, seeded recipe of this library (docs: "Partial labels").
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, TypeVar, cast

import numpy as np
import torch
from torch import Tensor

from .._label_forms import (
    Entries,
    as_form,
    indptr_from_counts,
    read_labels,
    shape_of,
    stack_rows,
)
from .._validation import (
    check_choice,
    check_holds_unknown,
    check_int,
    check_probability,
    check_scalar,
    check_seed,
)
from .longtail import make_long_tailed, pareto_quotas

__all__ = ["PLT_PROFILES", "PLTSubset", "drop_labels", "make_plt"]

Scheme = Literal["random", "per-class", "positives"]
SCHEMES = ("random", "per-class", "positives")
LabelMatrix = TypeVar("LabelMatrix")
BLOCK_ENTRIES = 1 << 22
"""Entries (rows x C) of the dense row blocks a sparse form is walked in: 32 MB of draws."""


def drop_labels(
    labels: LabelMatrix,
    rate: float,
    *,
    scheme: Scheme = "random",
    seed: int = 0,
    unknown_value: Literal[-1, 0] = -1,
) -> LabelMatrix:
    """Hide a fraction of the known labels of a label matrix: simulated partial labels.

    Schemes (every one deterministic given ``seed``):

    - ``"random"``: every known label (0 or 1) is dropped independently with probability
      ``rate`` (the PLT protocol's "40% missing").
    - ``"per-class"``: in every class exactly ``round(rate * known)`` of its known labels are
      dropped, chosen at random: each class keeps a fixed number of known labels.
    - ``"positives"``: only known positives are dropped, each with probability ``rate`` (the
      negatives stay known): missing annotations of objects that are present.

    A dropped label becomes ``unknown_value``: -1 (a known-unknown, which every ltml part
    ignores or treats by its unknown-label policy) or 0, COMIC's convention, in which a dropped
    positive is indistinguishable from a negative (and a dropped negative is unchanged).

    A sparse form (scipy / torch sparse, :class:`ltml.VerifiedLabels`) gives the same labels
    as its dense matrix would, in its own form: the draws are those of the dense matrix, made in
    blocks of rows, so time follows ``N x C`` and memory the stored entries. A scipy / torch
    sparse matrix stores its dropped negatives as -1 entries ("random" and "per-class" with
    ``unknown_value=-1``: about ``rate`` of all its entries).

    Parameters
    ----------
    labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        0 / 1 labels; entries already -1 stay -1. Any form :func:`~ltml.data.class_counts`
        takes.
    rate : float
        Fraction of the known labels (of the positives for ``"positives"``) to drop, in [0, 1].
    scheme : {"random", "per-class", "positives"}
        How the dropped labels are chosen.
    seed : int
        Seed; the result is a function of ``(labels, rate, scheme, seed)``.
    unknown_value : {-1, 0}
        What a dropped label becomes.

    Returns
    -------
    Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        A new label matrix of the same type, dtype and device as ``labels`` (the same sparse
        format).

    Examples
    --------
    >>> import torch
    >>> from ltml.data import drop_labels
    >>> full = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0]])
    >>> drop_labels(full, 0.5, seed=0)
    tensor([[ 1, -1, -1, -1],
            [ 0,  1,  1,  0],
            [ 1,  1,  0, -1]])
    >>> drop_labels(full, 0.5, scheme="per-class", seed=0, unknown_value=0)
    tensor([[0, 0, 0, 0],
            [0, 0, 0, 0],
            [0, 1, 0, 0]])
    """
    y = read_labels(labels, "labels")
    rate = check_probability(rate, "rate")
    check_choice(scheme, "scheme", SCHEMES)
    if unknown_value not in (-1, 0) or isinstance(unknown_value, bool):
        raise ValueError(f"`unknown_value` must be -1 or 0, got {unknown_value!r}")
    seed = check_seed(seed)
    if unknown_value == -1:
        why = " (a dropped label becomes -1): convert it, or pass unknown_value=0"
        check_holds_unknown(_result_dtype(labels, y), "labels", why)
    if isinstance(y, Entries):
        return cast(
            LabelMatrix, as_form(_drop_sparse(y, rate, scheme, seed, unknown_value), labels)
        )
    values = np.asarray(y.detach().cpu())
    eligible = values == 1 if scheme == "positives" else values >= 0
    rng = np.random.default_rng(seed)
    if scheme == "per-class":
        # Random keys, eligible entries first; the round(rate * known) smallest keys are dropped.
        keys = np.where(eligible, rng.random(values.shape), np.inf)
        ranks = np.argsort(np.argsort(keys, axis=0, kind="stable"), axis=0, kind="stable")
        dropped = eligible & (ranks < np.round(rate * eligible.sum(axis=0)))
    else:
        dropped = eligible & (rng.random(values.shape) < rate)
    result = np.where(dropped, unknown_value, values).astype(values.dtype)
    if isinstance(labels, np.ndarray):
        return cast(LabelMatrix, result)
    return cast(LabelMatrix, torch.from_numpy(result).to(y.device))


def _drop_sparse(y: Entries, rate: float, scheme: str, seed: int, unknown_value: int) -> Entries:
    """:func:`drop_labels` of a sparse form: the dense draws, one block of rows at a time."""
    (n, c), rng = y.shape, np.random.default_rng(seed)
    if n == 0:
        return y
    step = max(1, BLOCK_ENTRIES // c)
    starts = range(0, n, step)
    if scheme != "per-class":
        blocks = []
        for start in starts:
            values = y.dense_rows(start, min(start + step, n))
            eligible = values == 1 if scheme == "positives" else values >= 0
            values[eligible & (rng.random(values.shape) < rate)] = unknown_value
            blocks.append(values)
        return stack_rows(blocks, c, y.implicit)
    # Per class: the keys of the eligible entries, row-major, then the smallest of each class.
    keys, cols, rows = [], [], []
    for start in starts:
        values = y.dense_rows(start, min(start + step, n))
        draws = rng.random(values.shape)
        r, k = np.nonzero(values >= 0)
        keys.append(draws[r, k])
        cols.append(k)
        rows.append(r + start)
    key, col, row = np.concatenate(keys), np.concatenate(cols), np.concatenate(rows)
    order = np.lexsort((key, col))  # by class, then key; ties in row order, as a stable argsort
    col_ptr = indptr_from_counts(np.bincount(col, minlength=c))
    rank = np.arange(order.size) - col_ptr[col[order]]
    dropped = np.sort(order[rank < np.round(rate * np.diff(col_ptr))[col[order]]])  # row-major
    bounds = np.searchsorted(row[dropped], [*starts, n])
    blocks = []
    for j, start in enumerate(starts):
        values = y.dense_rows(start, min(start + step, n))
        inside = dropped[bounds[j] : bounds[j + 1]]
        values[row[inside] - start, col[inside]] = unknown_value
        blocks.append(values)
    return stack_rows(blocks, c, y.implicit)


class PLTProfile(NamedTuple):
    """A PLT benchmark's published training-set profile (Zhang et al., ICCV 2023)."""

    images: int
    classes: int
    max_count: int
    min_count: int


# Counted on the partially labelled training sets (40% of the labels missing).
PLT_PROFILES: dict[str, PLTProfile] = {
    "voc": PLTProfile(images=2569, classes=20, max_count=1117, min_count=7),
    "coco": PLTProfile(images=2962, classes=80, max_count=1240, min_count=6),
}


class PLTSubset(NamedTuple):
    """A PLT-style training set: the pool images selected and their partial labels."""

    indices: Tensor
    labels: Any  # a Tensor; a sparse pool's own form


def make_plt(
    pool_labels: Any,
    profile: Literal["voc", "coco"] | int,
    *,
    missing_rate: float = 0.4,
    scheme: Scheme = "random",
    seed: int = 0,
    unknown_value: Literal[-1, 0] = -1,
) -> PLTSubset:
    """Build a PLT-VOC / PLT-COCO-style set: a long-tailed subset with labels missing.

    1. A long-tailed subset of the pool by the VOC-LT / COCO-LT recipe
       (:func:`ltml.data.pareto_quotas`, shape 6, and :func:`ltml.data.make_long_tailed`),
       whose largest quota is the published maximum count divided by ``1 - missing_rate``
       (so that, after the drop, the largest class is near the published one): 1,862 for
       ``"voc"`` (VOC2012 trainval pool), 2,067 for ``"coco"`` (COCO train2017 pool).
    2. :func:`drop_labels` with ``missing_rate``, ``scheme`` and ``unknown_value``.

    The authors released no script for either step; this recipe does not reproduce their
    files, and its class profile differs from the published one (see the "Partial labels"
    guide for the measured profile). Test sets stay fully labelled.

    Parameters
    ----------
    pool_labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        0 / 1 labels of the pool (VOC2012 trainval or COCO train2017, 20 / 80 classes), in any
        form :func:`~ltml.data.class_counts` takes.
    profile : {"voc", "coco"} or int
        The published profile to aim at, or the largest quota itself.
    missing_rate, scheme, seed, unknown_value
        As in :func:`drop_labels`; ``seed`` also seeds the subset selection.

    Returns
    -------
    PLTSubset
        ``indices`` (M,) of the selected pool images, sorted; ``labels`` (M, C), int64 (a
        sparse pool: its own form and dtype).

    Examples
    --------
    >>> import torch
    >>> from ltml.data import class_counts, make_plt
    >>> g = torch.Generator().manual_seed(0)
    >>> pool = (torch.rand(5000, 4, generator=g) < 0.05).long()
    >>> plt_set = make_plt(pool, 100, seed=0)
    >>> len(plt_set.indices), class_counts(plt_set.labels).tolist()
    (95, [0, 60, 2, 8])
    """
    check_scalar(missing_rate, "missing_rate", low=0.0, high=1.0, high_open=True)
    if isinstance(profile, str):
        check_choice(profile, "profile", tuple(PLT_PROFILES))
        max_count = round(PLT_PROFILES[profile].max_count / (1.0 - missing_rate))
    else:
        max_count = check_int(profile, "profile")
    form = read_labels(pool_labels, "pool_labels")
    quotas = pareto_quotas(shape_of(form)[1], max_count)
    indices = make_long_tailed(form, quotas, seed=seed)
    if isinstance(form, Entries):
        subset = as_form(form.rows(indices.numpy()), pool_labels)
    else:
        subset = form.to(torch.int64).cpu()[indices]
    labels = drop_labels(
        subset, missing_rate, scheme=scheme, seed=seed, unknown_value=unknown_value
    )
    return PLTSubset(indices, labels)


def _result_dtype(labels: Any, form: Tensor | Entries) -> Tensor:
    """Return an empty tensor of the dtype ``drop_labels`` returns (the labels' own): -1 check."""
    if isinstance(form, Tensor):
        return form
    if isinstance(labels, Tensor):  # torch sparse
        return torch.empty(0, dtype=labels.dtype)
    # scipy holds a numpy dtype; a VerifiedLabels has no dtype of its own (int8 verdicts)
    return torch.from_numpy(np.empty(0, dtype=getattr(labels, "dtype", np.int8)))
