"""Deferred re-balancing: a loss and a sampler that switch to re-balancing at a given epoch.

Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss" (NeurIPS
2019) train with plain weights first and switch class re-weighting on late (*deferred
re-weighting*, DRW); the Bag of Tricks (Zhang et al., AAAI 2021) does the same with the sampler
(*deferred re-sampling*, DRS). The representation is learnt on the true distribution, the
re-balancing then adjusts the decision boundaries.

- :class:`DeferredReweightedBCE`: BCE with uniform class weights before ``start_epoch``, the
  given per-class weights from it on.
- :class:`DeferredClassAwareSampler`: the uniform order (a shuffle of the images) before
  ``start_epoch``, :class:`~ltml.ClassAwareSampler`'s draws from it on.

Both switch on ``set_epoch(epoch)``, called at the start of each epoch as for
:class:`~torch.utils.data.DistributedSampler`; what they do is a function of the epoch alone, so
a run resumed at any epoch behaves as an uninterrupted one.
"""

from __future__ import annotations

from .losses.deferred import DeferredReweightedBCE
from .samplers.deferred import DeferredClassAwareSampler

__all__ = ["DeferredClassAwareSampler", "DeferredReweightedBCE"]
