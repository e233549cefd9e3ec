r"""Decoupled classifiers and post-hoc calibration for multi-label (sigmoid) heads.

Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition" (ICLR 2020):
learn the representation with plain (uniform) sampling, then re-balance only the classifier on the
frozen features. Written there for softmax classifiers; here in the sigmoid, multi-label form.

- :func:`extract_features`: run a frozen trunk (and a :class:`~ltml.DualBranchHead` branch) over
  a loader once; every method below then works on the cached ``(N, D)`` features, in seconds.
- :func:`retrain_classifier` (cRT): a new linear classifier trained with class-aware sampling.
- :class:`NearestClassMean` (NCM): scores by distance to class centroids, no training.
- :func:`tau_normalize`, :class:`LearnableWeightScaling` / :func:`learn_weight_scaling` (LWS)
  and :func:`logit_adjust` (Menon et al., ICLR 2021): post-hoc maps of a trained classifier;
  :func:`search_tau` chooses their ``tau`` on a validation split.

What each can change: for a sigmoid head, τ-normalisation, LWS (with positive scales) and logit
adjustment are *per-class increasing maps* of each class's scores. A class's ranking of the images
is then unchanged, hence every per-class AP and the mAP are unchanged; only thresholded metrics
(precision / recall / F1 at a fixed threshold, top-k) move. cRT and NCM build a new scoring
function and can change mAP.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Sampler

from ._validation import (
    as_logits,
    as_tensor,
    check_bool,
    check_callable,
    check_choice,
    check_finite,
    check_floating,
    check_int,
    check_labels,
    check_matrix,
    check_same_rows,
    check_scalar,
    check_seed,
    counts_tensor,
)
from .heads import DualBranchHead
from .losses import BCE
from .samplers import ClassAwareSampler

__all__ = [
    "LearnableWeightScaling",
    "NearestClassMean",
    "extract_features",
    "learn_weight_scaling",
    "logit_adjust",
    "retrain_classifier",
    "search_tau",
    "tau_normalize",
]

Loss = Callable[[Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------------------------------
# Features once
# --------------------------------------------------------------------------------------------------


def _pool(z: Tensor) -> Tensor:
    """Global average pooling of ``(N, D, *spatial)`` features; ``(N, D)`` passes through."""
    return z.mean(dim=tuple(range(2, z.ndim))) if z.ndim > 2 else z


def _autocast_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    if amp is False or (amp is None and device.type != "cuda"):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@torch.no_grad()
def extract_features(
    trunk: nn.Module,
    loader: Iterable[Any],
    *,
    head: DualBranchHead | None = None,
    branch: Literal["u", "r"] = "u",
    device: torch.device | str | None = None,
    amp: bool | None = None,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """Run a frozen network over a loader once and return the pooled features and the labels.

    The modules run in eval mode (BatchNorm with its running statistics, no dropout) and without
    gradient; their previous train / eval modes are restored afterwards. Spatial feature maps are
    averaged (global average pooling).

    Parameters
    ----------
    trunk : nn.Module
        Maps an image batch to features ``(B, D, *spatial)`` or ``(B, D)``: e.g. a torchvision
        ResNet with ``fc = nn.Identity()``, or the trunk of :func:`ltml.resnet_dual_branch`.
    loader : iterable of (images, labels)
        Batches, e.g. a :class:`~torch.utils.data.DataLoader` over the training set with the
        *test* transform (features of un-augmented images).
    head : DualBranchHead, optional
        Take the features of one branch of this head after the trunk (its ``layer4`` copy,
        pooled), the input of that branch's classifier.
    branch : {"u", "r"}
        Which branch of ``head``: ``"u"`` (uniform sampling, the default: Kang et al. find
        uniformly sampled features best for a re-balanced classifier) or ``"r"``.
    device : torch.device or str, optional
        Where to run; default the device of the trunk's first parameter (CPU without one).
    amp : bool, optional
        Autocast: default on for CUDA (bfloat16, or float16 where bfloat16 is unsupported), off
        on the CPU; ``True`` on the CPU uses bfloat16. Features are returned in float32.
    progress : bool
        Show a progress bar (needs ``tqdm``).

    Returns
    -------
    features : Tensor, shape (N, D), float32, on the CPU
    labels : Tensor, shape (N, C), on the CPU, as the loader gave them

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from ltml import extract_features
    >>> trunk = nn.Conv2d(3, 8, kernel_size=3)
    >>> data = TensorDataset(torch.randn(10, 3, 6, 6), torch.randint(0, 2, (10, 4)))
    >>> features, labels = extract_features(trunk, DataLoader(data, batch_size=4))
    >>> features.shape, labels.shape
    (torch.Size([10, 8]), torch.Size([10, 4]))
    """
    if not isinstance(trunk, nn.Module):
        raise TypeError(f"`trunk` must be an nn.Module, got {type(trunk).__name__}")
    if head is not None and not isinstance(head, DualBranchHead):
        raise TypeError(f"`head` must be a DualBranchHead or None, got {type(head).__name__}")
    check_choice(branch, "branch", ("u", "r"))
    if device is None:
        first = next(trunk.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    dtype = _autocast_dtype(device, amp)
    stages: list[nn.Module] = [trunk]
    if head is not None:
        stages.append((head.branch_u if branch == "u" else head.branch_r).features)
    modes = [(m, m.training) for stage in stages for m in stage.modules()]
    batches: Iterable[Any] = loader
    if progress:
        from tqdm.auto import tqdm  # optional: only when asked for

        batches = tqdm(loader, desc="features", unit="batch")
    features, labels = [], []
    try:
        for stage in stages:
            stage.eval()
        for x, y in batches:
            with torch.autocast(device.type, dtype, enabled=dtype is not None):
                z = x.to(device, non_blocking=True)
                for stage in stages:
                    z = stage(z)
            features.append(_pool(z).float().cpu())
            labels.append(torch.as_tensor(y).cpu())
    finally:
        for m, training in modes:
            m.train(training)
    if not features:
        raise ValueError("`loader` must yield at least one batch, got none")
    return torch.cat(features), torch.cat(labels)


# --------------------------------------------------------------------------------------------------
# Shared checks and the training loop of cRT and LWS
# --------------------------------------------------------------------------------------------------


def _features_and_labels(features: Any, labels: Any) -> tuple[Tensor, Tensor]:
    x = as_tensor(features, "features")
    y = as_tensor(labels, "labels")
    check_floating(x, "features")
    check_matrix(x, "features")
    check_matrix(y, "labels")
    check_same_rows(x, y, "features", "labels")
    if x.shape[0] == 0:
        raise ValueError("`features` must hold at least one row, got N=0")
    check_finite(x, "features")
    check_labels(y, "labels")
    return x, y


def _fit(
    model: nn.Module,
    features: Tensor,
    labels: Tensor,
    *,
    loss: Loss | None,
    sampler: Sampler[int] | None,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    seed: int,
) -> None:
    """SGD on ``model``'s trainable parameters over ``sampler``'s batches, cosine schedule.

    The learning rate follows a cosine from ``lr`` to 0 over all steps (per step rather than the
    Decoupling code's per epoch: smoother when an epoch is a few steps).
    """
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    check_seed(seed)
    check_callable(loss, "loss", optional=True)
    check_scalar(lr, "lr", low=0.0, low_open=True)
    check_scalar(momentum, "momentum", low=0.0)
    check_scalar(weight_decay, "weight_decay", low=0.0)
    if sampler is None:
        sampler = ClassAwareSampler(labels, seed=seed, num_replicas=1, rank=0)
    criterion: Loss = BCE() if loss is None else loss
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(sampler) / batch_size)  # type: ignore[arg-type]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps))
    )
    y = labels.to(features.device)
    with torch.enable_grad():  # also when called under no_grad (e.g. inside an evaluation)
        for epoch in range(epochs):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            order = torch.as_tensor(list(sampler), dtype=torch.int64, device=features.device)
            for batch in torch.split(order, batch_size):
                optimizer.zero_grad(set_to_none=True)
                torch.autograd.backward(criterion(model(features[batch]), y[batch]))
                optimizer.step()
                schedule.step()


# --------------------------------------------------------------------------------------------------
# cRT
# --------------------------------------------------------------------------------------------------


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
        Frozen training features, e.g. from :func:`extract_features`; any floating dtype and
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
    x, y = _features_and_labels(features, labels)
    check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = nn.Linear(x.shape[1], y.shape[1]).to(x)
    _fit(
        classifier, x, y, loss=loss, sampler=sampler, epochs=epochs, batch_size=batch_size,
        lr=lr, momentum=momentum, weight_decay=weight_decay, seed=seed,
    )  # fmt: skip
    return classifier.eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------------
# NCM
# --------------------------------------------------------------------------------------------------


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
        x, y = _features_and_labels(features, labels)
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        positive = (y == 1).to(x)
        counts = positive.sum(dim=0)
        empty = torch.nonzero(counts == 0).flatten().tolist()
        if empty:
            more = " ..." if len(empty) > 10 else ""
            raise ValueError(
                f"`labels`: NearestClassMean needs a known positive for every class; "
                f"{len(empty)} of {y.shape[1]} classes have none: {empty[:10]}{more}"
            )
        mean = x.mean(dim=0)
        normed = F.normalize(x - mean, dim=1)
        return cls(mean, positive.T @ normed / counts[:, None])

    def forward(self, features: Tensor) -> Tensor:
        """Scores ``(N, C)`` of features ``(N, D)``: negative squared distances to the centroids."""
        check_floating(features, "features")
        check_matrix(features, "features", self.centroids.shape[1])
        x = F.normalize(features.to(self.mean.dtype) - self.mean, dim=1)
        # ||x - c||^2 = 1 - 2 x.c + ||c||^2 for unit x: one matrix product, no (N, C, D) temporary
        return 2 * x @ self.centroids.T - self.centroids.square().sum(dim=1) - 1


# --------------------------------------------------------------------------------------------------
# Post-hoc maps: tau-normalisation, LWS, logit adjustment, and the search of tau
# --------------------------------------------------------------------------------------------------


def _check_linear(classifier: Any) -> nn.Linear:
    if not isinstance(classifier, nn.Linear):
        raise TypeError(f"`classifier` must be an nn.Linear, got {type(classifier).__name__}")
    return classifier


def tau_normalize(classifier: nn.Linear, tau: float = 1.0, *, bias: bool = False) -> nn.Linear:
    r"""τ-normalised copy of a linear classifier: each class's weight divided by its norm to the τ.

    Kang et al. (ICLR 2020): :math:`\tilde w_k = w_k / \lVert w_k \rVert^\tau`, so that
    :math:`z_k = \tilde w_k \cdot x` (their form drops the bias); τ = 0 leaves the weights, τ = 1
    gives unit-norm weights. Rare classes' weights are smaller after imbalanced training, so the
    division lifts their scores. ``bias=True`` keeps the bias, :math:`z_k = \tilde w_k \cdot x +
    b_k`, as the Bag of Tricks (Zhang et al., AAAI 2021) does.

    For a sigmoid head either form is a per-class increasing map of the class's scores (a
    positive scale, and a shift): per-class AP and mAP are unchanged; thresholded metrics move.

    Parameters
    ----------
    classifier : nn.Linear
        The trained classifier (not modified).
    tau : float
        :math:`\tau \ge 0`; Kang et al. sweep it over [0, 2] (see :func:`search_tau`).
    bias : bool
        Keep the bias (default ``False``: dropped, as the original method).

    Returns
    -------
    nn.Linear
        A new classifier, without bias unless ``bias=True``, no gradient required.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from ltml import tau_normalize
    >>> classifier = nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = classifier.weight.copy_(torch.tensor([[3.0, 4.0], [0.6, 0.8]]))
    >>> tau_normalize(classifier, tau=1.0).weight.data
    tensor([[0.6000, 0.8000],
            [0.6000, 0.8000]])
    """
    _check_linear(classifier)
    check_scalar(tau, "tau", low=0.0)
    check_bool(bias, "bias")
    w = classifier.weight.detach()
    keep_bias = bias and classifier.bias is not None
    out = nn.Linear(w.shape[1], w.shape[0], bias=keep_bias, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        out.weight.copy_(w / w.norm(dim=1, keepdim=True).pow(tau))
        if keep_bias:
            out.bias.copy_(classifier.bias)
    return out.requires_grad_(False)


class LearnableWeightScaling(nn.Module):
    r"""Learnable weight scaling (LWS): a per-class scale on a frozen linear classifier.

    Kang et al. (ICLR 2020): :math:`z_k = s_k (w_k \cdot x + b_k)`, with :math:`w, b` frozen and
    the scales :math:`s_k` learnt from 1 with class-balanced sampling; ``bias=True`` adds a
    learnable per-class offset :math:`\beta_k` (from 0): :math:`z_k = s_k (w_k \cdot x + b_k) +
    \beta_k`. Train it with :func:`learn_weight_scaling`.

    While every :math:`s_k > 0` the map is per-class increasing: per-class AP and mAP are those
    of the frozen classifier, and only thresholded metrics move. (A scale trained through zero
    would reverse its class's ranking; :func:`learn_weight_scaling` warns if that happens.)

    Parameters
    ----------
    classifier : nn.Linear
        The trained classifier; a frozen copy is kept (``self.classifier``).
    bias : bool
        Also learn a per-class offset (default ``False``, as the original).

    Attributes
    ----------
    scale : nn.Parameter, shape (C,)
        :math:`s_k`, initialised to 1.
    offset : nn.Parameter, shape (C,), or None
        :math:`\beta_k`, initialised to 0, when ``bias=True``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from ltml import LearnableWeightScaling
    >>> lws = LearnableWeightScaling(nn.Linear(4, 3))
    >>> x = torch.randn(2, 4)
    >>> torch.allclose(lws(x), lws.classifier(x))  # the identity until trained
    True
    >>> [name for name, p in lws.named_parameters() if p.requires_grad]
    ['scale']
    """

    def __init__(self, classifier: nn.Linear, *, bias: bool = False) -> None:
        super().__init__()
        _check_linear(classifier)
        check_bool(bias, "bias")
        frozen = nn.Linear(
            classifier.in_features,
            classifier.out_features,
            bias=classifier.bias is not None,
            device=classifier.weight.device,
            dtype=classifier.weight.dtype,
        )
        frozen.load_state_dict(classifier.state_dict())
        self.classifier = frozen.requires_grad_(False)
        w = classifier.weight
        self.scale = nn.Parameter(torch.ones_like(w[:, 0]).detach())
        self.offset = nn.Parameter(torch.zeros_like(w[:, 0]).detach()) if bias else None

    def forward(self, features: Tensor) -> Tensor:
        """Scores ``(N, C)`` of features ``(N, D)``."""
        z: Tensor = self.classifier(features) * self.scale
        return z if self.offset is None else z + self.offset


def learn_weight_scaling(
    classifier: nn.Linear,
    features: Any,
    labels: Any,
    *,
    bias: bool = False,
    loss: Loss | None = None,
    sampler: Sampler[int] | None = None,
    epochs: int = 10,
    batch_size: int = 512,
    lr: float = 0.2,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
) -> LearnableWeightScaling:
    """Train a :class:`LearnableWeightScaling` on frozen features with class-balanced sampling.

    The training loop and defaults are those of :func:`retrain_classifier` (class-balanced
    :class:`ltml.ClassAwareSampler`, :class:`ltml.BCE`, SGD with a cosine schedule); only the
    scales (and offsets, with ``bias=True``) learn. Deterministic from ``seed``.

    Parameters
    ----------
    classifier : nn.Linear
        The classifier trained with the representation (not modified).
    features, labels, loss, sampler, epochs, batch_size, lr, momentum, weight_decay, seed
        As in :func:`retrain_classifier`.
    bias : bool
        Also learn a per-class offset.

    Returns
    -------
    LearnableWeightScaling
        In eval mode, no gradient required.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from ltml import learn_weight_scaling
    >>> _ = torch.manual_seed(0)
    >>> features, labels = torch.randn(40, 4), torch.randint(0, 2, (40, 3))
    >>> lws = learn_weight_scaling(nn.Linear(4, 3), features, labels, batch_size=8, lr=0.05)
    >>> lws.scale.shape
    torch.Size([3])
    """
    x, y = _features_and_labels(features, labels)
    if y.shape[1] != _check_linear(classifier).out_features:
        raise ValueError(
            f"`labels` must have {classifier.out_features} columns (the classifier's "
            f"out_features), got shape {tuple(y.shape)}"
        )
    lws = LearnableWeightScaling(classifier, bias=bias).to(x)
    _fit(
        lws, x, y, loss=loss, sampler=sampler, epochs=epochs, batch_size=batch_size, lr=lr,
        momentum=momentum, weight_decay=weight_decay, seed=seed,
    )  # fmt: skip
    reversed_classes = torch.nonzero(lws.scale <= 0).flatten().tolist()
    if reversed_classes:
        warnings.warn(
            f"learn_weight_scaling: the scale of classes {reversed_classes[:10]} ended <= 0, "
            "which reverses (or flattens) their ranking; lower `lr` or `epochs`",
            UserWarning,
            stacklevel=2,
        )
    return lws.eval().requires_grad_(False)


def logit_adjust(logits: Tensor, class_counts: Any, num_images: int, tau: float = 1.0) -> Tensor:
    r"""Post-hoc logit adjustment for sigmoid heads: subtract τ times each class's prior log-odds.

    Menon et al. (ICLR 2021) subtract :math:`\tau \log \pi_k` from softmax logits. A sigmoid head
    models each class apart, with training prior :math:`p_k = n_k / N`; its adjustment subtracts
    the prior's log-odds:

    .. math::
        \tilde z_{ik} = z_{ik} - \tau \log \frac{p_k}{1 - p_k},

    which moves every rare class's decision threshold down (its log-odds are negative). A
    per-class shift: per-class AP and mAP are unchanged. Counts are clamped to ``[1, N - 1]``
    so that the offset is finite.

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Scores of a sigmoid head.
    class_counts : sequence or Tensor, shape (C,)
        Training images positive for each class.
    num_images : int
        Training images ``N``.
    tau : float
        :math:`\tau \ge 0` (1 = the full prior; see :func:`search_tau`).

    Returns
    -------
    Tensor, shape (N, C)
        Adjusted logits, in the dtype of ``logits``.

    Examples
    --------
    >>> import torch
    >>> from ltml import logit_adjust
    >>> logit_adjust(torch.zeros(1, 2), class_counts=[50, 10], num_images=100)
    tensor([[0.0000, 2.1972]])
    """
    logits = as_logits(logits, "logits")
    check_finite(logits, "logits")
    check_scalar(tau, "tau", low=0.0)
    check_int(num_images, "num_images")
    counts = counts_tensor(class_counts, num_images)
    if counts.numel() != logits.shape[1]:
        raise ValueError(
            f"`class_counts` must have {logits.shape[1]} entries (the columns of `logits`), "
            f"got {counts.numel()}"
        )
    n = counts.clamp(1, max(num_images - 1, 1))
    log_odds = torch.log(n) - torch.log(num_images - n)
    return logits - (tau * log_odds).to(logits)


def search_tau(
    scores_at: Callable[[float], Tensor],
    targets: Any,
    metric: Callable[[Tensor, Tensor], float],
    taus: Sequence[float] | None = None,
) -> tuple[float, list[float]]:
    """Choose ``tau`` by a metric on a **validation** split (never the test set).

    Parameters
    ----------
    scores_at : callable
        ``tau -> (N, C)`` validation scores, e.g. ``lambda t: tau_normalize(clf, t)(val_x)``
        or ``lambda t: logit_adjust(val_logits, counts, n, t)``.
    targets : Tensor or ndarray, shape (N, C)
        Validation labels.
    metric : callable
        ``metric(scores, targets) -> float``, higher is better; a thresholded metric such as a
        macro F1 at logit 0 (AP cannot choose: it does not change with tau).
    taus : sequence of float, optional
        Candidates, default 0, 0.1, ..., 2 (the range of Kang et al.).

    Returns
    -------
    best : float
        The first candidate with the highest metric.
    values : list of float
        The metric at each candidate.

    Examples
    --------
    >>> import torch
    >>> from ltml import logit_adjust, search_tau
    >>> logits = torch.tensor([[-1.0, 2.0], [-3.0, -2.0]])
    >>> targets = torch.tensor([[1, 1], [0, 0]])
    >>> def accuracy(scores, targets):
    ...     return ((scores >= 0) == (targets == 1)).float().mean().item()
    >>> best, values = search_tau(
    ...     lambda t: logit_adjust(logits, [10, 50], 100, t), targets, accuracy, taus=[0, 1, 2])
    >>> best, values
    (1, [0.75, 1.0, 0.75])
    """
    check_callable(scores_at, "scores_at")
    check_callable(metric, "metric")
    y = as_tensor(targets, "targets")
    check_matrix(y, "targets")
    check_labels(y, "targets")
    if taus is None:
        taus = [i / 10 for i in range(21)]  # 0, 0.1, ..., 2: the range of Kang et al.
    if not isinstance(taus, Sequence) or isinstance(taus, str):
        raise TypeError(f"`taus` must be a sequence of numbers, got {type(taus).__name__}")
    if len(taus) == 0:
        raise ValueError("`taus` must hold at least one candidate, got none")
    values = []
    for i, tau in enumerate(taus):
        check_scalar(tau, f"taus[{i}]", low=0.0)
        scores = scores_at(tau)
        check_matrix(scores, "scores_at(tau)", y.shape[1])
        check_same_rows(scores, y, "scores_at(tau)", "targets")
        values.append(float(metric(scores, y)))
    return taus[max(range(len(values)), key=values.__getitem__)], values
