"""Long-tailed subsets of a multi-label pool, following the VOC-LT / COCO-LT protocol.

Wu et al. (ECCV 2020, "Distribution-Balanced Loss for Multi-Label Classification in Long-Tailed
Datasets") built VOC-LT and COCO-LT by giving each class a quota from a Pareto profile (shape 6),
ranking the classes by how much they co-occur with the others, then adding and removing images
greedily, class by class. :func:`pareto_quotas` gives the profile and :func:`make_long_tailed`
does the selection on any ``(N, C)`` label matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._label_forms import image_positives, pair_counts, read_labels, shape_of, transpose
from .._validation import as_counts, check_bool, check_int, check_scalar, check_seed


def _pareto_pdf(x: np.ndarray, shape: float) -> np.ndarray:
    """Pareto density with scale 1: ``shape / x**(shape + 1)`` for ``x >= 1``, else 0."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 1, shape * np.maximum(x, 1.0) ** -(shape + 1), 0.0)


def _pareto_ppf(q: float, shape: float) -> float:
    """Pareto quantile with scale 1: ``(1 - q) ** (-1 / shape)`` (inf where it overflows)."""
    return float(np.float64(1.0 - q) ** (-1.0 / shape))


def pareto_quotas(num_classes: int, max_count: int, shape: float = 6.0) -> Tensor:
    r"""Per-class image quotas following a Pareto profile, largest first.

    The VOC-LT / COCO-LT recipe (Wu et al., ECCV 2020): evaluate the Pareto density of shape
    :math:`b` on :math:`C` evenly spaced points from 1 to its 99% quantile and rescale it so that
    the first class gets ``max_count`` images,

    .. math::
        x_k = 1 + k \frac{F^{-1}(0.99) - 1}{C - 1}, \qquad
        n_k = \left\lfloor \frac{b}{x_k^{b+1}} \cdot \frac{\text{max\_count} - 1}{b} + 1
        \right\rfloor, \qquad F^{-1}(q) = (1 - q)^{-1/b}.

    Parameters
    ----------
    num_classes : int
        Number of classes :math:`C` (at least 1).
    max_count : int
        Quota of the most frequent class (800 for VOC-LT, 1200 for COCO-LT).
    shape : float
        Pareto shape :math:`b` (6 in the protocol); larger values give a steeper tail.

    Returns
    -------
    Tensor, shape (C,), int64
        Non-increasing quotas, ``quotas[0] == max_count``, every quota at least 1.

    Examples
    --------
    >>> from ltml.data import pareto_quotas
    >>> pareto_quotas(20, 800).tolist()
    [800, 529, 359, 248, 175, 125, 91, 67, 50, 38, 29, 23, 18, 14, 11, 9, 7, 6, 5, 4]
    """
    num_classes = check_int(num_classes, "num_classes")
    # Quotas are computed in float64: larger counts would not stay exact integers.
    max_count = check_int(max_count, "max_count", high=2**53)
    shape = check_scalar(shape, "shape", low=0.0, low_open=True)
    with np.errstate(over="ignore"):
        last = _pareto_ppf(0.99, shape)
        if not np.isfinite(last):
            raise ValueError(
                "`shape` must be large enough for the Pareto 99% quantile to be finite, "
                f"got {shape}"
            )
        x = np.linspace(1.0, last, num_classes)
        # pdf / b = x^-(b+1), computed as such so that the first class gets max_count exactly
        quotas = np.floor(_pareto_pdf(x, shape) / shape * (max_count - 1) + 1)
    return torch.from_numpy(quotas.astype(np.int64))


def cooccurrence_rank(labels: Any) -> Tensor:
    r"""Rank classes by how strongly the other classes imply them.

    With :math:`P(j \mid i) = |i \wedge j| / |i|` the conditional co-occurrence matrix, class
    :math:`j` scores :math:`\sum_i P(j \mid i)`: a class that shows up in the images of many other
    classes (e.g. *person*) scores high, and receives the largest quota in
    :func:`make_long_tailed`. Classes with no positive image contribute no row.

    Parameters
    ----------
    labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        0 / 1 labels (-1 = unknown, treated as not positive), in any form
        :func:`~ltml.data.class_counts` takes.

    Returns
    -------
    Tensor, shape (C,), int64
        Class indices, highest score first (ties: lower index first).

    Examples
    --------
    >>> import torch
    >>> from ltml.data import cooccurrence_rank
    >>> cooccurrence_rank(torch.tensor([[1, 1, 0], [1, 0, 1], [1, 0, 0], [0, 1, 0]])).tolist()
    [0, 1, 2]
    """
    return torch.from_numpy(_rank(*_positives(labels)[:3]))


def make_long_tailed(
    labels: Any,
    quotas: Sequence[int] | Tensor,
    seed: int = 0,
    *,
    rank: bool = True,
) -> Tensor:
    """Select a long-tailed subset of a multi-label pool, greedily per class.

    The VOC-LT / COCO-LT protocol (Wu et al., ECCV 2020; the exact greedy rule is not published,
    the one here is documented in ``docs/lt_construction.md``):

    1. classes are ranked by :func:`cooccurrence_rank` and the largest quota goes to the highest
       ranked class (``rank=False``: ``quotas[k]`` is class ``k``'s own quota);
    2. classes are visited from the largest quota to the smallest; the visited class is brought to
       its quota exactly, adding pool images positive for it if it has too few, removing selected
       ones if it has too many, in one seeded random order of the pool.

    Each class meets its quota when it is visited; later classes pull earlier ones off it through
    co-occurrence (on VOC2012 trainval the head ends below 800, the last class meets its quota).
    A class whose pool has fewer positives than its quota gets them all.

    Parameters
    ----------
    labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        Label matrix of the pool, 0 / 1 with -1 = unknown (not positive), in any form
        :func:`~ltml.data.class_counts` takes.
    quotas : sequence of int or Tensor, shape (C,)
        Wanted images per class, e.g. :func:`pareto_quotas`; non-negative.
    seed : int
        Seed of the random candidate order; the result is a function of ``(labels, quotas, seed)``.
    rank : bool
        Assign the sorted quotas to classes by co-occurrence rank (the protocol), or take
        ``quotas`` as given per class.

    Returns
    -------
    Tensor, shape (M,), int64
        Sorted indices of the selected pool images.

    Examples
    --------
    >>> import torch
    >>> from ltml.data import class_counts, make_long_tailed, pareto_quotas
    >>> g = torch.Generator().manual_seed(0)
    >>> pool = (torch.rand(5000, 4, generator=g) < 0.05).long()
    >>> quotas = pareto_quotas(4, 100)
    >>> quotas.tolist()
    [100, 11, 2, 1]
    >>> idx = make_long_tailed(pool, quotas, seed=0)
    >>> len(idx), class_counts(pool[idx]).tolist()
    (95, [1, 91, 2, 11])

    Class 1 co-occurs most and gets 100; removals for the classes visited after it pull it to 91.
    """
    image_ptr, image_classes, num_classes, n = _positives(labels)
    seed = check_seed(seed)
    check_bool(rank, "rank")
    q = as_counts(quotas, "quotas").cpu().numpy()
    if q.shape != (num_classes,):
        raise ValueError(
            f"`quotas` must have one entry per class ({num_classes}), got shape {q.shape}"
        )
    quota = np.empty(num_classes, dtype=np.int64)
    if rank:
        quota[_rank(image_ptr, image_classes, num_classes)] = np.sort(q)[::-1].astype(np.int64)
    else:
        quota[:] = q.astype(np.int64)
    # Visit order: largest quota first; a stable sort keeps it deterministic under ties.
    order = np.argsort(-quota, kind="stable")

    # One seeded random order of the pool serves every step: candidates are taken in that order.
    # (Preferring images with fewer co-occurring labels lands further from the official VOC-LT
    # counts: docs/lt_construction.md.)
    perm = np.random.default_rng(seed).permutation(n)
    position = np.empty(n, dtype=np.int64)  # of each image in the random order
    position[perm] = np.arange(n)
    class_ptr, class_images = transpose(image_ptr, image_classes, num_classes)
    selected = np.zeros(n, dtype=bool)  # in permuted order
    for k in order:
        # The positives of class k, in the random order.
        ranks = np.sort(position[class_images[class_ptr[k] : class_ptr[k + 1]]])
        count = int(selected[ranks].sum())
        want = int(quota[k])
        if count != want:
            adding = count < want
            cand = ranks[selected[ranks] != adding]
            selected[cand[: abs(want - count)]] = adding
    return torch.from_numpy(np.sort(perm[selected]))


def _positives(labels: Any) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Validate a label matrix of any form: its positives, image-major CSR, then ``C`` and ``N``."""
    form = read_labels(labels, "labels")
    n, c = shape_of(form)
    return (*image_positives(form), c, n)


def _rank(image_ptr: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices by decreasing column sum of P(j | i) (see :func:`cooccurrence_rank`)."""
    # co[i, j] = images positive for both i and j (exact integers, as float64)
    co = pair_counts(image_ptr, classes, num_classes).astype(np.float64)
    n = np.diag(co)
    cond = np.divide(co, n[:, None], out=np.zeros_like(co), where=n[:, None] > 0)
    return np.argsort(-cond.sum(axis=0), kind="stable")
