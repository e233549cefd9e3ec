r"""Decoupled classifiers and post-hoc calibration for multi-label (sigmoid) heads.

Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition" (ICLR 2020):
learn the representation with plain (uniform) sampling, then re-balance only the classifier on the
frozen features. Written there for softmax classifiers; here in the sigmoid, multi-label form.

One module per step:

- ``features``: :func:`extract_features` runs a frozen trunk (and a :class:`~ltml.DualBranchHead`
  branch) over a loader once; every method below then works on the cached ``(N, D)`` features,
  in seconds.
- ``rebuilt``: :func:`retrain_classifier` (cRT), a new linear classifier trained with class-aware
  sampling, and :class:`NearestClassMean` (NCM), scores by distance to class centroids, no
  training.
- ``posthoc``: :func:`tau_normalize`, :class:`LearnableWeightScaling` /
  :func:`learn_weight_scaling` (LWS) and :func:`logit_adjust` (Menon et al., ICLR 2021), post-hoc
  maps of a trained classifier; :func:`search_tau` chooses their ``tau`` on a validation split.

What each can change: for a sigmoid head, τ-normalisation, LWS (with positive scales) and logit
adjustment are *per-class increasing maps* of each class's scores. A class's ranking of the images
is then unchanged, hence every per-class AP and the mAP are unchanged; only thresholded metrics
(precision / recall / F1 at a fixed threshold, top-k) move. cRT and NCM build a new scoring
function and can change mAP.
"""

from .features import extract_features
from .posthoc import (
    LearnableWeightScaling,
    learn_weight_scaling,
    logit_adjust,
    search_tau,
    tau_normalize,
)
from .rebuilt import NearestClassMean, retrain_classifier

__all__ = [
    "LearnableWeightScaling",
    "NearestClassMean",
    "extract_features",
    "learn_weight_scaling",
    "logit_adjust",
    "retrain_classifier",
    "search_tau",
    "tau_normalize",
]
