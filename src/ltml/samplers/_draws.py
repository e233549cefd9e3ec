"""How an epoch's order is made: the vectorised draw cores and the DistributedSampler-style shard.

``starts`` / ``counts`` describe the classes that can be drawn (at least one positive), as slices
of the class-major ``indices`` of :mod:`ltml._label_forms`; each draw returns
``(class slot, image)`` arrays from one generator, with no Python loop per draw.
"""

from __future__ import annotations

import numpy as np
import torch

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


def distributed_defaults(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Process count and rank: the given ones, else the initialised process group's, else 1, 0."""
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialised else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    num_replicas = check_int(num_replicas, "num_replicas")
    return num_replicas, check_int(rank, "rank", low=0, high=num_replicas - 1)
