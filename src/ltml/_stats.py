"""Per-class statistics of a training label matrix: counts and head / medium / tail groups.

Core to every part (losses, samplers, metrics, data), so it depends on nothing but torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._validation import as_counts, as_labels, check_int

GROUP_NAMES = ("head", "medium", "tail")


def class_counts(labels: Any) -> Tensor:
    """Count the known positive images of each class.

    Parameters
    ----------
    labels : Tensor or ndarray, shape (N, C)
        Label matrix of 0 / 1, with -1 for an unknown label (not counted).

    Returns
    -------
    Tensor, shape (C,), int64
        ``counts[k]`` = number of images with ``labels[:, k] == 1``.

    Examples
    --------
    >>> import torch
    >>> from ltml.data import class_counts
    >>> class_counts(torch.tensor([[1, 0], [1, -1], [0, 1]]))
    tensor([2, 1])
    """
    y = as_labels(labels, "labels")
    return (y == 1).sum(dim=0, dtype=torch.int64)


def cooccurrence(labels: Any) -> Tensor:
    """Count, for every pair of classes, the images known positive for both.

    Parameters
    ----------
    labels : Tensor or ndarray, shape (N, C)
        Label matrix of 0 / 1, with -1 for an unknown label (not counted).

    Returns
    -------
    Tensor, shape (C, C), int64
        ``A[j, k]`` = images positive for ``j`` and ``k``; the diagonal is :func:`class_counts`.

    Examples
    --------
    >>> import torch
    >>> from ltml.data import cooccurrence
    >>> cooccurrence(torch.tensor([[1, 1, 0], [1, -1, 1], [0, 1, 0]]))
    tensor([[2, 1, 1],
            [1, 2, 0],
            [1, 0, 1]])
    """
    y = as_labels(labels, "labels")
    positive = (y == 1).to(torch.float64)  # exact counts, on any device
    counts: Tensor = (positive.T @ positive).round().to(torch.int64)
    return counts


def class_groups(
    counts: Sequence[int] | Tensor, thresholds: tuple[int, int] = (20, 100)
) -> dict[str, list[int]]:
    """Split classes into head / medium / tail by their training counts.

    The long-tailed multi-label protocol (Wu et al., ECCV 2020) calls a class *head* with at least
    100 training images, *medium* with 20-99 and *tail* with fewer than 20.

    Parameters
    ----------
    counts : sequence of int or Tensor, shape (C,)
        Training images per class, e.g. from :func:`class_counts`.
    thresholds : (int, int)
        ``(low, high)``: tail is ``count < low``, medium ``low <= count < high``, head
        ``count >= high``.

    Returns
    -------
    dict
        ``{"head": [...], "medium": [...], "tail": [...]}``, class indices in increasing order;
        a group may be empty.

    Examples
    --------
    >>> from ltml.data import class_groups
    >>> class_groups([775, 4, 48, 154])
    {'head': [0, 3], 'medium': [2], 'tail': [1]}
    """
    c = as_counts(counts, "counts")
    if not isinstance(thresholds, tuple | list) or len(thresholds) != 2:
        raise TypeError(f"`thresholds` must be a pair (low, high) of integers, got {thresholds!r}")
    low = check_int(thresholds[0], "thresholds[0]", low=0)
    high = check_int(thresholds[1], "thresholds[1]", low=low)
    masks = (c >= high, (c >= low) & (c < high), c < low)
    return {
        name: torch.nonzero(m).flatten().tolist()
        for name, m in zip(GROUP_NAMES, masks, strict=True)
    }


def counts_tensor(class_counts: Any, num_samples: int | None = None) -> Tensor:
    """Return validated per-class counts as a float64 tensor (on their own device)."""
    return as_counts(class_counts, "class_counts", num_samples)


def class_prior(class_counts: Any, num_samples: int) -> Tensor:
    """``p_k = n_k / N``, the fraction of training images positive for each class (float32)."""
    num_samples = check_int(num_samples, "num_samples")
    return (counts_tensor(class_counts, num_samples) / num_samples).to(torch.float32)
