"""ltml: PyTorch components for long-tailed multi-label image recognition.

Drop-in parts for your own training loop: re-balanced samplers, the two-branch head and losses of
Guo & Wang (CVPR 2021), baseline losses, and a reference-exact mean-average-precision meter.
"""

__version__ = "0.1.0.dev0"

from . import data, functional, heads, losses, samplers
from ._stats import class_counts, class_groups
from .functional import (
    ThresholdedMetrics,
    ThresholdedSummary,
    average_precision,
    fit_thresholds,
    thresholded_metrics,
)
from .heads import DualBranchHead, DualBranchOutput, paired_forward, resnet_dual_branch
from .losses import (
    BCE,
    ClassBalancedFocalLoss,
    CrossBranchConsistency,
    DistributionBalancedLoss,
    FocalLoss,
    LogitCompensatedBCE,
    LTMLLoss,
    LTMLLossOutput,
    WeightedBCE,
)
from .metrics import MAPResult, mAPMeter
from .samplers import ClassAwareSampler, PairedDataset, PairedSampler

__all__ = [
    "BCE",
    "ClassAwareSampler",
    "ClassBalancedFocalLoss",
    "CrossBranchConsistency",
    "DistributionBalancedLoss",
    "DualBranchHead",
    "DualBranchOutput",
    "FocalLoss",
    "LTMLLoss",
    "LTMLLossOutput",
    "LogitCompensatedBCE",
    "MAPResult",
    "PairedDataset",
    "PairedSampler",
    "ThresholdedMetrics",
    "ThresholdedSummary",
    "WeightedBCE",
    "__version__",
    "average_precision",
    "class_counts",
    "class_groups",
    "data",
    "fit_thresholds",
    "functional",
    "heads",
    "losses",
    "mAPMeter",
    "paired_forward",
    "resnet_dual_branch",
    "samplers",
    "thresholded_metrics",
]
