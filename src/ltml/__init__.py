"""ltml: PyTorch components for long-tailed multi-label image recognition.

Drop-in parts for your own training loop: re-balanced samplers, the two-branch head and losses of
Guo & Wang (CVPR 2021), baseline losses, and a reference-exact mean-average-precision meter.
"""

__version__ = "0.2.0"

from . import (
    backbones,
    csra,
    data,
    decoupling,
    functional,
    heads,
    labels,
    losses,
    mixup,
    ml_decoder,
    samplers,
    schedules,
    stats,
    text,
)
from .backbones import resnet_dual_branch, split_dual_branch
from .csra import CSRA, CSRA_TEMPERATURES
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
from .heads import DualBranchHead, DualBranchOutput, paired_forward
from .labels import VerifiedLabels
from .losses import (
    BCE,
    AsymmetricLoss,
    ClassBalancedFocalLoss,
    CrossBranchConsistency,
    DistributionBalancedLoss,
    FocalLoss,
    HeadTailBalancer,
    HillLoss,
    LogitCompensatedBCE,
    LTMLLoss,
    LTMLLossOutput,
    MultiFocalModifierLoss,
    ReflectiveLabelCorrector,
    SPLCLoss,
    WeightedBCE,
)
from .metrics import MAPResult, mAPMeter
from .mixup import MixedBatch, mix_batch
from .ml_decoder import MLDecoder
from .samplers import (
    BalancedSampler,
    ClassAwareSampler,
    DistributedEvalSampler,
    PairedDataset,
    PairedSampler,
    RepeatFactorSampler,
    fit_balanced_weights,
    repeat_factors,
)
from .schedules import DeferredClassAwareSampler, DeferredReweightedBCE
from .stats import class_counts, class_groups, class_weights
from .text import PROMPT_TEMPLATES, class_text_embeddings, text_classifier

__all__ = [
    "BCE",
    "CSRA",
    "CSRA_TEMPERATURES",
    "PROMPT_TEMPLATES",
    "AsymmetricLoss",
    "BalancedSampler",
    "ClassAwareSampler",
    "ClassBalancedFocalLoss",
    "CrossBranchConsistency",
    "DeferredClassAwareSampler",
    "DeferredReweightedBCE",
    "DistributedEvalSampler",
    "DistributionBalancedLoss",
    "DualBranchHead",
    "DualBranchOutput",
    "FocalLoss",
    "HeadTailBalancer",
    "HillLoss",
    "LTMLLoss",
    "LTMLLossOutput",
    "LearnableWeightScaling",
    "LogitCompensatedBCE",
    "MAPResult",
    "MLDecoder",
    "MixedBatch",
    "MultiFocalModifierLoss",
    "NearestClassMean",
    "PairedDataset",
    "PairedSampler",
    "ReflectiveLabelCorrector",
    "RepeatFactorSampler",
    "SPLCLoss",
    "ThresholdedMetrics",
    "ThresholdedSummary",
    "VerifiedLabels",
    "WeightedBCE",
    "__version__",
    "average_precision",
    "backbones",
    "class_counts",
    "class_groups",
    "class_text_embeddings",
    "class_weights",
    "csra",
    "data",
    "decoupling",
    "extract_features",
    "fit_balanced_weights",
    "fit_thresholds",
    "functional",
    "heads",
    "labels",
    "learn_weight_scaling",
    "logit_adjust",
    "losses",
    "mAPMeter",
    "mix_batch",
    "mixup",
    "ml_decoder",
    "paired_forward",
    "repeat_factors",
    "resnet_dual_branch",
    "retrain_classifier",
    "samplers",
    "schedules",
    "search_tau",
    "split_dual_branch",
    "stats",
    "tau_normalize",
    "text",
    "text_classifier",
    "thresholded_metrics",
]
