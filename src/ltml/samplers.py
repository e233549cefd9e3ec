"""Re-balanced sampling for multi-label data: class-aware and paired (uniform + re-balanced).

Guo & Wang (CVPR 2021) train on two samplings of one training set at once: a *uniform* stream
(every image equally likely) and a *re-balanced* stream (class-aware: draw a class, then an image
positive for it).

- :class:`ClassAwareSampler` is the re-balanced stream, multi-label aware, with class probability
  ``∝ n_k ** power`` (class-balanced, square-root, instance-frequency, or a schedule over epochs),
  or the cyclic variant of the Distribution-Balanced loss code (Wu et al., ECCV 2020) that
  produced the published VOC-LT / COCO-LT numbers.
- :class:`PairedSampler` zips a uniform and a re-balanced sampler into ``(i_u, i_r)`` pairs, and
  :class:`PairedDataset` turns each pair into ``((x_u, y_u), (x_r, y_r))``, so that a standard
  :class:`~torch.utils.data.DataLoader` returns the two batches of one training step.

Both samplers follow :class:`torch.utils.data.DistributedSampler`: ``set_epoch(epoch)``, an order
that is a pure function of ``(seed, epoch)`` (never the global RNG), equal, disjoint rank shares.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator, Sequence, Sized
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ._validation import (
    as_tensor,
    check_choice,
    check_int,
    check_labels,
    check_matrix,
    check_scalar,
    check_seed,
)

__all__ = ["ClassAwareSampler", "PairedDataset", "PairedSampler"]

T_co = TypeVar("T_co", covariant=True)

_DB_IMAGES_PER_CLASS = 3  # Wu et al. (2020) take 3 consecutive images per class visit.
_DB_EPOCH_DIVISOR = 4  # ... and an epoch of max_k n_k * C / 4 draws.


# --------------------------------------------------------------------------------------------------
# Construction: any accepted label form -> per-class positive lists in CSR form (indptr, indices).
# --------------------------------------------------------------------------------------------------


def _csr_from_dense(labels: Any, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Class-major CSR of the known positives of a dense ``(N, C)`` label matrix."""
    y = as_tensor(labels, "labels")
    check_matrix(y, "labels", num_classes)
    values = y.detach().cpu().numpy()
    # Checked in numpy, as the rest of the construction (no intra-op thread pool to wake); the
    # shared check only words the error.
    if not _is_label_matrix(values):
        check_labels(y, "labels")
    images, classes = _dense_positives(values)
    # A stable sort by class keeps each class's images increasing (radix sort on narrow keys).
    order = np.argsort(classes.astype(_narrowest(values.shape[1])), kind="stable")
    counts = np.bincount(classes, minlength=values.shape[1])
    return _indptr(counts), images[order], values.shape[0]


def _is_label_matrix(values: np.ndarray) -> bool:
    """Whether ``values`` holds only -1 / 0 / 1: two reductions for integers, no temporaries."""
    if values.dtype == np.bool_ or values.size == 0:
        return True
    if np.issubdtype(values.dtype, np.integer):
        return bool(values.min() >= -1 and values.max() <= 1)
    return bool(((values == 1) | (values == 0) | (values == -1)).all())


def _dense_positives(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(image, class)`` of the entries equal to 1 of an ``(N, C)`` matrix, image-major.

    Label matrices are mostly zero: reading them 8 bytes at a time and looking inside the non-zero
    words only is several times faster than ``np.nonzero(values == 1)`` at 1,000,000 x 1,000, and
    allocates no ``(N, C)`` temporary.
    """
    flat = np.ascontiguousarray(values).reshape(-1)
    # ``values`` comes from a tensor of a real dtype: 1, 2, 4 or 8 bytes per entry.
    per_word = 8 // flat.itemsize
    whole = flat.size - flat.size % per_word
    words = np.flatnonzero(flat[:whole].view(np.uint64))
    candidates = (words[:, None] * per_word + np.arange(per_word)).reshape(-1)
    candidates = np.concatenate([candidates, np.arange(whole, flat.size)])
    index = candidates[flat[candidates] == 1]
    images, classes = np.divmod(index, max(values.shape[1], 1))
    return images.astype(np.int64), classes.astype(np.int64)


def _narrowest(num_classes: int) -> type[np.unsignedinteger[Any]] | type[np.int64]:
    """Return the narrowest key type for class ids (numpy sorts them stably by radix)."""
    if num_classes <= 1 << 8:
        return np.uint8
    return np.uint16 if num_classes <= 1 << 16 else np.int64


def _csr_from_image_major(
    image_ptr: np.ndarray, class_ids: np.ndarray, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Class-major CSR from an image-major one (row ``i`` holds the classes of image ``i``)."""
    if image_ptr.ndim != 1 or image_ptr.size == 0 or image_ptr[0] != 0:
        raise ValueError(
            "`class_lists` as a CSR pair (indptr, indices) needs a 1-D indptr of length N + 1 "
            "starting "
            f"at 0, got shape {image_ptr.shape}"
            + (f" starting at {image_ptr[0]}" if image_ptr.size else "")
        )
    if class_ids.ndim != 1 or image_ptr[-1] != class_ids.size:
        raise ValueError(
            "`class_lists` as a CSR pair (indptr, indices) needs indptr[-1] == len(indices), "
            f"got indptr[-1] = {image_ptr[-1]} and {class_ids.size} indices"
        )
    lengths = np.diff(image_ptr)
    if lengths.size and lengths.min() < 0:
        raise ValueError(
            "`class_lists` as a CSR pair (indptr, indices) needs a non-decreasing indptr"
        )
    if class_ids.size and class_ids.min() < 0:
        raise ValueError(
            f"`class_lists` class indices must be non-negative, got {int(class_ids.min())}"
        )
    seen = int(class_ids.max()) + 1 if class_ids.size else 0
    if num_classes is None:
        num_classes = seen
    elif seen > num_classes:
        raise ValueError(
            f"`class_lists` class indices must be < num_classes={num_classes}, got {seen - 1}"
        )
    # Stable sort by class keeps the images of each class increasing. On the narrowest unsigned
    # type numpy's stable sort is a radix sort: ~8x faster than on int64 at 3M labels.
    order = np.argsort(class_ids.astype(_narrowest(num_classes)), kind="stable")
    images = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)[order]
    indptr = _indptr(np.bincount(class_ids, minlength=num_classes))
    # A repeated (image, class) pair shows as equal neighbours inside one class.
    repeated = images[1:] == images[:-1]
    repeated[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < images.size)] - 1] = False
    if repeated.any():
        at = int(np.flatnonzero(repeated)[0])
        raise ValueError(
            f"`class_lists` lists class {int(class_ids[order[at]])} twice for image "
            f"{int(images[at])}; "
            "each image must list each of its positive classes once"
        )
    return indptr, images, lengths.size


def _indptr(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _as_int_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray | torch.Tensor):
        a = as_tensor(x, name).numpy(force=True)
    else:
        a = np.asarray(x)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"`{name}` must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


class _ClassLists(NamedTuple):
    """Per-image positive classes in image-major CSR form from :meth:`from_class_lists`."""

    indptr: np.ndarray
    indices: np.ndarray


def _class_lists_csr(class_lists: Any) -> _ClassLists:
    """Read per-image class lists, or a CSR pair ``(indptr, indices)``, into image-major CSR."""
    if (
        isinstance(class_lists, tuple)
        and len(class_lists) == 2
        and all(isinstance(a, np.ndarray | torch.Tensor) for a in class_lists)
    ):
        return _ClassLists(
            _as_int_array(class_lists[0], "class_lists indptr"),
            _as_int_array(class_lists[1], "class_lists indices"),
        )
    if isinstance(class_lists, Sequence) and not isinstance(class_lists, str | bytes | tuple):
        odd = next(
            (r for r in class_lists if not isinstance(r, Sequence | np.ndarray | torch.Tensor)
             or isinstance(r, str | bytes)),
            None,
        )  # fmt: skip
        if odd is None:
            lengths = np.fromiter((len(r) for r in class_lists), np.int64, len(class_lists))
            flat = list(itertools.chain.from_iterable(
                r.tolist() if isinstance(r, np.ndarray | torch.Tensor) else r for r in class_lists
            ))  # fmt: skip
            return _ClassLists(_indptr(lengths), _as_int_array(flat, "class_lists"))
        raise TypeError(
            "`class_lists` must hold one sequence of class indices per image, "
            f"got an element of type {type(odd).__name__}"
        )
    raise TypeError(
        "`class_lists` must be a list of per-image class-index lists or a tuple (indptr, indices) "
        f"of integer arrays, got {type(class_lists).__name__}"
    )


def _to_class_csr(labels: Any, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Class-major CSR of a dense label matrix, or of the class lists of ``from_class_lists``."""
    if isinstance(labels, _ClassLists):
        return _csr_from_image_major(labels.indptr, labels.indices, num_classes)
    if isinstance(labels, np.ndarray | torch.Tensor):
        return _csr_from_dense(labels, num_classes)
    raise TypeError(
        "`labels` must be an (N, C) numpy.ndarray or torch.Tensor of 0 / 1 (-1 = unknown), "
        f"got {type(labels).__name__}; convert a nested list of 0 / 1 rows with numpy.asarray, "
        "and pass per-image class-index lists to ClassAwareSampler.from_class_lists"
    )


# --------------------------------------------------------------------------------------------------
# The draw cores: vectorised, one generator, no Python loop per draw. ``starts`` / ``counts``
# describe the classes that can be drawn (at least one positive); each returns (class slot, image).
# --------------------------------------------------------------------------------------------------


def _draw_random(
    rng: np.random.Generator,
    starts: np.ndarray,
    counts: np.ndarray,
    indices: np.ndarray,
    n: int,
    power: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws (class ``∝ counts ** power``, then one of its images), grouped by class.

    The draws come grouped by class (multinomial class totals), which reads memory in order;
    shuffled uniformly (as the sampler does) they are exactly an i.i.d. sequence of draws.
    """
    log_w = power * np.log(counts.astype(np.float64))  # log space: no overflow for large powers
    w = np.exp(log_w - log_w.max())
    slots = np.repeat(np.arange(counts.size), rng.multinomial(n, w / w.sum()))
    return slots, indices[starts[slots] + rng.integers(0, counts[slots])]


def _draw_cycle(
    rng: np.random.Generator,
    starts: np.ndarray,
    counts: np.ndarray,
    indices: np.ndarray,
    n: int,
    per_class: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws: a shuffled class cycle, ``per_class`` images from each class's own cycle."""
    # A visit never takes more than the epoch's n draws: memory follows n, not per_class.
    per_class = min(per_class, n)
    num_classes = counts.size
    visits = -(-n // per_class)
    rounds = -(-visits // num_classes)
    # Row m is the m-th pass over the classes (an independent permutation), so the visit at row m
    # is that class's m-th visit: it takes positions m*per_class ... of the class's own stream.
    slots = rng.permuted(np.tile(np.arange(num_classes), (rounds, 1)), axis=1).ravel()[:visits]
    rows = np.arange(visits) // num_classes
    # Each class stream is a concatenation of independent permutations of its positives, as many
    # as its visits need; all streams are shuffled together by one sort on (segment, random key).
    need = np.bincount(slots, minlength=num_classes) * per_class
    passes = np.maximum(-(-need // counts), 1)
    seg_len = np.repeat(counts, passes)
    seg_first = np.cumsum(seg_len) - seg_len
    total = int(seg_len.sum())
    seg = np.repeat(np.arange(seg_len.size, dtype=np.uint64), seg_len)
    keys = (seg << np.uint64(40)) | rng.integers(0, 1 << 40, size=total, dtype=np.uint64)
    members = indices[np.arange(total) + np.repeat(np.repeat(starts, passes) - seg_first, seg_len)]
    streams = members[np.argsort(keys)]
    stream_first = np.cumsum(counts * passes) - counts * passes
    pos = (stream_first[slots] + rows * per_class)[:, None] + np.arange(per_class)
    return np.repeat(slots, per_class)[:n], streams[pos.ravel()[:n]]


def _shard(order: np.ndarray, num_replicas: int, rank: int) -> np.ndarray:
    """Pad ``order`` cyclically to a multiple of ``num_replicas`` and take positions rank::R."""
    total = -(-order.size // num_replicas) * num_replicas
    return np.resize(order, total)[rank::num_replicas]


def _distributed_defaults(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialised else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    num_replicas = check_int(num_replicas, "num_replicas")
    return num_replicas, check_int(rank, "rank", low=0, high=num_replicas - 1)


class ClassAwareSampler(Sampler[int]):
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
    at most one), so ``power`` must be 0. Pair it with ``num_samples="db"``, their epoch length
    ``int(max_k n_k * C / 4)`` (``C`` = classes with a positive): 3,875 draws on VOC-LT, 22,560 on
    COCO-LT. It is a mode rather than a second class because everything but the draw (label forms,
    epochs, sharding, empty classes, length) is shared. Unlike their code, the cycles restart at
    each epoch, so that the order is a function of ``(seed, epoch)`` alone.

    Replacement: ``mode="random"`` draws with replacement (i.i.d. draws; an image can appear many
    times in an epoch, through any of its classes). ``mode="cycle"`` draws each class's positives
    without replacement within each pass over that class; an image can still repeat across passes
    and through its other classes.

    Images with no known positive label are never drawn (no class leads to them); the uniform stream
    (a :class:`~torch.utils.data.RandomSampler` in :class:`PairedSampler`) still sees them. Classes
    with no known positive are skipped with one warning (or an error, ``empty_classes="error"``).

    Distributed: one global order of ``total_size = ceil(num_samples / R) * R`` indices
    (``R = num_replicas``), padded by repeating its beginning as
    :class:`~torch.utils.data.DistributedSampler` does; rank ``r`` takes positions
    ``r, r + R, ...``, so the ranks' shares are disjoint by position, of equal length, and
    together are the epoch.

    Parameters
    ----------
    labels : ndarray or Tensor, shape (N, C)
        The training labels: a dense 0 / 1 matrix where -1 (unknown) is not counted. Per-image
        lists of positive class indices (memory proportional to the positive labels, not
        ``N * C``) go through :meth:`from_class_lists` instead, so that no nested list can be
        read in two ways.
    num_samples : int or "db", optional
        Draws per epoch over all replicas, as ``num_samples`` of
        :class:`~torch.utils.data.RandomSampler` (the number of training images is
        ``num_images``, as everywhere in ltml). Default ``N`` (all images, labelled or not);
        ``"db"`` = ``int(max_k n_k * C / 4)`` (the DB-loss epoch, see above).
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
    num_samples : int
        Draws per epoch over all replicas (before padding).
    total_size : int
        ``ceil(num_samples / num_replicas) * num_replicas``.

    Examples
    --------
    >>> import torch
    >>> from ltml import ClassAwareSampler
    >>> labels = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 0, -1], [1, 1, 0], [0, 0, 1]])
    >>> sampler = ClassAwareSampler(labels, num_samples=6, seed=0)
    >>> len(sampler)
    6
    >>> order = list(sampler)
    >>> all(labels[i].eq(1).any() for i in order)
    True
    >>> sampler.set_epoch(1)
    >>> list(sampler) != order
    True
    """

    def __init__(
        self,
        labels: Any,
        num_samples: int | Literal["db"] | None = None,
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

        indptr, self._indices, self.num_images = _to_class_csr(labels, num_classes)
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
            warnings.warn(f"ClassAwareSampler: {message}", UserWarning, stacklevel=2)
        drawable = np.flatnonzero(self.counts)
        self._starts, self._counts = indptr[drawable], self.counts[drawable]
        self._drawable = drawable

        if num_samples is None:
            num_samples = self.num_images
        elif isinstance(num_samples, str):
            check_choice(num_samples, "num_samples", ("db",))
            num_samples = int(int(self._counts.max()) * drawable.size / _DB_EPOCH_DIVISOR)
        self.num_samples: int = check_int(num_samples, "num_samples")
        self.num_replicas, self.rank = _distributed_defaults(num_replicas, rank)
        self.total_size: int = -(-num_samples // self.num_replicas) * self.num_replicas
        self.power, self.mode, self.images_per_class = power, mode, per_class
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        """Return the indices this rank yields per epoch: ``total_size // num_replicas``."""
        return self.total_size // self.num_replicas

    @classmethod
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
        >>> sampler = ClassAwareSampler.from_class_lists([[0, 2], [1], [0]], num_samples=4)
        >>> sampler.counts.tolist(), len(sampler)
        ([2, 1, 1], 4)
        """
        return cls(_class_lists_csr(class_lists), num_classes=num_classes, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: the next iteration's order is a function of ``(seed, epoch, rank)``."""
        self.epoch = check_int(epoch, "epoch", low=0)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.mode == "cycle":
            _, order = _draw_cycle(
                rng, self._starts, self._counts, self._indices, self.num_samples,
                self.images_per_class,
            )  # fmt: skip
        else:
            power = self.power(self.epoch) if callable(self.power) else self.power
            _, order = _draw_random(
                rng, self._starts, self._counts, self._indices, self.num_samples,
                check_scalar(power, "power(epoch)"),
            )  # fmt: skip
            rng.shuffle(order)
        return iter(_shard(order, self.num_replicas, self.rank).tolist())


def _length(sampler: Any, name: str, kind: str = "sampler") -> int:
    """``len(sampler)``, with an error naming the argument when it has no valid length."""
    if not isinstance(sampler, Sized):
        raise TypeError(f"`{name}` must be a {kind} with __len__, got {type(sampler).__name__}")
    try:
        return len(sampler)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must have a __len__ giving a non-negative int: {err}") from None


def _passes(sampler: Sampler[int], name: str, epoch: int, length: int) -> Iterator[int]:
    """Yield ``length`` indices of ``sampler``, re-iterating it (new epoch each pass) as it ends.

    Each pass must yield ``len(sampler)`` indices (or reach ``length``): a sampler whose length
    is wrong would otherwise end the pairs early or pair indices from different epochs.
    """
    size = _length(sampler, name)
    passes = -(-length // size)
    set_epoch = getattr(sampler, "set_epoch", None)
    remaining = length
    for p in range(passes):
        if set_epoch is not None:
            set_epoch(epoch * passes + p)
        want = min(size, remaining)
        count = 0
        for index in sampler:
            if count == want:
                if want < size:
                    break
                raise ValueError(f"`{name}` yields more indices than its len() = {size}")
            yield index
            count += 1
        if count < want:
            raise ValueError(f"`{name}` yielded {count} indices but its len() is {size}")
        remaining -= want


class PairedSampler(Sampler[tuple[int, int]]):
    """Yield ``(i_u, i_r)`` pairs from a uniform and a re-balanced sampler in lockstep.

    Guo & Wang (CVPR 2021) feed each training step a uniform batch and a re-balanced batch. With
    :class:`PairedDataset` and a standard :class:`~torch.utils.data.DataLoader`
    (``sampler=PairedSampler(...)``, any ``batch_size``, ``num_workers``, ``pin_memory``,
    ``drop_last``) each batch is ``((x_u, y_u), (x_r, y_r))``. It is an *index* sampler rather than
    a batch sampler so that the DataLoader keeps its own ``batch_size`` / ``drop_last`` handling and
    both halves of a batch always have the same size.

    Length: the two streams need one length per epoch, and they rarely agree (on VOC-LT a uniform
    epoch is 1,142 draws, the DB class-aware epoch 3,875). ``length="balanced"`` (default) runs the
    epoch for ``len(balanced)`` pairs, re-iterating the uniform sampler as it runs out;
    ``"uniform"`` does the reverse; ``"min"`` stops at the shorter. A sampler re-iterated within an
    epoch gets ``set_epoch(epoch * passes + p)`` before its pass ``p`` (``passes`` = the passes it
    needs per epoch), so it reshuffles at each wrap and stays a function of the epoch; a sampler
    without ``set_epoch`` (e.g. :class:`~torch.utils.data.RandomSampler`; give it a seeded
    ``generator``) is simply iterated again. Count training in iterations, not only epochs.

    Distributed: shard both samplers (e.g. a :class:`~torch.utils.data.DistributedSampler` and a
    :class:`ClassAwareSampler`, both of which default to the process group); their per-rank lengths
    are equal on every rank, so every rank runs the same number of batches.

    Parameters
    ----------
    uniform, balanced : Sampler of int
        Samplers with ``__len__`` yielding dataset indices.
    length : {"balanced", "uniform", "min"}, default "balanced"
        Which stream sets the epoch length.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, RandomSampler, TensorDataset
    >>> from ltml import ClassAwareSampler, PairedDataset, PairedSampler
    >>> labels = torch.tensor([[1, 0], [1, 0], [1, 0], [0, 1]])
    >>> data = TensorDataset(torch.arange(4.0)[:, None], labels)
    >>> uniform = RandomSampler(data, generator=torch.Generator().manual_seed(0))
    >>> sampler = PairedSampler(uniform, ClassAwareSampler(labels, num_samples=6))
    >>> loader = DataLoader(PairedDataset(data), sampler=sampler, batch_size=3)
    >>> (x_u, y_u), (x_r, y_r) = next(iter(loader))
    >>> x_u.shape, y_r.shape, len(loader)
    (torch.Size([3, 1]), torch.Size([3, 2]), 2)
    """

    def __init__(
        self,
        uniform: Sampler[int],
        balanced: Sampler[int],
        *,
        length: Literal["balanced", "uniform", "min"] = "balanced",
    ) -> None:
        for name, sampler in (("uniform", uniform), ("balanced", balanced)):
            if _length(sampler, name) == 0:
                raise ValueError(f"`{name}` must yield at least one index, got len 0")
            if not hasattr(sampler, "__iter__"):
                raise TypeError(
                    f"`{name}` must be an iterable sampler, got {type(sampler).__name__}"
                )
        check_choice(length, "length", ("balanced", "uniform", "min"))
        self.uniform, self.balanced, self.length = uniform, balanced, length
        self.epoch = 0

    def __len__(self) -> int:
        """Return the pairs per epoch (per rank), by the ``length`` rule."""
        sizes = {
            "uniform": _length(self.uniform, "uniform"),
            "balanced": _length(self.balanced, "balanced"),
        }
        return min(sizes.values()) if self.length == "min" else sizes[self.length]

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of both samplers (see the class notes for re-iterated samplers)."""
        self.epoch = check_int(epoch, "epoch", low=0)
        for sampler in (self.uniform, self.balanced):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        n = len(self)
        return zip(
            _passes(self.uniform, "uniform", self.epoch, n),
            _passes(self.balanced, "balanced", self.epoch, n),
            strict=True,
        )


class PairedDataset(Dataset[tuple[T_co, T_co]]):
    """Map an index pair ``(i_u, i_r)`` to ``(dataset[i_u], dataset[i_r])``.

    With a dataset of ``(x, y)`` items and :class:`PairedSampler`, a DataLoader's default collation
    gives ``((x_u, y_u), (x_r, y_r))`` batches. See :class:`PairedSampler` for an example.

    Parameters
    ----------
    dataset : Dataset
        Any map-style dataset.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from ltml import PairedDataset
    >>> data = TensorDataset(torch.arange(4.0), torch.tensor([[0], [1], [1], [0]]))
    >>> (x_u, y_u), (x_r, y_r) = PairedDataset(data)[(0, 2)]
    >>> x_u.item(), y_u.tolist(), x_r.item(), y_r.tolist()
    (0.0, [0], 2.0, [1])
    """

    def __init__(self, dataset: Dataset[T_co]) -> None:
        if not hasattr(dataset, "__getitem__"):
            raise TypeError(
                "`dataset` must be a map-style dataset (with __getitem__), "
                f"got {type(dataset).__name__}"
            )
        self.dataset = dataset

    def __len__(self) -> int:
        """Return the length of the wrapped dataset."""
        return _length(self.dataset, "dataset", kind="dataset")

    def __getitem__(self, pair: tuple[int, int]) -> tuple[T_co, T_co]:
        """Return ``(dataset[i_u], dataset[i_r])``."""
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(
                "`pair` must be an index pair (i_u, i_r), as PairedSampler yields, "
                f"got {type(pair).__name__}"
            )
        i_u, i_r = pair
        return self.dataset[i_u], self.dataset[i_r]
