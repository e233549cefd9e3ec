r"""Repeat-factor sampling (Gupta, Dollár & Girshick, LVIS, CVPR 2019): rare images, more often.

Each image is repeated in an epoch by a factor set by its rarest class, so the re-sampling is
multi-label by construction: an image is never split by class, and the frequent classes of an
image repeated for its rare one come along (as they do in the data).

- :func:`repeat_factors` returns the per-image factors :math:`r(I)` (to inspect them, or to
  weight a :class:`~torch.utils.data.WeightedRandomSampler`).
- :class:`RepeatFactorSampler` draws the epochs: each image :math:`\lfloor r \rfloor` times,
  plus once more with probability :math:`r - \lfloor r \rfloor`, seeded and sharded as
  :class:`ltml.ClassAwareSampler`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._label_forms import class_lists_csr, to_class_csr
from .._validation import check_int, check_scalar, check_seed
from ._draws import ShardedEpochSampler, distributed_defaults, shard, warn_if_sharded_again

__all__ = ["RepeatFactorSampler", "repeat_factors"]


def _image_factors(labels: Any, threshold: float, num_classes: int | None) -> np.ndarray:
    """Per-image factors ``max(1, max_c sqrt(t / f_c))`` over the image's known positives."""
    check_scalar(threshold, "threshold", low=0.0, high=1.0, low_open=True)
    if num_classes is not None:
        num_classes = check_int(num_classes, "num_classes")
    class_ptr, image_ids, num_images = to_class_csr(labels, num_classes)
    counts = np.diff(class_ptr)
    if num_images == 0:
        raise ValueError("`labels` must hold at least one image, got N=0")
    fraction = counts / num_images
    with np.errstate(divide="ignore"):  # a class without a positive is no image's factor
        class_factor = np.maximum(1.0, np.sqrt(threshold / fraction))
    factors = np.ones(num_images, dtype=np.float64)
    np.maximum.at(factors, image_ids, np.repeat(class_factor, counts))
    return factors


def repeat_factors(
    labels: Any, threshold: float = 0.001, *, num_classes: int | None = None
) -> Tensor:
    r"""Repeat factor of every image: :math:`r(I) = \max_{c \in I} \max(1, \sqrt{t / f_c})`.

    :math:`f_c` is the fraction of the ``N`` training images with a known positive of class
    :math:`c` and :math:`t` the ``threshold``: a class present in fewer than a fraction
    :math:`t` of the images has its images repeated, by :math:`\sqrt{t / f_c}`. The maximum
    runs over the image's known positives; an image with none (all 0 or -1) has factor 1.

    Parameters
    ----------
    labels : ndarray or Tensor, shape (N, C)
        0 / 1 labels; -1 (unknown) is never counted as positive.
    threshold : float in (0, 1], default 0.001
        :math:`t` (the LVIS paper's value; larger on a dataset of few classes).
    num_classes : int, optional
        ``C``, checked against the columns of ``labels``.

    Returns
    -------
    Tensor, shape (N,), float64
        :math:`r(I) \ge 1`; an epoch of :class:`RepeatFactorSampler` holds
        :math:`\sum_I r(I)` images in expectation.

    Examples
    --------
    >>> import torch
    >>> from ltml import repeat_factors
    >>> labels = torch.tensor([[1, 0], [1, 0], [1, 0], [1, 1], [1, -1], [0, 0]])
    >>> repeat_factors(labels, threshold=0.5).tolist()  # f = (5/6, 1/6): class 1 by sqrt(3)
    [1.0, 1.0, 1.0, 1.7320508075688772, 1.0, 1.0]
    """
    return torch.from_numpy(_image_factors(labels, threshold, num_classes))


def _rounded_repeats(rng: np.random.Generator, factors: np.ndarray) -> np.ndarray:
    """One epoch's repeats: ``floor(r)``, plus one with probability ``r - floor(r)``."""
    whole = np.floor(factors)
    repeats: np.ndarray = (whole + (rng.random(factors.size) < factors - whole)).astype(np.int64)
    return repeats


class RepeatFactorSampler(ShardedEpochSampler):
    r"""Repeat-factor sampling (Gupta, Dollár & Girshick, LVIS, CVPR 2019).

    Class :math:`c`, positive in a fraction :math:`f_c` of the training images, gets the factor
    :math:`r_c = \max(1, \sqrt{t / f_c})` (:math:`t` = ``threshold``); an image gets the largest
    factor of its known positives, :math:`r(I) = \max_{c \in I} r_c` (1 for an image without
    one: every image is kept). An epoch holds each image :math:`\lfloor r(I) \rfloor` times,
    plus once more with probability :math:`r(I) - \lfloor r(I) \rfloor` (stochastic rounding,
    drawn anew each epoch), in a shuffled order: :math:`r(I)` copies in expectation. Only the
    classes rarer than :math:`t` are up-sampled, and by the square root of their rarity, so the
    head is barely changed; unlike class-aware sampling (:class:`ltml.ClassAwareSampler`) no
    image is left out and none is drawn more than :math:`\lceil r(I) \rceil` times an epoch.
    The standard re-sampling of LVIS and of detection libraries (mmdet's
    ``ClassBalancedDataset``, which rounds up instead, detectron2's
    ``RepeatFactorTrainingSampler``).

    ``num_draws`` (default None) sets the epoch's length. None: the epoch is the rounded
    repeats themselves, :math:`\sum_I \mathrm{round}(r(I))` indices, which vary by a few from
    epoch to epoch (``len(sampler)`` gives the current epoch's, after :meth:`set_epoch`). An
    integer: exactly that many, over all replicas, from successive independent roundings, each
    shuffled, cut where the count is reached (for a loader of a fixed number of steps).

    Epochs and distribution follow :class:`ltml.ClassAwareSampler`: an order that is a function
    of ``(seed, epoch)`` alone, padded to a multiple of ``num_replicas`` by repeating its
    beginning, rank ``r`` taking positions ``r, r + R, ...``.

    Parameters
    ----------
    labels : ndarray or Tensor, shape (N, C)
        0 / 1 labels, -1 = unknown (never counted as positive); per-image class lists go through
        :meth:`from_class_lists`.
    threshold : float in (0, 1], default 0.001
        :math:`t`: classes in fewer than this fraction of the images are up-sampled (0.001 in
        LVIS, of 1,203 classes; take it larger on a dataset of tens of classes).
    num_draws : int, optional
        Indices per epoch over all replicas, before padding; default the rounded repeats.
    seed : int, default 0
        With the epoch, the only source of randomness: every rank must use the same seed.
    num_replicas, rank : int, optional
        Process count and this process's rank; default to the initialised process group, else 1, 0.
        ``num_replicas=1`` alone: unsharded (rank 0) on every process, for a framework that
        shards the loader itself (guide "Lightning, Accelerate and other trainers").
    num_classes : int, optional
        ``C``, checked against the columns of ``labels``.

    Attributes
    ----------
    factors : Tensor (N,), float64
        :math:`r(I)`, as :func:`repeat_factors` returns them.
    num_images : int
        ``N``.
    num_draws, total_size, num_draws_per_rank : int
        Indices this epoch over all replicas, padded to ``ceil(num_draws / num_replicas) *
        num_replicas``, and ``total_size // num_replicas = len(sampler)``, as for
        :class:`ltml.ClassAwareSampler`.

    Examples
    --------
    >>> import torch
    >>> from ltml import RepeatFactorSampler
    >>> labels = torch.tensor([[1, 0], [1, 0], [1, 0], [1, 1], [1, -1], [0, 0]])
    >>> sampler = RepeatFactorSampler(labels, threshold=0.5, seed=0)
    >>> [round(r, 3) for r in sampler.factors.tolist()]
    [1.0, 1.0, 1.0, 1.732, 1.0, 1.0]
    >>> order = list(sampler)
    >>> len(order) in (6, 7), sorted(set(order)) == list(range(6)), order.count(3) in (1, 2)
    (True, True, True)

    A fixed epoch of 8 indices, rank 1 of 2:

    >>> part = RepeatFactorSampler(labels, threshold=0.5, num_draws=8, num_replicas=2, rank=1)
    >>> part.num_draws, part.total_size, len(part)
    (8, 8, 4)
    """

    def __init__(
        self,
        labels: Any,
        threshold: float = 0.001,
        *,
        num_draws: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        seed = check_seed(seed)
        self._factors = _image_factors(labels, threshold, num_classes)
        self.factors = torch.from_numpy(self._factors)
        self.num_images: int = self._factors.size
        self.threshold = threshold
        self._fixed = None if num_draws is None else check_int(num_draws, "num_draws")
        self.num_replicas, self.rank = distributed_defaults(num_replicas, rank)
        self.seed, self.epoch = seed, 0
        self._cache: tuple[int, np.ndarray] | None = None

    @classmethod
    def from_class_lists(
        cls, class_lists: Any, *, num_classes: int | None = None, **kwargs: Any
    ) -> RepeatFactorSampler:
        """Build the sampler from each image's positive classes instead of a dense matrix.

        Parameters
        ----------
        class_lists : list of sequences of int, or tuple (indptr, indices)
            As for :meth:`ltml.ClassAwareSampler.from_class_lists`.
        num_classes : int, optional
            ``C``; default the largest class index + 1.
        **kwargs
            The other arguments of the constructor.

        Returns
        -------
        RepeatFactorSampler

        Examples
        --------
        >>> from ltml import RepeatFactorSampler
        >>> lists = [[0], [0], [0], [0, 1], []]  # f = (4/5, 1/5)
        >>> RepeatFactorSampler.from_class_lists(lists, threshold=0.8).factors.tolist()
        [1.0, 1.0, 1.0, 2.0, 1.0]
        """
        return cls(class_lists_csr(class_lists), num_classes=num_classes, **kwargs)

    def _order(self) -> np.ndarray:
        """Return the epoch's whole order (all replicas, before padding), cached for the epoch."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        images = np.arange(self.num_images)
        rounds: list[np.ndarray] = []
        total = 0
        while True:  # one rounding unless num_draws asks for more than a round holds
            order = np.repeat(images, _rounded_repeats(rng, self._factors))
            rng.shuffle(order)
            rounds.append(order)
            total += order.size
            if self._fixed is None or total >= self._fixed:
                break
        order = np.concatenate(rounds)
        if self._fixed is not None:
            order = order[: self._fixed]
        self._cache = (self.epoch, order)
        return order

    @property
    def num_draws(self) -> int:
        """Indices this epoch over all replicas, before padding: ``num_draws``, or the round's."""
        return self._fixed if self._fixed is not None else int(self._order().size)

    def __iter__(self) -> Iterator[int]:
        warn_if_sharded_again(self, self.num_replicas)
        return iter(shard(self._order(), self.num_replicas, self.rank).tolist())
