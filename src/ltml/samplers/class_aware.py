"""Class-aware (re-balanced) sampling for multi-label data: a class, then a positive image.

:class:`ClassAwareSampler` is the re-balanced stream of Guo & Wang (CVPR 2021), multi-label aware,
with class probability ``∝ n_k ** power`` (class-balanced, square-root, instance-frequency, or a
schedule over epochs), or the cyclic variant of the Distribution-Balanced loss code (Wu et al.,
ECCV 2020) that produced the published VOC-LT / COCO-LT numbers. It follows
:class:`torch.utils.data.DistributedSampler`: ``set_epoch(epoch)``, an order that is a pure
function of ``(seed, epoch)`` (never the global RNG), equal, disjoint rank shares.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np

from .._deprecation import renamed_keyword, warn_renamed
from .._label_forms import class_lists_csr, to_class_csr
from .._validation import check_choice, check_int, check_scalar, check_seed
from ._draws import (
    ShardedEpochSampler,
    distributed_defaults,
    draw_cycle,
    draw_random,
    shard,
    warn_if_sharded_again,
)

__all__ = ["ClassAwareSampler"]

_DB_IMAGES_PER_CLASS = 3  # Wu et al. (2020) take 3 consecutive images per class visit.
_DB_EPOCH_DIVISOR = 4  # ... and an epoch of max_k n_k * C / 4 draws.


class ClassAwareSampler(ShardedEpochSampler):
    r"""Class-aware (re-balanced) sampling of a multi-label dataset: a class, then a positive image.

    Each draw picks a class ``k`` with probability

    .. math:: P(k) = n_k^{\,q} \,/\, \textstyle\sum_j n_j^{\,q}

    (:math:`n_k` the known positives of class :math:`k`, :math:`q` = ``power``), then an image
    uniformly among the positives of :math:`k` (Shen et al., ECCV 2016; the multi-label form of
    Wu et al., ECCV 2020, and the re-balanced branch of Guo & Wang, CVPR 2021). An image with
    several labels can be reached through each of its classes, so image ``i`` is drawn with
    probability
    :math:`\sum_{k \ni i} P(k) / n_k`.

    - ``power=0`` (default): class-balanced, every class equally often.
    - ``power=0.5``: square-root sampling (Mahajan et al., ECCV 2018).
    - ``power=1``: class ``k`` with probability :math:`n_k / \sum_j n_j`, hence image ``i`` with
      probability :math:`|L_i| / \sum_j n_j`, where :math:`|L_i|` is its number of positive labels:
      instance frequency weighted by label count. It equals uniform image sampling only for
      single-label data; for the plain uniform stream use :class:`~torch.utils.data.RandomSampler`.
    - a callable ``epoch -> power`` moves the power over epochs (progressively-balanced sampling,
      Kang et al., ICLR 2020): ``power=lambda e: max(0.0, 1 - e / 8)`` goes from ``power=1`` at
      epoch 0 to class-balanced at epoch 8. (Kang et al. mix the two *probabilities* linearly; a
      power schedule joins the same end points geometrically.)

    ``mode="cycle"`` is the variant of the Distribution-Balanced loss code (Wu et al., ECCV 2020),
    used by the published VOC-LT / COCO-LT results: classes are visited in a shuffled cycle
    (reshuffled at each pass), and each visit takes ``images_per_class`` (3) consecutive images from
    that class's own shuffled cycle of positives. It is class-balanced (class visit counts differ by
    at most one), so ``power`` must be 0. Pair it with ``num_draws="db"``, their epoch length
    ``int(max_k n_k * C / 4)`` (``C`` = classes with a positive): 3,875 draws on VOC-LT, 22,560 on
    COCO-LT. It is a mode rather than a second class because everything but the draw (label forms,
    epochs, sharding, empty classes, length) is shared. Unlike their code, the cycles restart at
    each epoch, so that the order is a function of ``(seed, epoch)`` alone.

    Replacement: ``mode="random"`` draws with replacement (i.i.d. draws; an image can appear many
    times in an epoch, through any of its classes). ``mode="cycle"`` draws each class's positives
    without replacement within each pass over that class; an image can still repeat across passes
    and through its other classes.

    Images with no known positive label are never drawn (no class leads to them); the uniform stream
    (a :class:`~torch.utils.data.RandomSampler` in :class:`~ltml.PairedSampler`) still sees them.
    Classes with no known positive are skipped with one warning (or an error,
    ``empty_classes="error"``).

    Distributed: one global order of ``num_draws`` draws, padded to
    ``total_size = ceil(num_draws / R) * R`` indices (``R = num_replicas``) by repeating its
    beginning as :class:`~torch.utils.data.DistributedSampler` does; rank ``r`` takes positions
    ``r, r + R, ...``, so the ranks' shares are disjoint by position, of equal length
    (``num_draws_per_rank = total_size // R = len(sampler)``), and together are the epoch.
    A framework that shards the loader again (Lightning's default ``use_distributed_sampler=True``,
    Accelerate's ``prepare(loader)``) would leave each process ``1 / R`` of its share: the sampler
    warns once when it finds such sharding above it, and the guide "Lightning, Accelerate and
    other trainers" gives the setting that keeps plain DDP's epoch.

    Counts of an epoch, one name each: ``num_draws`` over all replicas (what
    :class:`~torch.utils.data.RandomSampler` calls ``num_samples``), ``total_size`` once padded
    (as in :class:`~torch.utils.data.DistributedSampler`), and ``num_draws_per_rank`` for one
    rank (what :class:`~torch.utils.data.DistributedSampler` calls ``num_samples``). The former
    name ``num_samples`` (argument and attribute) meant ``num_draws``, which a DDP user reads as
    the per-rank count: it still works, with a ``FutureWarning``.

    Parameters
    ----------
    labels : ndarray, Tensor, sparse matrix or VerifiedLabels, shape (N, C)
        The training labels: a 0 / 1 matrix where -1 (unknown) is not counted, dense or in a
        sparse form (scipy / torch sparse, :class:`ltml.VerifiedLabels`: the inputs page). Per-image
        lists of positive class indices (memory proportional to the positive labels, not
        ``N * C``) go through :meth:`from_class_lists` instead, so that no nested list can be
        read in two ways.
    num_draws : int or "db", optional
        Draws per epoch over all replicas, before padding (``num_samples`` of
        :class:`~torch.utils.data.RandomSampler`; the number of training images is
        ``num_images``, as everywhere in ltml). Default ``N`` (all images, labelled or not);
        ``"db"`` = ``int(max_k n_k * C / 4)`` (the DB-loss epoch, see above). Formerly
        ``num_samples`` (deprecated).
    power : float or callable, default 0.0
        Exponent ``q`` of the class probability, or a function ``epoch -> q``.
    mode : {"random", "cycle"}, default "random"
        I.i.d. draws, or the DB-loss class cycle.
    images_per_class : int, optional
        Consecutive images per class visit in ``mode="cycle"`` (default 3); only for that mode.
    seed : int, default 0
        With the epoch, the only source of randomness (``numpy.random.Generator`` seeded from
        ``(seed, epoch)``): every rank must use the same seed.
    num_replicas, rank : int, optional
        Process count and this process's rank; default to the initialised process group, else 1, 0.
        ``num_replicas=1`` alone: unsharded (rank 0) on every process, for a
        framework that shards the loader itself (guide "Lightning, Accelerate and other trainers").
    num_classes : int, optional
        ``C``: checked against the columns of ``labels`` (see :meth:`from_class_lists` for the
        sparse form).
    empty_classes : {"warn", "error"}, default "warn"
        What to do about classes with no known positive image.

    Attributes
    ----------
    counts : ndarray (C,), int64
        Known positives per class ``n_k``.
    num_images : int
        ``N``.
    num_draws : int
        Draws per epoch over all replicas, before padding.
    total_size : int
        ``ceil(num_draws / num_replicas) * num_replicas``: the padded epoch, over all replicas.
    num_draws_per_rank : int
        Indices this rank yields per epoch: ``total_size // num_replicas``, ``len(sampler)``.

    Examples
    --------
    >>> import torch
    >>> from ltml import ClassAwareSampler
    >>> labels = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 0, -1], [1, 1, 0], [0, 0, 1]])
    >>> sampler = ClassAwareSampler(labels, num_draws=6, seed=0)
    >>> len(sampler)
    6
    >>> order = list(sampler)
    >>> all(labels[i].eq(1).any() for i in order)
    True
    >>> sampler.set_epoch(1)
    >>> list(sampler) != order
    True

    Rank 1 of 3 yields 3 of the 7 draws padded to 9:

    >>> part = ClassAwareSampler(labels, num_draws=7, num_replicas=3, rank=1)
    >>> part.num_draws, part.total_size, part.num_draws_per_rank, len(part)
    (7, 9, 3, 3)
    """

    @renamed_keyword("num_samples", "num_draws")
    def __init__(
        self,
        labels: Any,
        num_draws: int | Literal["db"] | None = None,
        *,
        power: float | Callable[[int], float] = 0.0,
        mode: Literal["random", "cycle"] = "random",
        images_per_class: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        num_classes: int | None = None,
        empty_classes: Literal["warn", "error"] = "warn",
    ) -> None:
        check_choice(mode, "mode", ("random", "cycle"))
        check_choice(empty_classes, "empty_classes", ("warn", "error"))
        if mode == "random" and images_per_class is not None:
            raise ValueError("`images_per_class` applies only to mode='cycle'")
        per_class = _DB_IMAGES_PER_CLASS if images_per_class is None else images_per_class
        per_class = check_int(per_class, "images_per_class")
        if not callable(power):
            power = check_scalar(power, "power")
            if mode == "cycle" and power != 0:
                raise ValueError(f"mode='cycle' is class-balanced: `power` must be 0, got {power}")
        elif mode == "cycle":
            raise ValueError("mode='cycle' is class-balanced: `power` cannot be a schedule")
        seed = check_seed(seed)
        if num_classes is not None:
            num_classes = check_int(num_classes, "num_classes")

        indptr, self._indices, self.num_images = to_class_csr(labels, num_classes)
        self.counts: np.ndarray = np.diff(indptr)
        if self.num_images == 0 or not self.counts.any():
            raise ValueError(
                f"`labels` must contain at least one known positive label, got N={self.num_images} "
                f"images and C={self.counts.size} classes with none"
            )
        empty = np.flatnonzero(self.counts == 0)
        if empty.size:
            message = (
                f"{empty.size} of {self.counts.size} classes have no known positive image and "
                f"are never drawn: {empty[:10].tolist()}" + (" ..." if empty.size > 10 else "")
            )
            if empty_classes == "error":
                raise ValueError(f"`labels`: {message}")
            # 3: past the keyword-renaming wrapper, at the caller of ClassAwareSampler(...).
            warnings.warn(f"ClassAwareSampler: {message}", UserWarning, stacklevel=3)
        drawable = np.flatnonzero(self.counts)
        self._starts, self._counts = indptr[drawable], self.counts[drawable]
        self._drawable = drawable

        if num_draws is None:
            num_draws = self.num_images
        elif isinstance(num_draws, str):
            check_choice(num_draws, "num_draws", ("db",))
            num_draws = int(int(self._counts.max()) * drawable.size / _DB_EPOCH_DIVISOR)
        self.num_draws: int = check_int(num_draws, "num_draws")
        self.num_replicas, self.rank = distributed_defaults(num_replicas, rank)
        self.power, self.mode, self.images_per_class = power, mode, per_class
        self.seed, self.epoch = seed, 0

    @property
    def num_samples(self) -> int:
        """Deprecated name of :attr:`num_draws` (all replicas; not per rank as ``len(sampler)``)."""
        warn_renamed("num_samples", "num_draws")
        return self.num_draws

    @num_samples.setter
    def num_samples(self, value: int) -> None:
        warn_renamed("num_samples", "num_draws")
        self.num_draws = value

    @classmethod
    @renamed_keyword("num_samples", "num_draws")
    def from_class_lists(
        cls, class_lists: Any, *, num_classes: int | None = None, **kwargs: Any
    ) -> ClassAwareSampler:
        """Build the sampler from each image's positive classes instead of a dense matrix.

        Memory follows the number of positive labels, not ``N * C``.

        Parameters
        ----------
        class_lists : list of sequences of int, or tuple (indptr, indices)
            ``class_lists[i]`` = the positive class indices of image ``i`` (each listed once;
            an empty list for an image with none), or the same in CSR form: integer arrays
            ``indptr`` of length ``N + 1`` and ``indices``, image ``i``'s classes in
            ``indices[indptr[i]:indptr[i + 1]]``.
        num_classes : int, optional
            ``C``; default the largest class index + 1. Give it to count trailing classes that
            have no positive.
        **kwargs
            The other arguments of the constructor.

        Returns
        -------
        ClassAwareSampler

        Examples
        --------
        >>> from ltml import ClassAwareSampler
        >>> sampler = ClassAwareSampler.from_class_lists([[0, 2], [1], [0]], num_draws=4)
        >>> sampler.counts.tolist(), len(sampler)
        ([2, 1, 1], 4)
        """
        return cls(class_lists_csr(class_lists), num_classes=num_classes, **kwargs)

    def __iter__(self) -> Iterator[int]:
        warn_if_sharded_again(self, self.num_replicas)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.mode == "cycle":
            _, order = draw_cycle(
                rng, self._starts, self._counts, self._indices, self.num_draws,
                self.images_per_class,
            )  # fmt: skip
        else:
            power = self.power(self.epoch) if callable(self.power) else self.power
            _, order = draw_random(
                rng, self._starts, self._counts, self._indices, self.num_draws,
                check_scalar(power, "power(epoch)"),
            )  # fmt: skip
            rng.shuffle(order)
        return iter(shard(order, self.num_replicas, self.rank).tolist())
