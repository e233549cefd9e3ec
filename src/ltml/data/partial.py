"""Partial labels: simulate missing labels on any label matrix, and PLT-style benchmarks.

Zhang et al. (ICCV 2023, "Learning in Imperfect Environment: Multi-Label Classification with
Long-Tailed Distribution and Partial Labels", code "COMIC") define PLT-VOC and PLT-COCO: a
long-tailed subset of VOC2012 trainval / COCO train2017 with 40% of the labels missing. The
authors released their label files but no script that drops the labels; :func:`drop_labels` and
:func:`make_plt` are the documented, seeded recipe of this library (docs: "Partial labels").
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor

from .._validation import (
    as_tensor,
    check_choice,
    check_holds_unknown,
    check_int,
    check_labels,
    check_matrix,
    check_probability,
    check_scalar,
    check_seed,
)
from .longtail import make_long_tailed, pareto_quotas

__all__ = ["PLT_PROFILES", "PLTSubset", "drop_labels", "make_plt"]

Scheme = Literal["random", "per-class", "positives"]
SCHEMES = ("random", "per-class", "positives")
LabelMatrix = TypeVar("LabelMatrix", Tensor, np.ndarray)


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

    Parameters
    ----------
    labels : Tensor or ndarray, shape (N, C)
        0 / 1 labels; entries already -1 stay -1.
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
    Tensor or ndarray, shape (N, C)
        A new label matrix of the same type, dtype and device as ``labels``.

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
    y = as_tensor(labels, "labels")
    check_matrix(y, "labels")
    check_labels(y, "labels")
    rate = check_probability(rate, "rate")
    check_choice(scheme, "scheme", SCHEMES)
    if unknown_value not in (-1, 0) or isinstance(unknown_value, bool):
        raise ValueError(f"`unknown_value` must be -1 or 0, got {unknown_value!r}")
    seed = check_seed(seed)
    if unknown_value == -1:
        why = " (a dropped label becomes -1): convert it, or pass unknown_value=0"
        check_holds_unknown(y, "labels", why)
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
        return result
    return torch.from_numpy(result).to(y.device)


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
    labels: Tensor


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
    pool_labels : Tensor or ndarray, shape (N, C)
        0 / 1 labels of the pool (VOC2012 trainval or COCO train2017, 20 / 80 classes).
    profile : {"voc", "coco"} or int
        The published profile to aim at, or the largest quota itself.
    missing_rate, scheme, seed, unknown_value
        As in :func:`drop_labels`; ``seed`` also seeds the subset selection.

    Returns
    -------
    PLTSubset
        ``indices`` (M,) of the selected pool images, sorted; ``labels`` (M, C), int64.

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
    y = as_tensor(pool_labels, "pool_labels")
    check_matrix(y, "pool_labels")
    check_labels(y, "pool_labels")  # before the cast: 0.5 must not become 0
    y = y.to(torch.int64).cpu()
    indices = make_long_tailed(y, pareto_quotas(y.shape[1], max_count), seed=seed)
    labels = drop_labels(
        y[indices], missing_rate, scheme=scheme, seed=seed, unknown_value=unknown_value
    )
    return PLTSubset(indices, labels)
