"""Thresholded multi-label metrics: OP, OR, OF1, CP, CR, CF1, and thresholds fitted per class.

:func:`thresholded_metrics` gives the precision / recall / F1 family that multi-label papers print
beside the mAP (with an optional top-k rule), as a :class:`ThresholdedMetrics`;
:func:`fit_thresholds` chooses one threshold per class on held-out data. :class:`ltml.mAPMeter`
computes both from the scores it stored, with the counting and ranking code they share
(``_counts``, ``_ranking``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from .._validation import (
    as_metric_inputs,
    as_thresholds,
    check_choice,
    check_int,
    check_top_k,
)
from ._counts import ZeroDivision, check_zero_division, threshold_counts, thresholded_of_counts
from ._empty_classes import EmptyClass, check_empty_class, json_number, warn_empty_classes
from ._ranking import fit_thresholds_of_blocks, keep_fallback

__all__ = [
    "ThresholdedMetrics",
    "ThresholdedSummary",
    "ZeroDivision",
    "fit_thresholds",
    "thresholded_metrics",
]


@dataclass(frozen=True)
class ThresholdedSummary:
    r"""Thresholded multi-label metrics over a set of classes (all classes, or one group).

    With ``Nc_k`` correct positive predictions, ``Np_k`` positive predictions and ``Ng_k``
    positive targets of class ``k`` (unknown labels left out):

    Attributes
    ----------
    OP, OR, OF1 : float
        Overall (micro) precision ``ΣNc / ΣNp``, recall ``ΣNc / ΣNg`` and their harmonic mean,
        over every class of the set.
    CP, CR, CF1 : float
        Per-class (macro) precision ``mean_k Nc_k / Np_k``, recall ``mean_k Nc_k / Ng_k`` and
        **the harmonic mean of CP and CR**, as ML-GCN (Chen et al., CVPR 2019) and the papers
        that copy its table define CF1. It is not the mean of the per-class F1 scores.
    mean_f1 : float
        The mean of the per-class F1 scores (scikit-learn's ``f1_score(average="macro")``),
        which some long-tailed papers report under the name "macro F1". Never larger than CF1
        when both average the same classes.
    """

    OP: float
    OR: float
    OF1: float
    CP: float
    CR: float
    CF1: float
    mean_f1: float

    def as_dict(self) -> dict[str, Any]:
        """Plain Python values, ready for ``json.dump`` (NaN becomes ``None``)."""
        return {
            name: json_number(getattr(self, name))
            for name in ("OP", "OR", "OF1", "CP", "CR", "CF1", "mean_f1")
        }

    def __str__(self) -> str:
        cells = [(name, getattr(self, name)) for name in ("CP", "CR", "CF1", "OP", "OR", "OF1")]
        return "  ".join(f"{name} {100 * value:.2f}" for name, value in cells)


@dataclass(frozen=True)
class ThresholdedMetrics(ThresholdedSummary):
    """What :func:`thresholded_metrics` returns: the summary, per class and per group.

    Attributes
    ----------
    precision, recall, f1 : Tensor, shape (C,), float64
        Per-class values (NaN for a class with no positive target when ``empty_class="nan"``;
        a class never predicted positive gets the ``zero_division`` precision).
    threshold : Tensor, shape (C,), float64
        The threshold of each class that was applied.
    top_k : int or None
        The top-k rule that was applied, if any.
    groups : dict of str to ThresholdedSummary
        The summary over the classes of each group (empty unless groups were given).
    num_empty : int
        Number of classes with no positive target.
    """

    precision: Tensor
    recall: Tensor
    f1: Tensor
    threshold: Tensor
    top_k: int | None
    groups: dict[str, ThresholdedSummary]
    num_empty: int

    def as_dict(self) -> dict[str, Any]:
        """Plain Python values, ready for ``json.dump``.

        NaN becomes ``None``; an infinite threshold becomes the string ``"inf"`` or ``"-inf"``.
        """
        return {
            **super().as_dict(),
            "groups": {name: g.as_dict() for name, g in self.groups.items()},
            "precision": [json_number(x) for x in self.precision.tolist()],
            "recall": [json_number(x) for x in self.recall.tolist()],
            "f1": [json_number(x) for x in self.f1.tolist()],
            # JSON has no infinity: a class never (always) predicted is written "inf" ("-inf"),
            # which float() reads back.
            "threshold": [x if math.isfinite(x) else str(x) for x in self.threshold.tolist()],
            "top_k": self.top_k,
            "num_empty": self.num_empty,
        }


def thresholded_metrics(
    scores: Any,
    targets: Any,
    *,
    threshold: float | Sequence[float] | Tensor,
    top_k: int | None = None,
    zero_division: ZeroDivision = "zero",
    empty_class: EmptyClass = "nan",
) -> ThresholdedMetrics:
    r"""Precision, recall and F1 of thresholded multi-label scores: OP, OR, OF1, CP, CR, CF1.

    Image ``i`` is predicted positive for class ``k`` when ``scores[i, k] >= threshold[k]``
    (and, with ``top_k``, when fewer than ``top_k`` classes of image ``i`` score strictly
    higher). Per class: ``Nc_k`` correct positive predictions, ``Np_k`` positive predictions,
    ``Ng_k`` positive targets, counted over the known labels (-1 is left out for that class).

    .. math::
        \mathrm{OP} = \frac{\sum_k N^c_k}{\sum_k N^p_k},\quad
        \mathrm{OR} = \frac{\sum_k N^c_k}{\sum_k N^g_k},\quad
        \mathrm{CP} = \frac{1}{C}\sum_k \frac{N^c_k}{N^p_k},\quad
        \mathrm{CR} = \frac{1}{C}\sum_k \frac{N^c_k}{N^g_k},

    with ``OF1`` and ``CF1`` the harmonic means of (OP, OR) and (CP, CR), as in ML-GCN
    (Chen et al., CVPR 2019). ``mean_f1`` is the mean of the per-class F1 scores, a different
    number (scikit-learn's macro F1).

    Parameters
    ----------
    scores : Tensor or ndarray, shape (N, C)
        Logits or probabilities: used as given.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 marks an unknown label, ignored for that class only.
    threshold : float or sequence of float or Tensor of shape (C,)
        No default on purpose: 0 for logits and 0.5 for probabilities are the usual choices
        (the same decision), or a vector from :func:`fit_thresholds`.
    top_k : int, optional
        Also require the class to be among the image's ``top_k`` highest scores (3 in the
        literature). Tied scores at the k-th place are all kept.
    zero_division : {"zero", "one", "nan"}
        Precision of a class never predicted positive (and OP when nothing is): 0 (default;
        ML-GCN's code and scikit-learn's default), 1, or NaN and left out of CP.
    empty_class : {"nan", "zero"}
        A class with no positive target has no recall: its per-class values are NaN and it is
        left out of CP / CR / CF1 / ``mean_f1`` (default, as for the mAP), or its recall and F1
        are 0 and counted, as scikit-learn does. The overall metrics count every class. One
        warning lists such classes.

    Returns
    -------
    ThresholdedMetrics
        Summary (``OP``, ``OR``, ``OF1``, ``CP``, ``CR``, ``CF1``, ``mean_f1``) and per-class
        ``precision``, ``recall``, ``f1``.

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import thresholded_metrics
    >>> logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 4.0, 1.5], [0.1, 0.2, -2.0]])
    >>> targets = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 1]])
    >>> m = thresholded_metrics(logits, targets, threshold=0.0)
    >>> print(m)
    CP 66.67  CR 83.33  CF1 74.07  OP 66.67  OR 80.00  OF1 72.73
    >>> round(m.mean_f1, 4)  # the mean of per-class F1: not CF1
    0.7222
    >>> print(thresholded_metrics(logits, targets, threshold=0.0, top_k=1))
    CP 66.67  CR 66.67  CF1 66.67  OP 100.00  OR 60.00  OF1 75.00
    """
    check_zero_division(zero_division)
    check_empty_class(empty_class)
    s, y = as_metric_inputs(scores, targets)
    num_classes = s.shape[1]
    thresholds = as_thresholds(threshold, num_classes)
    top_k = check_top_k(top_k, num_classes)
    counts = threshold_counts([s], [y], thresholds, top_k)
    # stacklevel 2: the user's line, which called this function
    warn_empty_classes(counts[2] == 0, "per-class metrics are", empty_class, stacklevel=2)
    return thresholded_of_counts(counts, thresholds, top_k, zero_division, empty_class, {})


def fit_thresholds(
    scores: Any,
    targets: Any,
    *,
    metric: Literal["f1"] = "f1",
    min_positives: int = 1,
    fallback: float | Sequence[float] | Tensor | None = None,
) -> Tensor:
    """One threshold per class that maximises the class's F1 on held-out data.

    Exact: every distinct score value of a class is a candidate (prediction positive when
    ``score >= threshold``, as in :func:`thresholded_metrics`), all classes at once with one
    sort. Where several thresholds reach the best F1, the highest is returned. Fit on a
    validation split, never on the data you report.

    A class with one or two validation positives gets the threshold that separates those few
    images best: often far below the usual one (a logit of -5 when one positive scores -5), which
    predicts the class for many test images and costs precision (OP, OF1). With ``fallback``,
    a class with fewer than ``min_positives`` known positives keeps ``fallback`` instead (the
    threshold used without fitting: 0 for logits, 0.5 for probabilities); see the metrics guide
    for the effect on a small validation split.

    Parameters
    ----------
    scores : Tensor or ndarray, shape (N, C)
        Held-out scores (logits or probabilities; the thresholds are in the same units).
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 marks an unknown label, ignored for that class only.
    metric : {"f1"}
        What to maximise per class.
    min_positives : int
        A class with fewer known positives than this keeps ``fallback``. Default 1: only a class
        with no positive, which has no threshold to fit. Above 1, ``fallback`` is required.
    fallback : float or sequence of float or Tensor of shape (C,), optional
        The threshold such classes keep (one, or one per class). Without it, a class with no
        positive gets ``inf`` (never predicted).

    Returns
    -------
    Tensor, shape (C,), float64
        A threshold per class (``inf``: never predict, for a class with no positive target when
        no ``fallback`` is given; one warning lists such classes).

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import fit_thresholds, thresholded_metrics
    >>> val_logits = torch.tensor([[2.0, -1.0], [0.5, -0.5], [-1.0, 1.0], [-2.0, -2.0]])
    >>> val_targets = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]])
    >>> fit_thresholds(val_logits, val_targets)
    tensor([ 0.5000, -0.5000], dtype=torch.float64)
    >>> thr = fit_thresholds(val_logits, val_targets)
    >>> thresholded_metrics(val_logits, val_targets, threshold=thr).CF1
    1.0
    >>> fit_thresholds(val_logits, val_targets, min_positives=3, fallback=0.0)  # 2 positives each
    tensor([0., 0.], dtype=torch.float64)
    """
    check_choice(metric, "metric", ("f1",))
    min_positives = check_int(min_positives, "min_positives")
    s, y = as_metric_inputs(scores, targets)
    num_classes = s.shape[1]
    if fallback is None and min_positives > 1:
        raise ValueError(
            f"`fallback` is needed with `min_positives` > 1 (got {min_positives}): the threshold "
            "that classes with fewer positives keep, e.g. 0.0 for logits or 0.5 for probabilities"
        )
    kept = None if fallback is None else as_thresholds(fallback, num_classes, "fallback")
    thresholds = fit_thresholds_of_blocks([s], [y])
    positives = torch.count_nonzero(y == 1, dim=0)
    thresholds = keep_fallback(thresholds, positives, min_positives, kept)
    # stacklevel 2: the user's line, which called this function
    warn_empty_classes(torch.isinf(thresholds), "threshold is", "nan", stacklevel=2)
    return thresholds
