"""ltml: PyTorch components for long-tailed multi-label image recognition.

Drop-in parts for your own training loop: re-balanced samplers, the two-branch head and losses of
Guo & Wang (CVPR 2021), baseline losses, and a reference-exact mean-average-precision meter.
"""

__version__ = "0.1.0.dev0"

from . import (
    backbones,
    data,
    decoupling,
    functional,
    heads,
    losses,
    mixup,
    samplers,
    schedules,
)
from ._stats import class_counts, class_groups, class_weights
from .backbones import split_dual_branch
from .balanced_sampler import BalancedSampler, fit_balanced_weights
from .decoupling import (
    LearnableWeightScaling,
    NearestClassMean,
    extract_features,
    learn_weight_scaling,
    logit_adjust,
    retrain_classifier,
    search_tau,
    tau_normalize,
)
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
from .schedules import DeferredClassAwareSampler, DeferredReweightedBCE

__all__ = [
    "BCE",
    "AsymmetricLoss",
    "BalancedSampler",
    "ClassAwareSampler",
    "ClassBalancedFocalLoss",
    "CrossBranchConsistency",
    "DeferredClassAwareSampler",
    "DeferredReweightedBCE",
    "DistributionBalancedLoss",
    "DualBranchHead",
    "DualBranchOutput",
    "FocalLoss",
    "LTMLLoss",
    "LTMLLossOutput",
    "LearnableWeightScaling",
    "LogitCompensatedBCE",
    "MAPResult",
    "MixedBatch",
    "MultiFocalModifierLoss",
    "NearestClassMean",
    "PairedDataset",
    "PairedSampler",
    "ReflectiveLabelCorrector",
    "ThresholdedMetrics",
    "ThresholdedSummary",
    "WeightedBCE",
    "__version__",
    "average_precision",
    "backbones",
    "class_counts",
    "class_groups",
    "class_weights",
    "data",
    "decoupling",
    "extract_features",
    "fit_balanced_weights",
    "fit_thresholds",
    "functional",
    "heads",
    "learn_weight_scaling",
    "logit_adjust",
    "losses",
    "mAPMeter",
    "mix_batch",
    "mixup",
    "paired_forward",
    "resnet_dual_branch",
    "retrain_classifier",
    "samplers",
    "schedules",
    "search_tau",
    "split_dual_branch",
    "tau_normalize",
    "thresholded_metrics",
]
