"""ltml: PyTorch components for long-tailed multi-label image recognition.

Drop-in parts for your own training loop: re-balanced samplers, the two-branch head and losses of
Guo & Wang (CVPR 2021), baseline losses, and a reference-exact mean-average-precision meter.
"""

__version__ = "0.1.0.dev0"

from . import backbones, data, functional, heads, losses, mixup, samplers
from ._stats import class_counts, class_groups
from .backbones import split_dual_branch
from .functional import average_precision
from .heads import DualBranchHead, DualBranchOutput, paired_forward, resnet_dual_branch
from .losses import (
    BCE,
    AsymmetricLoss,
    ClassBalancedFocalLoss,
    CrossBranchConsistency,
    DistributionBalancedLoss,
    FocalLoss,
    LogitCompensatedBCE,
    LTMLLoss,
    LTMLLossOutput,
    MultiFocalModifierLoss,
    ReflectiveLabelCorrector,
    WeightedBCE,
)
from .metrics import MAPResult, mAPMeter
from .mixup import MixedBatch, mix_batch
from .samplers import ClassAwareSampler, PairedDataset, PairedSampler

__all__ = [
    "BCE",
    "AsymmetricLoss",
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
    "MixedBatch",
    "MultiFocalModifierLoss",
    "PairedDataset",
    "PairedSampler",
    "ReflectiveLabelCorrector",
    "WeightedBCE",
    "__version__",
    "average_precision",
    "backbones",
    "class_counts",
    "class_groups",
    "data",
    "functional",
    "heads",
    "losses",
    "mAPMeter",
    "mix_batch",
    "mixup",
    "paired_forward",
    "resnet_dual_branch",
    "samplers",
    "split_dual_branch",
]
