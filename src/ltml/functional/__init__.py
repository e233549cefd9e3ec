"""Functional forms of ltml's metrics and losses (as :mod:`torch.nn.functional` to :mod:`torch.nn`).

The module classes (:class:`ltml.mAPMeter` and the losses of :mod:`ltml.losses`) call these
functions; use them directly when you want no state. Metric functionals live in
:mod:`ltml.functional.metrics`, loss functionals in :mod:`ltml.functional.losses`; every public
name of both is re-exported here.
"""

from .losses import (
    Reduction,
    Unknown,
    asymmetric_loss,
    bce,
    cross_branch_consistency,
    distribution_balanced_loss,
    focal_loss,
    logit_compensated_bce,
    multi_focal_modifier_loss,
    reflective_label_correction,
)
from .metrics import EmptyClass, average_precision

__all__ = [
    "EmptyClass",
    "Reduction",
    "Unknown",
    "asymmetric_loss",
    "average_precision",
    "bce",
    "cross_branch_consistency",
    "distribution_balanced_loss",
    "focal_loss",
    "logit_compensated_bce",
    "multi_focal_modifier_loss",
    "reflective_label_correction",
]
