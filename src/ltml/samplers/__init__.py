"""Re-balanced sampling for multi-label data: class-aware, paired (uniform + re-balanced), deferred.

- :class:`ClassAwareSampler` (:mod:`.class_aware`): the re-balanced stream, a class then one of
  its positive images, with class probability ``∝ n_k ** power`` or the DB-loss class cycle.
- :class:`PairedSampler` and :class:`PairedDataset` (:mod:`.paired`): a uniform and a re-balanced
  sampler in lockstep, for the two batches of one two-branch training step.
- :class:`BalancedSampler` and :func:`fit_balanced_weights` (:mod:`.balanced`): per-image
  probabilities fitted so that every class gets an equal share of the positive draws.
- :class:`RepeatFactorSampler` and :func:`repeat_factors` (:mod:`.repeat_factor`): LVIS's
  repeat-factor sampling, each image repeated by the factor of its rarest class.
- :class:`DeferredClassAwareSampler` (:mod:`.deferred`): the uniform order, then class-aware
  sampling from a given epoch on (deferred re-sampling).
- :class:`DistributedEvalSampler` (:mod:`.distributed_eval`): an evaluation set sharded over
  processes with every image exactly once (no padding), for a gathering metric.

All follow :class:`torch.utils.data.DistributedSampler`: ``set_epoch(epoch)``, an order that is a
pure function of ``(seed, epoch)`` (never the global RNG), equal, disjoint rank shares (the
training samplers; the evaluation shares differ by at most one). Under a framework that shards the
loader itself (Lightning, Accelerate), build the training samplers with ``num_replicas=1`` or
tell the framework not to shard: they warn when they are sharded twice.
"""

from .balanced import BalancedSampler, fit_balanced_weights
from .class_aware import ClassAwareSampler
from .deferred import DeferredClassAwareSampler
from .distributed_eval import DistributedEvalSampler
from .paired import PairedDataset, PairedSampler
from .repeat_factor import RepeatFactorSampler, repeat_factors

__all__ = [
    "BalancedSampler",
    "ClassAwareSampler",
    "DeferredClassAwareSampler",
    "DistributedEvalSampler",
    "PairedDataset",
    "PairedSampler",
    "RepeatFactorSampler",
    "fit_balanced_weights",
    "repeat_factors",
]
