"""How an epoch's order is made: the vectorised draw cores and the DistributedSampler-style shard.

``starts`` / ``counts`` describe the classes that can be drawn (at least one positive), as slices
of the class-major ``indices`` of :mod:`ltml._label_forms`; each draw returns
``(class slot, image)`` arrays from one generator, with no Python loop per draw. The shard also
watches for a framework that shards what a sharded sampler yields once more
(:func:`warn_if_sharded_again`). :class:`ShardedEpochSampler` holds the members that the
re-balanced samplers derive alike from their ``num_draws``.
"""

from __future__ import annotations

import sys
import warnings
import weakref
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Sampler

from .._validation import check_int


def draw_random(
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


def draw_cycle(
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


def shard(order: np.ndarray, num_replicas: int, rank: int) -> np.ndarray:
    """Pad ``order`` cyclically to a multiple of ``num_replicas`` and take positions rank::R."""
    total = -(-order.size // num_replicas) * num_replicas
    return np.resize(order, total)[rank::num_replicas]


class ShardedEpochSampler(Sampler[int]):
    """The epoch members of a sampler of ``num_draws`` indices per epoch over all replicas.

    Padded and sharded like :class:`~torch.utils.data.DistributedSampler`: ``len()`` is this
    rank's share.
    """

    num_replicas: int
    rank: int
    seed: int
    epoch: int
    if TYPE_CHECKING:  # an attribute of a subclass, or a property where it varies by epoch

        @property
        def num_draws(self) -> int: ...

    @property
    def total_size(self) -> int:
        """The epoch padded to a multiple of the replicas: ``ceil(num_draws / R) * R``."""
        return -(-self.num_draws // self.num_replicas) * self.num_replicas

    @property
    def num_draws_per_rank(self) -> int:
        """Indices this rank yields per epoch: ``total_size // num_replicas``, ``len(sampler)``."""
        return self.total_size // self.num_replicas

    def __len__(self) -> int:
        """Return the indices this rank yields per epoch: :attr:`num_draws_per_rank`."""
        return self.num_draws_per_rank

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch: the next iteration's order is a function of ``(seed, epoch, rank)``."""
        self.epoch = check_int(epoch, "epoch", low=0)


def distributed_defaults(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Process count and rank: the given ones, else the initialised process group's, else 1, 0.

    ``num_replicas=1`` alone means unsharded (rank 0) on every process, for a framework that
    shards the loader itself.
    """
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if rank is None and num_replicas is not None and check_int(num_replicas, "num_replicas") == 1:
        rank = 0
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialised else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    num_replicas = check_int(num_replicas, "num_replicas")
    return num_replicas, check_int(rank, "rank", low=0, high=num_replicas - 1)


# The functions that shard what a sampler yields once more, by module: Lightning's
# DistributedSamplerWrapper lists the sampler in _DatasetSamplerWrapper (Trainer and Fabric with
# use_distributed_sampler=True, their default); Accelerate's prepare(dataloader) deals out whole
# batches in BatchSamplerShard, or splits the main process's in DataLoaderDispatcher. Functions,
# not whole modules: Accelerate's skip_first_batches iterates a loader without sharding it.
_LIGHTNING = frozenset({"reset", "__getitem__"})
_SHARDING_FRAMEWORKS = {
    "lightning.fabric.utilities.distributed": ("Lightning", _LIGHTNING),
    "lightning_fabric.utilities.distributed": ("Lightning", _LIGHTNING),
    "accelerate.data_loader": (
        "Accelerate",
        frozenset({"_iter_with_split", "_iter_with_no_split", "_fetch_batches"}),
    ),
}
_ADVICE = {
    "Lightning": (
        "Lightning shards the loader again (Trainer(use_distributed_sampler=True), the default)."
        " Either keep this sampler's sharding and pass Trainer(use_distributed_sampler=False), or"
        " build the sampler with num_replicas=1 and let Lightning shard it"
    ),
    "Accelerate": (
        "Accelerate's prepare() shards the loader again (it deals out whole batches in turn)."
        " Either keep this sampler's sharding and leave the DataLoader out of"
        " accelerator.prepare(...) (move each batch to accelerator.device), or build the sampler"
        " with num_replicas=1 and let prepare() shard it"
    ),
}
_WARNED: weakref.WeakSet[object] = weakref.WeakSet()  # samplers warned about already
_STACK_DEPTH = 32  # frames searched: the framework's loop sits a few frames above the sampler


def sharding_framework() -> str | None:
    """Name of the framework that shards the caller's output again, from the stack; else None."""
    frame = sys._getframe(1)
    for _ in range(_STACK_DEPTH):
        back = frame.f_back
        if back is None:
            return None
        frame = back
        framework = _SHARDING_FRAMEWORKS.get(frame.f_globals.get("__name__", ""))
        if framework is not None and frame.f_code.co_name in framework[1]:
            return framework[0]
    return None


def warn_if_sharded_again(sampler: object, num_replicas: int, name: str | None = None) -> None:
    """Warn (once per sampler) when a sampler sharded over processes is sharded again.

    Called from the sampler's ``__iter__``: a framework's wrapper then sits above it on the stack,
    and each process would see ``1 / num_replicas`` of its own share, silently. ``name``: the
    sampler the user built, when ``sampler`` is a part of it.
    """
    if num_replicas == 1 or sampler in _WARNED:
        return
    framework = sharding_framework()
    if framework is None:
        return
    _WARNED.add(sampler)
    warnings.warn(
        f"{name or type(sampler).__name__} shards itself over the {num_replicas} processes "
        f"(num_replicas={num_replicas}) and {_ADVICE[framework]}. As it is, each process sees "
        f"1/{num_replicas} of its share: the run skips {num_replicas - 1}/{num_replicas} of every "
        "epoch. See the guide 'Lightning, Accelerate and other trainers'.",
        UserWarning,
        stacklevel=3,
    )
