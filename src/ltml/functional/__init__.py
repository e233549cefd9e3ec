"""Functional forms of ltml's metrics and losses (as :mod:`torch.nn.functional` to :mod:`torch.nn`).

Each function lives beside its module class (a loss family's file in :mod:`ltml.losses`, the
metric's file in :mod:`ltml.metrics`), which calls it; use them directly when you want no state.
This package only re-exports them: :mod:`ltml.functional.metrics` the metric functionals,
:mod:`ltml.functional.losses` the loss functionals, and this module every name of both.
"""

from .losses import (
    Reduction,
    Unknown,
    asymmetric_loss,
    bce,
    cross_branch_consistency,
    distribution_balanced_loss,
    focal_loss,
    head_tail_balance_loss,
    hill_loss,
    logit_compensated_bce,
    multi_focal_modifier_loss,
    reflective_label_correction,
    splc_loss,
)
from .metrics import (
    EmptyClass,
    ThresholdedMetrics,
    ThresholdedSummary,
    ZeroDivision,
    average_precision,
    fit_thresholds,
    thresholded_metrics,
)

__all__ = [
    "EmptyClass",
    "Reduction",
    "ThresholdedMetrics",
    "ThresholdedSummary",
    "Unknown",
    "ZeroDivision",
    "asymmetric_loss",
    "average_precision",
    "bce",
    "cross_branch_consistency",
    "distribution_balanced_loss",
    "fit_thresholds",
    "focal_loss",
    "head_tail_balance_loss",
    "hill_loss",
    "logit_compensated_bce",
    "multi_focal_modifier_loss",
    "reflective_label_correction",
    "splc_loss",
    "thresholded_metrics",
]
