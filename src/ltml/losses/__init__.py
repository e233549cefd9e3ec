"""Losses for long-tailed multi-label recognition, one family per module.

The losses of Guo & Wang, "Long-Tailed Multi-Label Visual Recognition by Collaborative Training on
Uniform and Re-balanced Samplings" (CVPR 2021): :class:`LogitCompensatedBCE` (Eq. 2),
:class:`CrossBranchConsistency` and their sum :class:`LTMLLoss` (Eq. 1); and the baselines they
are compared with and those of partial-label learning. Each module holds one family, its
functional form (also in :mod:`ltml.functional`) beside its ``nn.Module``:

- :mod:`ltml.losses.bce`: :class:`BCE`, :class:`WeightedBCE`, :class:`FocalLoss`,
  :class:`ClassBalancedFocalLoss`;
- :mod:`ltml.losses.compensated`: :class:`LogitCompensatedBCE`;
- :mod:`ltml.losses.distribution_balanced`: :class:`DistributionBalancedLoss` and its class
  statistics, :func:`db_statistics`;
- :mod:`ltml.losses.asymmetric`: :class:`AsymmetricLoss`;
- :mod:`ltml.losses.comic`: :class:`MultiFocalModifierLoss`;
- :mod:`ltml.losses.correction`: :class:`ReflectiveLabelCorrector`;
- :mod:`ltml.losses.balance`: :class:`HeadTailBalancer` (COMIC's balance stage);
- :mod:`ltml.losses.robust`: :class:`HillLoss`, :class:`SPLCLoss` (robust to missing labels);
- :mod:`ltml.losses.collaborative`: :class:`CrossBranchConsistency`, :class:`LTMLLoss`;
- :mod:`ltml.losses.deferred`: :class:`DeferredReweightedBCE`.

All take ``(logits, targets)`` of shape ``(N, C)``, where a target of -1 marks an unknown label
that contributes nothing (``unknown="ignore"``, the default: masked out of the loss, no
gradient) or counts as a negative (``unknown="negative"``); all honour ``reduction`` as
:mod:`torch.nn` losses do (``"mean"`` over the known elements). Logits are computed in at least
float32 (float16 / bfloat16 inputs, as under autocast, are upcast) and never modified in place.
Class statistics are given as counts or read from the training label matrix (``from_labels``);
per-class weights come from :func:`ltml.class_weights`. Class statistics are buffers, so they
follow ``.to(device)`` and are saved in the ``state_dict``.

Targets may be soft, any value in [0, 1] (mixup, label smoothing), for every loss but
:class:`DistributionBalancedLoss`, :class:`MultiFocalModifierLoss`,
:class:`ReflectiveLabelCorrector` and :class:`SPLCLoss`, whose definitions need 0 / 1 labels
and refuse soft ones with a ``ValueError`` naming ``targets`` (:class:`HeadTailBalancer` takes
what its criterion takes); each functional form's docstring gives its soft form, which
for 0 / 1 targets gives the hard formula's values, to the bit. On CPU tensors the values of the
inputs (finite logits, targets in {-1, 0, 1}, or {-1} ∪ [0, 1] where soft targets are accepted)
are checked eagerly and a bad value raises a ``ValueError``; on GPU tensors (and under
``torch.compile``) the same checks are device-side assertions, so that no loss makes the host
wait for the device.
"""

from ._core import Reduction, Unknown
from .asymmetric import AsymmetricLoss
from .balance import HeadTailBalancer
from .bce import BCE, ClassBalancedFocalLoss, FocalLoss, WeightedBCE
from .collaborative import CrossBranchConsistency, LTMLLoss, LTMLLossOutput
from .comic import MultiFocalModifierLoss
from .compensated import LogitCompensatedBCE
from .correction import CorrectorOutput, ReflectiveLabelCorrector
from .deferred import DeferredReweightedBCE
from .distribution_balanced import DistributionBalancedLoss, db_statistics
from .robust import HillLoss, SPLCLoss

__all__ = [
    "BCE",
    "AsymmetricLoss",
    "ClassBalancedFocalLoss",
    "CorrectorOutput",
    "CrossBranchConsistency",
    "DeferredReweightedBCE",
    "DistributionBalancedLoss",
    "FocalLoss",
    "HeadTailBalancer",
    "HillLoss",
    "LTMLLoss",
    "LTMLLossOutput",
    "LogitCompensatedBCE",
    "MultiFocalModifierLoss",
    "Reduction",
    "ReflectiveLabelCorrector",
    "SPLCLoss",
    "Unknown",
    "WeightedBCE",
    "db_statistics",
]
