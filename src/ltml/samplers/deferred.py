"""Deferred re-sampling (DRS): the uniform order first, class-aware sampling from an epoch on.

The Bag of Tricks (Zhang et al., AAAI 2021) switches the sampler to re-balancing late, as Cao et
al. (NeurIPS 2019) do with the loss weights (:class:`~ltml.DeferredReweightedBCE`): the
representation is learnt on the true distribution, the re-balancing then adjusts the decision
boundaries. The switch happens on ``set_epoch(epoch)``, so a run resumed at any epoch samples as
an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from torch.utils.data import Sampler

from .._deprecation import renamed_keyword
from .._validation import check_int
from ._draws import shard, warn_if_sharded_again
from .class_aware import ClassAwareSampler

__all__ = ["DeferredClassAwareSampler"]


class DeferredClassAwareSampler(Sampler[int]):
    """Deferred re-sampling (DRS): the uniform order, then class-aware sampling from an epoch on.

    Before ``start_epoch`` an epoch is a random permutation of the ``N`` images (each image once,
    as :class:`~torch.utils.data.RandomSampler`; for ``num_draws > N`` further independent
    permutations follow); from ``start_epoch`` on it is :class:`ltml.ClassAwareSampler`'s draw
    with the same ``labels``, ``power``, ``mode``, ``seed`` and length. Note that
    ``ClassAwareSampler(power=1)`` is *not* the uniform order on multi-label data: an image with
    ``m`` labels is drawn ``m`` times as often.

    Both phases are functions of ``(seed, epoch)`` only, and are sharded over processes as
    :class:`~torch.utils.data.DistributedSampler` does (one global order padded to a multiple of
    ``num_replicas``; rank ``r`` takes positions ``r, r + R, ...``), with the same length in both
    phases, so the DataLoader's length never changes.

    Parameters
    ----------
    labels : ndarray, Tensor, sparse matrix or VerifiedLabels, shape (N, C)
        The training labels, as :class:`ltml.ClassAwareSampler` takes them (0 / 1, -1 unknown).
    start_epoch : int
        First epoch of class-aware sampling.
    num_draws : int or "db", optional
        Draws per epoch over all replicas, in both phases; default ``N``. Formerly
        ``num_samples`` (deprecated), as in :class:`ltml.ClassAwareSampler`.
    power, mode, images_per_class, num_classes, empty_classes
        Passed to :class:`ltml.ClassAwareSampler` (default: class-balanced i.i.d. draws).
    seed : int
        With the epoch, the only source of randomness.
    num_replicas, rank : int, optional
        Process count and rank; default to the initialised process group, else 1, 0.
        ``num_replicas=1`` alone: unsharded (rank 0) on every process, for a
        framework that shards the loader itself (guide "Lightning, Accelerate and other trainers").

    Attributes
    ----------
    balanced : ClassAwareSampler
        The sampler of the second phase.

    Examples
    --------
    >>> import torch
    >>> from ltml import DeferredClassAwareSampler
    >>> labels = torch.tensor([[1, 0], [1, 0], [1, 0], [0, 1]])
    >>> sampler = DeferredClassAwareSampler(labels, start_epoch=1, seed=0)
    >>> sorted(sampler)  # epoch 0: every image once
    [0, 1, 2, 3]
    >>> sampler.set_epoch(1)
    >>> len(list(sampler)), sampler.active
    (4, True)
    """

    @renamed_keyword("num_samples", "num_draws")
    def __init__(
        self,
        labels: Any,
        start_epoch: int,
        num_draws: int | Literal["db"] | None = None,
        *,
        power: float = 0.0,
        mode: Literal["random", "cycle"] = "random",
        images_per_class: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        num_classes: int | None = None,
        empty_classes: Literal["warn", "error"] = "warn",
    ) -> None:
        check_int(start_epoch, "start_epoch", low=0)
        self.balanced = ClassAwareSampler(
            labels, num_draws, power=power, mode=mode, images_per_class=images_per_class,
            seed=seed, num_replicas=num_replicas, rank=rank, num_classes=num_classes,
            empty_classes=empty_classes,
        )  # fmt: skip
        self.start_epoch = int(start_epoch)
        self.seed, self.epoch = seed, 0

    @property
    def active(self) -> bool:
        """Whether the current epoch samples class-aware (``epoch >= start_epoch``)."""
        return self.epoch >= self.start_epoch

    def __len__(self) -> int:
        """Return the indices this rank yields per epoch (the same in both phases)."""
        return len(self.balanced)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: the phase and the order are functions of ``(seed, epoch)``."""
        check_int(epoch, "epoch", low=0)
        self.epoch = int(epoch)
        self.balanced.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        b = self.balanced
        # Keyed on the inner sampler, which the class-aware phase iterates: one warning per run.
        warn_if_sharded_again(b, b.num_replicas, name=type(self).__name__)
        if self.active:
            return iter(b)
        rng = np.random.default_rng([self.seed, self.epoch])
        passes = -(-b.num_draws // b.num_images)
        order = np.concatenate([rng.permutation(b.num_images) for _ in range(passes)])
        return iter(shard(order[: b.num_draws], b.num_replicas, b.rank).tolist())
