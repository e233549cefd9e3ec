"""Classifiers re-built on frozen features: re-training (cRT) and the nearest class mean (NCM).

Unlike the post-hoc maps, both build a new scoring function, so they can change every AP.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Sampler

from .._label_forms import class_positives, shape_of
from .._validation import check_finite, check_floating, check_matrix, check_seed, check_tensor
from ._training import Loss, as_training_data, fit_rebalanced

__all__ = ["NearestClassMean", "retrain_classifier"]


def retrain_classifier(
    features: Any,
    labels: Any,
    *,
    loss: Loss | None = None,
    sampler: Sampler[int] | None = None,
    epochs: int = 10,
    batch_size: int = 512,
    lr: float = 0.2,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
) -> nn.Linear:
    """Classifier re-training (cRT): a new linear classifier on frozen features, re-balanced.

    Kang et al. (ICLR 2020): keep the representation learnt with uniform sampling, re-initialise
    the linear classifier (with bias) and train only it with class-aware sampling. The defaults
    are their recipe: 10 epochs, SGD with momentum 0.9, learning rate 0.2 for a batch of 512 with
    a cosine decay to 0, weight decay 5e-4; the loss is :class:`ltml.BCE` (sigmoid) and the
    sampler class-balanced (:class:`ltml.ClassAwareSampler` with ``power=0``, ``N`` draws an
    epoch). With a smaller batch, scale the learning rate with it (e.g. 0.05 for 128).

    Deterministic from ``seed``: it seeds the initialisation (without touching the global random
    state) and the default sampler; the rest of the computation is deterministic on the CPU.

    Parameters
    ----------
    features : Tensor or ndarray, shape (N, D)
        Frozen training features, e.g. from :func:`~ltml.extract_features`; any floating dtype and
        device (training runs there).
    labels : Tensor or ndarray, shape (N, C)
        0 / 1 training labels, -1 = unknown (ignored by the default loss and sampler).
    loss : callable, optional
        ``loss(logits, targets) -> scalar``, default :class:`ltml.BCE`; any :mod:`ltml.losses`
        module fits.
    sampler : Sampler of int, optional
        Indices of one epoch, ``set_epoch`` called each epoch if it has one; default
        ``ClassAwareSampler(labels, seed=seed)``.
    epochs, batch_size : int
        Passes over the sampler, and rows per step.
    lr, momentum, weight_decay : float
        SGD hyper-parameters; ``lr`` is the start of the cosine schedule.
    seed : int
        Seed of the initialisation and of the default sampler.

    Returns
    -------
    nn.Linear
        ``Linear(D, C)`` on the features' device and dtype, in eval mode, no gradient required.

    Examples
    --------
    >>> import torch
    >>> from ltml import retrain_classifier
    >>> features = torch.randn(60, 5)
    >>> labels = (features[:, :3] > 1).long()  # class k is "feature k is large": rare classes
    >>> classifier = retrain_classifier(features, labels, batch_size=16, lr=0.05)
    >>> classifier(features).shape
    torch.Size([60, 3])
    """
    x, y = as_training_data(features, labels)
    check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = nn.Linear(x.shape[1], shape_of(y)[1]).to(x)
    fit_rebalanced(
        classifier, x, y, loss=loss, sampler=sampler, epochs=epochs, batch_size=batch_size,
        lr=lr, momentum=momentum, weight_decay=weight_decay, seed=seed,
    )  # fmt: skip
    return classifier.eval().requires_grad_(False)


class NearestClassMean(nn.Module):
    r"""Nearest class mean (NCM) classifier, multi-label form, built from training features.

    Kang et al. (ICLR 2020): centre the features on the training mean :math:`\mu`, L2-normalise,
    and score class :math:`k` by the negative squared distance to its centroid :math:`c_k`:

    .. math::
        \hat x = \frac{x - \mu}{\lVert x - \mu \rVert}, \qquad
        s_k(x) = -\lVert \hat x - c_k \rVert^2 .

    Multi-label adaptation: an image belongs to every class it is positive for, so :math:`c_k` is
    the mean of the normalised features of the images **positive for** :math:`k` (unknown (-1)
    and negative labels are left out), and each class gets an independent score (no arg-max over
    classes). Since :math:`\lVert \hat x \rVert = 1`, :math:`s_k(x) = 2 \hat x \cdot c_k -
    \lVert c_k \rVert^2 - 1`: a linear classifier on :math:`\hat x`. The scores are
    log-likelihood-like but not calibrated logits: use them for ranking (AP), or calibrate a
    threshold per class on a validation split before reading them as decisions.

    A class with no known positive has no centroid: :meth:`fit` raises with the list of such
    classes (drop them, or add positives).

    Parameters
    ----------
    mean : Tensor, shape (D,)
        The training features' mean :math:`\mu`.
    centroids : Tensor, shape (C, D)
        Class centroids :math:`c_k` of the normalised features.

    Examples
    --------
    >>> import torch
    >>> from ltml import NearestClassMean
    >>> features = torch.tensor([[4.0, 0.0], [5.0, 1.0], [0.0, 4.0], [1.0, 5.0]])
    >>> labels = torch.tensor([[1, 0], [1, 0], [0, 1], [1, 1]])
    >>> ncm = NearestClassMean.fit(features, labels)
    >>> ncm(torch.tensor([[6.0, 0.0], [0.0, 6.0]])).argmax(dim=1)
    tensor([0, 1])
    """

    mean: Tensor
    centroids: Tensor

    def __init__(self, mean: Tensor, centroids: Tensor) -> None:
        super().__init__()
        for value, name in ((mean, "mean"), (centroids, "centroids")):
            check_tensor(value, name)
            check_floating(value, name)
            check_finite(value, name)
        check_matrix(centroids, "centroids")
        if mean.shape != (centroids.shape[1],):
            raise ValueError(
                f"`mean` must have shape ({centroids.shape[1]},) to match `centroids` "
                f"{tuple(centroids.shape)}, got {tuple(mean.shape)}"
            )
        self.register_buffer("mean", mean)
        self.register_buffer("centroids", centroids)

    @classmethod
    def fit(cls, features: Any, labels: Any) -> NearestClassMean:
        """Build the classifier from training features and labels.

        Parameters
        ----------
        features : Tensor or ndarray, shape (N, D)
            Training features (computed in at least float32).
        labels : Tensor or ndarray, shape (N, C)
            0 / 1 labels, -1 = unknown; every class needs a known positive.

        Returns
        -------
        NearestClassMean
        """
        x, y = as_training_data(features, labels)
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        if isinstance(y, Tensor):
            positive = (y == 1).to(x)
            counts = positive.sum(dim=0)
        else:
            class_ptr, images = class_positives(y)
            counts = torch.from_numpy(np.diff(class_ptr)).to(x)
        empty = torch.nonzero(counts == 0).flatten().tolist()
        if empty:
            more = " ..." if len(empty) > 10 else ""
            raise ValueError(
                f"`labels`: NearestClassMean needs a known positive for every class; "
                f"{len(empty)} of {shape_of(y)[1]} classes have none: {empty[:10]}{more}"
            )
        mean = x.mean(dim=0)
        normed = F.normalize(x - mean, dim=1)
        if isinstance(y, Tensor):
            return cls(mean, positive.T @ normed / counts[:, None])
        # A sparse form: each class's sum of its positives' features, one scatter-add.
        classes = np.repeat(np.arange(counts.numel()), np.diff(class_ptr))
        sums = torch.zeros(counts.numel(), x.shape[1], dtype=x.dtype, device=x.device)
        index = torch.from_numpy(images).to(x.device)
        sums.index_add_(0, torch.from_numpy(classes).to(x.device), normed[index])
        return cls(mean, sums / counts[:, None])

    def forward(self, features: Tensor) -> Tensor:
        """Scores ``(N, C)`` of features ``(N, D)``: negative squared distances to the centroids."""
        check_tensor(features, "features")
        check_floating(features, "features")
        if features.ndim != 2 or features.shape[1] != self.centroids.shape[1]:
            raise ValueError(
                f"`features` must have {self.centroids.shape[1]} columns (the width of the "
                f"centroids), shape (N, {self.centroids.shape[1]}), got {tuple(features.shape)}"
            )
        x = F.normalize(features.to(self.mean.dtype) - self.mean, dim=1)
        # ||x - c||^2 = 1 - 2 x.c + ||c||^2 for unit x: one matrix product, no (N, C, D) temporary
        return 2 * x @ self.centroids.T - self.centroids.square().sum(dim=1) - 1
