"""Multi-label metrics as stateless functions: average precision and the thresholded metrics.

Their home is :mod:`ltml.metrics` (:mod:`~ltml.metrics.average_precision`,
:mod:`~ltml.metrics.thresholded`); this module keeps their names importable from here.
"""

from ..metrics.average_precision import EmptyClass, average_precision
from ..metrics.thresholded import (
    ThresholdedMetrics,
    ThresholdedSummary,
    ZeroDivision,
    fit_thresholds,
    thresholded_metrics,
)

__all__ = [
    "EmptyClass",
    "ThresholdedMetrics",
    "ThresholdedSummary",
    "ZeroDivision",
    "average_precision",
    "fit_thresholds",
    "thresholded_metrics",
]
