"""Paired sampling: a uniform and a re-balanced stream in lockstep, for two-branch training.

Guo & Wang (CVPR 2021) train on two samplings of one training set at once: a *uniform* stream
(every image equally likely) and a *re-balanced* stream (e.g. :class:`~ltml.ClassAwareSampler`).
:class:`PairedSampler` zips the two samplers into ``(i_u, i_r)`` pairs, and :class:`PairedDataset`
turns each pair into ``((x_u, y_u), (x_r, y_r))``, so that a standard
:class:`~torch.utils.data.DataLoader` returns the two batches of one training step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any, Literal, TypeVar

from torch.utils.data import Dataset, Sampler

from .._validation import check_choice, check_int

__all__ = ["PairedDataset", "PairedSampler"]

T_co = TypeVar("T_co", covariant=True)


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
    :class:`~ltml.ClassAwareSampler`, both of which default to the process group); their per-rank
    lengths are equal on every rank, so every rank runs the same number of batches. Under Lightning,
    keep this sharding with ``Trainer(use_distributed_sampler=False)`` (see the guide "Lightning,
    Accelerate and other trainers").

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
    >>> sampler = PairedSampler(uniform, ClassAwareSampler(labels, num_draws=6))
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
