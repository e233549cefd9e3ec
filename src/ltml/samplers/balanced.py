r"""Multi-label sampling balanced in expectation: one fitted probability per image.

Class-aware sampling (a class, then one of its images) is not balanced on multi-label data: an
image drawn for its rare class also brings every frequent class it carries. Here each image gets
a probability instead, fitted so that every class's expected share of the positive labels drawn
is as close to its target as the data allow, and otherwise as close to uniform as possible.

- :func:`fit_balanced_weights` returns the probabilities (for
  :class:`~torch.utils.data.WeightedRandomSampler`, or to inspect).
- :class:`BalancedSampler` draws from them, seeded and sharded as :class:`ltml.ClassAwareSampler`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from .._label_forms import class_lists_csr, to_class_csr
from .._validation import check_choice, check_int, check_seed
from ._balance import fit_probabilities
from ._draws import ShardedEpochSampler, distributed_defaults, shard, warn_if_sharded_again

__all__ = ["BalancedSampler", "fit_balanced_weights"]


def _positives(
    labels: Any, num_classes: int | None, empty_classes: str, who: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return the class counts, class-major image ids and ``N``; tell of classes without one."""
    check_choice(empty_classes, "empty_classes", ("warn", "error"))
    if num_classes is not None:
        num_classes = check_int(num_classes, "num_classes")
    class_ptr, image_ids, num_images = to_class_csr(labels, num_classes)
    counts = np.diff(class_ptr)
    if not counts.any():  # also when N = 0
        raise ValueError(
            f"`labels` must contain at least one known positive label, got N={num_images} "
            f"images and C={counts.size} classes with none"
        )
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        message = (
            f"{empty.size} of {counts.size} classes have no known positive image and are never "
            f"drawn: {empty[:10].tolist()}" + (" ..." if empty.size > 10 else "")
        )
        if empty_classes == "error":
            raise ValueError(f"`labels`: {message}")
        warnings.warn(f"{who}: {message}", UserWarning, stacklevel=3)
    return counts, image_ids, num_images


def fit_balanced_weights(
    labels: Any,
    *,
    power: float = 0.0,
    max_ratio: float | None = None,
    max_weight: float | None = None,
    num_classes: int | None = None,
    empty_classes: Literal["warn", "error"] = "warn",
    tol: float = 1e-6,
    max_iter: int = 100,
) -> Tensor:
    r"""Fit one probability per image so that every class gets its share of the positive draws.

    The fit of :class:`BalancedSampler` (see there for the objective), as a tensor for
    :class:`~torch.utils.data.WeightedRandomSampler` or for inspection.

    Parameters
    ----------
    labels : ndarray, Tensor, sparse matrix or VerifiedLabels, shape (N, C)
        0 / 1 labels; -1 (unknown) is never counted as positive. Any form
        :func:`ltml.class_counts` takes.
    power, max_ratio, max_weight, num_classes, empty_classes, tol, max_iter
        As for :class:`BalancedSampler`.

    Returns
    -------
    Tensor, shape (N,), float64
        The probabilities ``p_i``, summing to 1; 0 for images without a known positive.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import WeightedRandomSampler
    >>> from ltml import fit_balanced_weights
    >>> labels = torch.tensor([[1, 0], [1, 0], [1, 0], [1, 1], [0, 1], [0, 0]])
    >>> p = fit_balanced_weights(labels)
    >>> [round(v, 3) for v in p.tolist()]
    [0.129, 0.129, 0.129, 0.224, 0.388, 0.0]
    >>> sampler = WeightedRandomSampler(p, num_samples=6)
    """
    counts, image_ids, num_images = _positives(
        labels, num_classes, empty_classes, "fit_balanced_weights"
    )
    fitted = fit_probabilities(
        counts, image_ids, num_images, power, max_ratio, max_weight, tol, max_iter,
        "fit_balanced_weights",
    )  # fmt: skip
    return torch.from_numpy(fitted.weights)


class BalancedSampler(ShardedEpochSampler):
    r"""I.i.d. draws from per-image probabilities fitted to balance the classes' positive draws.

    Each draw takes image :math:`i` with probability :math:`p_i`. Class :math:`k`'s expected
    share of the positive labels drawn is

    .. math:: s_k(p) = \frac{\sum_i p_i y_{ik}}{\sum_i p_i |y_i|}

    (:math:`y_{ik} = 1` for a known positive, :math:`|y_i|` = image :math:`i`'s positives), and
    its target share is :math:`t_k \propto n_k^{\,q}` (:math:`n_k` its positives, :math:`q` =
    ``power``): equal shares :math:`1 / C` for ``power=0``. The fitted :math:`p` is the unique
    solution of

    .. math:: \min_p \; \mathrm{KL}(p \,\|\, u) \quad \text{s.t.} \quad
              t_k / r \le s_k(p) \le r\, t_k \;\; \forall k, \qquad p_i \le m / N_d,

    :math:`u` uniform over the :math:`N_d` images with a positive, :math:`m` = ``max_weight``,
    :math:`r` = ``max_ratio``. By default :math:`r` is the smallest band the data allow (found to
    within 1 %, or 2 % where some fits stop at ``max_iter``; a warning says when it may be
    further): :math:`r = 1`, every class exactly on target, whenever possible. So when exact
    balance is out of reach, what is minimised is first :math:`r`, the largest factor by which
    a class's share misses its target (either way), then the divergence from uniform sampling
    within that band. Below the cap the solution is a product of per-class factors,
    :math:`p_i \propto \prod_k a_k^{y_{ik}}\, b^{|y_i|}` (maximum entropy).

    Why: drawing a class, then one of its images (:class:`ltml.ClassAwareSampler`), gives each
    class its ``1 / C`` of the *draws*, but an image drawn for a rare class also brings its
    frequent co-labels, so the frequent classes still get several times their share of the
    positive labels (figures for real label sets: the guide "Choosing a sampler and a loss").

    - ``power=0`` (default): every class the same share; ``power=1``: the shares of uniform
      sampling, and :math:`p = u`; in between, e.g. ``0.5``, square-root shares.
    - ``max_ratio``: a looser band keeps :math:`p` closer to uniform, so more distinct images
      per epoch. Asking for less than the data allow warns and uses the smallest reachable.
    - ``max_weight``: no image is drawn more than ``m`` times as often as under uniform sampling
      of the :math:`N_d` images. A tight cap can keep a rare class below its target, and so
      widen the band for all.

    Near the smallest reachable band some images may get a probability that underflows to 0
    (the balance needs them out); images without a known positive always get 0 and are never
    drawn (as in class-aware sampling). ``-1`` (unknown) never counts as positive. The fit is a
    projected Newton method on the dual (one multiplier per class bound), about ten steps per
    band, and a bisection on :math:`r` when :math:`r = 1` is out of reach.

    Draws, epochs and distribution follow :class:`ltml.ClassAwareSampler`: ``num_draws`` draws
    with replacement in an order that is a function of ``(seed, epoch)`` alone, padded to a
    multiple of ``num_replicas`` by repeating its beginning, rank ``r`` taking positions
    ``r, r + R, ...``.

    Parameters
    ----------
    labels : ndarray, Tensor, sparse matrix or VerifiedLabels, shape (N, C)
        0 / 1 labels, -1 = unknown, in any form :func:`ltml.class_counts` takes (scipy / torch
        sparse, :class:`ltml.VerifiedLabels`); per-image class lists go through
        :meth:`from_class_lists`.
    num_draws : int, optional
        Draws per epoch over all replicas, before padding; default ``N``.
    power : float in [0, 1], default 0.0
        Exponent of the target shares :math:`t_k \propto n_k^{\,q}`.
    max_ratio : float >= 1, optional
        The band :math:`r`; default the smallest reachable.
    max_weight : float >= 1, optional
        The cap :math:`m` on :math:`N_d p_i`; default none.
    seed : int, default 0
        With the epoch, the only source of randomness: every rank must use the same seed.
    num_replicas, rank : int, optional
        Process count and this process's rank; default to the initialised process group, else 1, 0.
        ``num_replicas=1`` alone: unsharded (rank 0) on every process, for a
        framework that shards the loader itself (guide "Lightning, Accelerate and other trainers").
    num_classes : int, optional
        ``C``, checked against the columns of ``labels``.
    empty_classes : {"warn", "error"}, default "warn"
        What to do about classes with no known positive (they have no share and no target).
    tol : float, default 1e-6
        Convergence: the band met to this relative precision, with a duality gap (nats) below it.
    max_iter : int, default 100
        Newton steps per band; a fit that has not converged by then counts as out of reach (and
        a warning says when that may have widened the band found).

    Attributes
    ----------
    weights : Tensor (N,), float64
        The fitted probabilities :math:`p_i`.
    expected_shares : Tensor (C,), float64
        :math:`s_k(p)`; 0 for classes without a positive.
    ratio : float
        The band met: :math:`\max_k \max(s_k / t_k,\, t_k / s_k)`.
    counts : ndarray (C,), int64
        Known positives per class :math:`n_k`.
    num_images, num_draws, total_size, num_draws_per_rank : int
        ``N``, draws per epoch over all replicas, ``ceil(num_draws / num_replicas) *
        num_replicas``, and ``total_size // num_replicas = len(sampler)``, as for
        :class:`ltml.ClassAwareSampler`.

    Examples
    --------
    >>> import torch
    >>> from ltml import BalancedSampler
    >>> labels = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]])
    >>> sampler = BalancedSampler(labels, num_draws=8, seed=0)
    >>> [round(s, 3) for s in sampler.expected_shares.tolist()], round(sampler.ratio, 6)
    ([0.333, 0.333, 0.333], 1.0)
    >>> order = list(sampler)
    >>> len(order), all(labels[i].eq(1).any() for i in order)
    (8, True)
    """

    def __init__(
        self,
        labels: Any,
        num_draws: int | None = None,
        *,
        power: float = 0.0,
        max_ratio: float | None = None,
        max_weight: float | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        num_classes: int | None = None,
        empty_classes: Literal["warn", "error"] = "warn",
        tol: float = 1e-6,
        max_iter: int = 100,
    ) -> None:
        seed = check_seed(seed)
        self.counts, image_ids, self.num_images = _positives(
            labels, num_classes, empty_classes, "BalancedSampler"
        )
        self.num_draws: int = check_int(
            self.num_images if num_draws is None else num_draws, "num_draws"
        )
        self.num_replicas, self.rank = distributed_defaults(num_replicas, rank)
        fitted = fit_probabilities(
            self.counts, image_ids, self.num_images, power, max_ratio, max_weight, tol, max_iter,
            "BalancedSampler",
        )  # fmt: skip
        self.weights, self.ratio = torch.from_numpy(fitted.weights), fitted.ratio
        self.expected_shares = torch.from_numpy(fitted.shares)
        self._drawable = np.flatnonzero(fitted.weights)
        self._cumulative = np.cumsum(fitted.weights[self._drawable])
        self.seed, self.epoch = seed, 0

    @classmethod
    def from_class_lists(
        cls, class_lists: Any, *, num_classes: int | None = None, **kwargs: Any
    ) -> BalancedSampler:
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
        BalancedSampler

        Examples
        --------
        >>> from ltml import BalancedSampler
        >>> sampler = BalancedSampler.from_class_lists([[0], [0, 1], [1], []])
        >>> [round(w, 3) for w in sampler.weights.tolist()]
        [0.333, 0.333, 0.333, 0.0]
        """
        return cls(class_lists_csr(class_lists), num_classes=num_classes, **kwargs)

    def __iter__(self) -> Iterator[int]:
        warn_if_sharded_again(self, self.num_replicas)
        rng = np.random.default_rng([self.seed, self.epoch])
        # Inverse-CDF draws over the images with p_i > 0. Each point u * c (u < 1, c the total)
        # rounds below c, so every pick is a valid index.
        picks = np.searchsorted(
            self._cumulative, rng.random(self.num_draws) * self._cumulative[-1], side="right"
        )
        order = self._drawable[picks]
        return iter(shard(order, self.num_replicas, self.rank).tolist())
