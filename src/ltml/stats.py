r"""Per-class statistics of a training label matrix: counts, co-occurrences, groups, loss weights.

- :func:`class_counts`: the known positives of each class, :math:`n_k`;
- :func:`cooccurrence`: the images known positive for both classes of each pair;
- :func:`class_groups`: head / medium / tail classes by their counts (:data:`GROUP_NAMES`), with
  limits in images or following the data (:func:`group_limits`);
- :func:`class_weights`: per-class loss weights from the counts (inverse frequency, effective
  number, or the :math:`\omega` of Guo & Wang).

They are core to every part (losses, samplers, metrics, data), so this module depends on nothing
but torch. Each is also importable from :mod:`ltml` (``class_counts``, ``class_groups``,
``class_weights``) and :mod:`ltml.data` (``class_counts``, ``class_groups``, ``cooccurrence``):
the same objects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from ._label_forms import Entries, image_positives, pair_counts, read_labels
from ._validation import as_counts, check_choice, check_int, check_scalar

__all__ = ["class_counts", "class_groups", "class_weights", "cooccurrence", "group_limits"]

GROUP_NAMES = ("head", "medium", "tail")
"""The keys of :func:`class_groups`' result, in its order."""


def class_counts(labels: Any) -> Tensor:
    """Count the known positive images of each class.

    Parameters
    ----------
    labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        Label matrix of 0 / 1, with -1 for an unknown label (not counted); any form of
        ``docs/inputs.md`` (scipy / torch sparse: implicit 0; :class:`ltml.VerifiedLabels`:
        implicit -1).

    Returns
    -------
    Tensor, shape (C,), int64
        ``counts[k]`` = number of images with ``labels[:, k] == 1``; on the CPU for a sparse
        form, on ``labels``' device for a dense tensor.

    Examples
    --------
    >>> import torch
    >>> from ltml.stats import class_counts
    >>> class_counts(torch.tensor([[1, 0], [1, -1], [0, 1]]))
    tensor([2, 1])
    """
    y = read_labels(labels, "labels")
    if isinstance(y, Entries):
        return torch.from_numpy(np.bincount(image_positives(y)[1], minlength=y.num_classes))
    return (y == 1).sum(dim=0, dtype=torch.int64)


def cooccurrence(labels: Any) -> Tensor:
    """Count, for every pair of classes, the images known positive for both.

    Parameters
    ----------
    labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        Label matrix of 0 / 1, with -1 for an unknown label (not counted), in any form of
        :func:`class_counts`.

    Returns
    -------
    Tensor, shape (C, C), int64
        ``A[j, k]`` = images positive for ``j`` and ``k``; the diagonal is :func:`class_counts`.

    Examples
    --------
    >>> import torch
    >>> from ltml.stats import cooccurrence
    >>> cooccurrence(torch.tensor([[1, 1, 0], [1, -1, 1], [0, 1, 0]]))
    tensor([[2, 1, 1],
            [1, 2, 0],
            [1, 0, 1]])
    """
    y = read_labels(labels, "labels")
    if isinstance(y, Entries):
        return torch.from_numpy(pair_counts(*image_positives(y), y.num_classes))
    positive = (y == 1).to(torch.float64)  # exact counts, on any device
    counts: Tensor = (positive.T @ positive).round().to(torch.int64)
    return counts


def group_limits(
    counts: Sequence[int] | Tensor,
    thresholds: tuple[int, int] | None = None,
    *,
    shares: tuple[float, float] | None = None,
    quantiles: tuple[float, float] | None = None,
    num_images: int | None = None,
) -> tuple[int, int]:
    """Resolve the head / medium / tail limits ``(low, high)`` in images, set one of three ways.

    The benchmarks' limits, 20 and 100 images (Wu et al., ECCV 2020), were chosen for VOC-LT's
    1,142 training images: on a set 100 times larger every class is head and the groups say
    nothing. Limits that follow the data:

    - ``thresholds=(low, high)``: in images, as given (default ``(20, 100)`` when none of the
      three is given);
    - ``shares=(a, b)``: shares of the ``num_images`` training images, ``low = ceil(a N)``,
      ``high = ceil(b N)``: a class is tail below ``a N`` positives and head from ``b N`` on.
      VOC-LT's limits are ``shares`` of about ``(0.0175, 0.0876)`` (20 / 1142, 100 / 1142);
    - ``quantiles=(a, b)``: the ``a`` and ``b`` quantiles of the class counts (linear
      interpolation, rounded up), so that about a share ``a`` of the classes is tail and
      ``1 - b`` head: ``(1/3, 2/3)`` gives thirds, whatever the counts.

    Parameters
    ----------
    counts : sequence of int or Tensor, shape (C,)
        Training images per class, e.g. from :func:`class_counts`.
    thresholds : (int, int), optional
        Limits in images, ``0 <= low <= high``.
    shares : (float, float), optional
        Limits as shares of ``num_images``, ``0 <= a <= b <= 1``.
    quantiles : (float, float), optional
        Limits as quantiles of ``counts``, ``0 <= a <= b <= 1``.
    num_images : int, optional
        The number of training images ``N``; needed by ``shares`` only.

    Returns
    -------
    (int, int)
        ``(low, high)``: tail is ``count < low``, medium ``low <= count < high``, head
        ``count >= high``.

    Raises
    ------
    ValueError
        More than one of ``thresholds``, ``shares``, ``quantiles``; a limit out of its range or
        ``low > high``; ``shares`` without ``num_images``.
    TypeError
        A limit that is not a pair of numbers (integers for ``thresholds``).

    Examples
    --------
    >>> from ltml.stats import group_limits
    >>> counts = [19894, 13317, 11559, 6331, 1431, 227]
    >>> group_limits(counts)                                    # the benchmarks' limits
    (20, 100)
    >>> group_limits(counts, shares=(0.02, 0.1), num_images=112120)
    (2243, 11212)
    >>> group_limits(counts, quantiles=(1 / 3, 2 / 3))  # 2 tail, 2 medium, 2 head
    (4698, 12145)
    """
    forms = {"thresholds": thresholds, "shares": shares, "quantiles": quantiles}
    given = [name for name, value in forms.items() if value is not None]
    if len(given) > 1:
        raise ValueError(
            "give at most one of `thresholds`, `shares` and `quantiles` (the group limits), "
            f"got {' and '.join(f'`{g}`' for g in given)}"
        )
    c = as_counts(counts, "counts")
    if shares is not None:
        a, b = _pair(shares, "shares", 0.0, 1.0)
        if num_images is None:
            raise ValueError(
                "`num_images` must be given with `shares` (the limits are shares of the "
                "training images), got None"
            )
        n = check_int(num_images, "num_images", low=0)
        return _round_up(a * n), _round_up(b * n)
    if quantiles is not None:
        a, b = _pair(quantiles, "quantiles", 0.0, 1.0)
        q = torch.quantile(c, torch.tensor([a, b], dtype=torch.float64))
        return _round_up(float(q[0])), _round_up(float(q[1]))
    if thresholds is None:
        thresholds = (20, 100)
    if not isinstance(thresholds, tuple | list) or len(thresholds) != 2:
        raise TypeError(f"`thresholds` must be a pair (low, high) of integers, got {thresholds!r}")
    low = check_int(thresholds[0], "thresholds[0]", low=0)
    high = check_int(thresholds[1], "thresholds[1]", low=low)
    return low, high


def _pair(value: Any, name: str, low: float, high: float) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(f"`{name}` must be a pair (low, high) of real numbers, got {value!r}")
    a = check_scalar(value[0], f"{name}[0]", low=low, high=high)
    b = check_scalar(value[1], f"{name}[1]", low=a, high=high)
    return a, b


def _round_up(x: float) -> int:
    """``ceil``, forgiving float noise: 0.1 * 30 is 3, not 4."""
    return math.ceil(round(x, 9))


def class_groups(
    counts: Sequence[int] | Tensor,
    thresholds: tuple[int, int] | None = None,
    *,
    shares: tuple[float, float] | None = None,
    quantiles: tuple[float, float] | None = None,
    num_images: int | None = None,
) -> dict[str, list[int]]:
    """Split classes into head / medium / tail by their training counts.

    The long-tailed multi-label protocol (Wu et al., ECCV 2020) calls a class *head* with at least
    100 training images, *medium* with 20-99 and *tail* with fewer than 20: the default. Those
    limits suit sets of about a thousand images; for larger ones give limits that follow the data,
    relative to the number of images (``shares``) or quantiles of the counts (``quantiles``), as
    :func:`group_limits` explains.

    Parameters
    ----------
    counts : sequence of int or Tensor, shape (C,)
        Training images per class, e.g. from :func:`class_counts`.
    thresholds : (int, int), optional
        ``(low, high)``: tail is ``count < low``, medium ``low <= count < high``, head
        ``count >= high``. Default ``(20, 100)`` when neither ``shares`` nor ``quantiles`` is
        given.
    shares, quantiles, num_images
        The limits as shares of ``num_images`` or as quantiles of ``counts``, as
        :func:`group_limits`; at most one of ``thresholds``, ``shares``, ``quantiles``.

    Returns
    -------
    dict
        ``{"head": [...], "medium": [...], "tail": [...]}``, class indices in increasing order;
        a group may be empty.

    Examples
    --------
    >>> from ltml.stats import class_groups
    >>> class_groups([775, 4, 48, 154])
    {'head': [0, 3], 'medium': [2], 'tail': [1]}
    >>> class_groups([775, 4, 48, 154], shares=(0.05, 0.2), num_images=1000)
    {'head': [0], 'medium': [3], 'tail': [1, 2]}
    """
    c = as_counts(counts, "counts")
    low, high = group_limits(
        c, thresholds, shares=shares, quantiles=quantiles, num_images=num_images
    )
    masks = (c >= high, (c >= low) & (c < high), c < low)
    return {
        name: torch.nonzero(m).flatten().tolist()
        for name, m in zip(GROUP_NAMES, masks, strict=True)
    }


WeightMethod = Literal["inverse", "effective_number", "omega"]


def class_weights(
    counts: Any,
    num_images: int | None = None,
    method: WeightMethod = "inverse",
    *,
    power: float = 1.0,
    beta: float = 0.9999,
) -> Tensor:
    r"""Per-class loss weights from training counts: the re-weighting of long-tailed losses.

    With :math:`n_k` the training images positive for class :math:`k` and :math:`N` the number of
    training images:

    * ``"inverse"``: inverse frequency, :math:`w_k \propto n_k^{-q}` with :math:`q` = ``power``
      (1: inverse, 0.5: square-root inverse; the cost-sensitive weights
      :math:`(n_{min} / n_k)^q` of Zhang et al., AAAI 2021, up to the normalisation);
    * ``"effective_number"``: the inverse effective number of Cui et al. (CVPR 2019, Eq. 3),
      :math:`w_k \propto (1 - \beta) / (1 - \beta^{n_k})` (:math:`\beta` = 0 gives equal
      weights, :math:`\beta \to 1` inverse frequency);
    * ``"omega"``: the :math:`\omega` of Guo & Wang (CVPR 2021, Eq. 2), one weight for the
      positives and one for the negatives of each class, :math:`e^{1 - p_k}` and :math:`e^{p_k}`
      with :math:`p_k = n_k / N` (rare classes weigh their positives up, frequent classes their
      negatives).

    The first two are normalised to mean 1 over the classes (sum :math:`C`), as in Cui et al.'s
    code, so that a weighted loss keeps the scale of the unweighted one; a count of 0 is read as
    1 (the weight stays finite, the largest). ``"omega"`` is used as published.

    Every loss of :mod:`ltml.losses` that weighs classes takes its weights from this function,
    and ``weight`` of :func:`ltml.functional.bce` / :func:`ltml.functional.focal_loss` accepts
    either shape, so the same weights can be given to any of them, or to your own loss.

    Parameters
    ----------
    counts : sequence or Tensor, shape (C,)
        :math:`n_k`, e.g. :func:`class_counts` of the training labels.
    num_images : int, optional
        :math:`N`, the number of training images; required by ``"omega"``, checked against the
        counts (every :math:`n_k \le N`) when given.
    method : {"inverse", "effective_number", "omega"}
        The weighting, above.
    power : float
        :math:`q \ge 0` of ``"inverse"``.
    beta : float
        :math:`\beta \in [0, 1)` of ``"effective_number"``.

    Returns
    -------
    Tensor, float32
        Shape ``(C,)``; for ``"omega"`` shape ``(2, C)``: row 0 weighs the positives of each
        class, row 1 its negatives.

    Examples
    --------
    >>> from ltml.stats import class_weights
    >>> class_weights([300, 100])
    tensor([0.5000, 1.5000])
    >>> class_weights([400, 100], power=0.5)
    tensor([0.6667, 1.3333])
    >>> class_weights([300, 100], method="effective_number", beta=0.99)
    tensor([0.8000, 1.2000])
    >>> class_weights([300, 100], 1000, method="omega")  # positives, negatives
    tensor([[2.0138, 2.4596],
            [1.3499, 1.1052]])
    """
    check_choice(method, "method", get_args(WeightMethod))
    n = as_counts(counts, "counts", num_images, "num_images")
    if method == "omega":
        if num_images is None:
            raise ValueError("`num_images` is required by method='omega', got None")
        p = n / num_images
        return torch.stack([torch.exp(1.0 - p), torch.exp(p)]).to(torch.float32)
    n = n.clamp(min=1)
    if method == "inverse":
        power = check_scalar(power, "power", low=0.0)
        # n^-q / mean(n^-q) = C softmax(-q log n): no underflow to 0 / 0 for a large power.
        return (n.numel() * torch.softmax(-power * n.log(), dim=0)).to(torch.float32)
    beta = check_scalar(beta, "beta", low=0.0, high=1.0, high_open=True)
    # 1 - beta^n = -expm1(n log beta): accurate for beta close to 1.
    weight = -1.0 / torch.expm1(n * math.log(beta)) if beta > 0 else torch.ones_like(n)
    return (weight * (weight.numel() / weight.sum())).to(torch.float32)
