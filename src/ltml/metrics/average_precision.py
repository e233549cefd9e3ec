"""Average precision: the ranking metric of multi-label recognition, per class (the mAP's terms).

:func:`average_precision` is identical to scikit-learn's ``average_precision_score`` per class,
ties and unknown labels included; :class:`ltml.mAPMeter` computes the same from stored batches.
The computation itself (one sort per class, in chunks) is in ``_ranking``, shared with the meter.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._validation import as_metric_inputs
from ._empty_classes import EmptyClass, check_empty_class, resolve_empty_classes
from ._ranking import average_precision_of_blocks

__all__ = ["EmptyClass", "average_precision"]


def average_precision(scores: Any, targets: Any, *, empty_class: EmptyClass = "nan") -> Tensor:
    r"""Per-class average precision of multi-label scores.

    Non-interpolated AP, identical to scikit-learn's ``average_precision_score(targets[:, k],
    scores[:, k])`` for every class ``k``, tied scores included:

    .. math::
        \mathrm{AP}_k = \sum_t (R_t - R_{t-1}) P_t,

    over the distinct score thresholds ``t`` of class ``k`` in decreasing order, with precision
    ``P_t`` and recall ``R_t`` of the samples scoring at least ``t``. All classes are computed at
    once with one sort; on CUDA tensors the computation stays on the device.

    Parameters
    ----------
    scores : Tensor or ndarray, shape (N, C)
        Any scores whose order ranks the samples: logits are best. Used as given, never
        transformed. Probabilities from ``sigmoid`` saturate to exactly 1.0 in float32 above a
        logit of about 17, which ties confident positives and lowers AP.
    targets : Tensor or ndarray, shape (N, C)
        0 / 1 labels; -1 marks an unknown label, ignored for that class only.
    empty_class : {"nan", "zero"}
        AP of a class with no positive target, which is undefined: ``"nan"`` (default) reports
        NaN, so that means can leave it out; ``"zero"`` reports 0, the convention of
        scikit-learn and torchmetrics, for comparing with numbers published that way.
        Either way one warning lists such classes.

    Returns
    -------
    Tensor, shape (C,), float64
        AP of each class, on the device of ``scores``.

    Examples
    --------
    >>> import torch
    >>> from ltml.functional import average_precision
    >>> scores = torch.tensor([[0.9, -2.0], [0.8, 3.0], [0.1, 1.0], [0.1, 0.5]])
    >>> targets = torch.tensor([[1, 0], [0, 1], [1, 0], [0, -1]])
    >>> average_precision(scores, targets)
    tensor([0.7500, 1.0000], dtype=torch.float64)
    """
    check_empty_class(empty_class)
    s, y = as_metric_inputs(scores, targets)
    ap = average_precision_of_blocks([s], [y])
    return resolve_empty_classes(ap, empty_class, stacklevel=2)  # 2: the line calling this one
