"""Evaluation under DDP: every image exactly once over the processes, none padded in.

:class:`~torch.utils.data.DistributedSampler` pads the dataset to a multiple of the process count
by repeating its first images, so that every process runs as many batches: right for training,
but a gathering metric such as :class:`ltml.mAPMeter` then counts those images twice.
:class:`DistributedEvalSampler` shards without padding. It is a ``DistributedSampler`` so that
Lightning leaves it in place whatever ``use_distributed_sampler`` says.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

from torch.utils.data import DistributedSampler

from ._draws import distributed_defaults, warn_if_sharded_again

__all__ = ["DistributedEvalSampler"]


class DistributedEvalSampler(DistributedSampler[int]):
    """Shard an evaluation set over processes: each index exactly once, in order, no padding.

    Rank ``r`` of ``R`` takes indices ``r, r + R, r + 2R, ...`` of ``range(len(dataset))``, so the
    ranks' shares are disjoint, together the whole set, and differ in length by at most one (the
    first ``len(dataset) % R`` ranks have one more). With :class:`ltml.mAPMeter`, which gathers
    what every process stored, the result is that of one process over the whole set.

    Unlike :class:`~torch.utils.data.DistributedSampler` it never repeats an index, so the
    processes may run one batch more or fewer: fine for evaluation under ``no_grad`` (DDP then
    exchanges nothing per batch), not for training. Log per-batch values without a per-step
    cross-process reduction (e.g. Lightning's ``sync_dist=True`` with ``on_step=True``).

    It subclasses :class:`~torch.utils.data.DistributedSampler` (``shuffle=False``,
    ``drop_last=False``; ``set_epoch`` changes nothing), which Lightning recognises as already
    sharded: a loader with this sampler is never wrapped or padded by Lightning. Accelerate's
    ``prepare(loader)`` does shard it again (see the guide "Lightning, Accelerate and other
    trainers"), with a warning.

    Parameters
    ----------
    dataset : Sized
        The evaluation set (anything with ``len``).
    num_replicas, rank : int, optional
        Process count and this process's rank; default to the initialised process group, else
        1, 0.

    Attributes
    ----------
    num_samples : int
        Indices of this rank: ``len(range(rank, len(dataset), num_replicas))``, ``len(sampler)``.
    total_size : int
        ``len(dataset)``: the ranks' shares together, nothing added.

    Examples
    --------
    >>> from ltml import DistributedEvalSampler
    >>> [list(DistributedEvalSampler(range(7), num_replicas=2, rank=r)) for r in (0, 1)]
    [[0, 2, 4, 6], [1, 3, 5]]
    >>> len(DistributedEvalSampler(range(7)))  # no process group: one process, everything
    7
    """

    def __init__(
        self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None
    ) -> None:
        if not isinstance(dataset, Sized):
            raise TypeError(f"`dataset` must have a length (__len__), got {type(dataset).__name__}")
        num_replicas, rank = distributed_defaults(num_replicas, rank)
        super().__init__(
            dataset,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=False,
            drop_last=False,
        )
        self.total_size = len(dataset)
        self.num_samples = len(range(rank, self.total_size, num_replicas))

    def __iter__(self) -> Iterator[int]:
        warn_if_sharded_again(self, self.num_replicas)
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        """Return the indices of this rank (the first ``len(dataset) % R`` ranks have one more)."""
        return self.num_samples
