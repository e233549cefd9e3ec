"""Post-hoc maps of a trained sigmoid classifier, and the search of their ``tau``.

τ-normalisation, LWS (with positive scales) and logit adjustment are per-class increasing maps:
they keep every AP and move only thresholded metrics (see :mod:`ltml.decoupling`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Sampler

from .._label_forms import shape_of
from .._validation import (
    as_logits,
    as_scores,
    as_tensor,
    check_bool,
    check_callable,
    check_finite,
    check_floating,
    check_int,
    check_labels,
    check_matrix,
    check_same_rows,
    check_scalar,
    check_tensor,
    counts_tensor,
    described,
    is_real,
)
from ._training import Loss, as_training_data, fit_rebalanced

__all__ = [
    "LearnableWeightScaling",
    "learn_weight_scaling",
    "logit_adjust",
    "search_tau",
    "tau_normalize",
]


def _check_linear(classifier: Any) -> nn.Linear:
    if not isinstance(classifier, nn.Linear):
        raise TypeError(f"`classifier` must be an nn.Linear, got {type(classifier).__name__}")
    return classifier


def _uninitialised_linear(
    in_features: int, out_features: int, bias: bool, like: Tensor
) -> nn.Linear:
    """Build an ``nn.Linear`` whose parameters are overwritten next: no draw from torch's RNG."""
    layer: nn.Linear = nn.utils.skip_init(  # type: ignore[no-untyped-call]
        nn.Linear, in_features, out_features, bias=bias, device=like.device, dtype=like.dtype
    )
    return layer


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
    check_finite(w, "classifier.weight")
    keep_bias = bias and classifier.bias is not None
    out = _uninitialised_linear(w.shape[1], w.shape[0], keep_bias, w)
    with torch.no_grad():
        norm = w.norm(dim=1, keepdim=True)
        # A class whose weight is all zero scores 0 before and after: 0 / 0 would be NaN.
        out.weight.copy_(torch.where(norm > 0, w / norm.pow(tau), w))
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
        frozen = _uninitialised_linear(
            classifier.in_features,
            classifier.out_features,
            classifier.bias is not None,
            classifier.weight,
        )
        frozen.load_state_dict(classifier.state_dict())
        self.classifier = frozen.requires_grad_(False)
        w = classifier.weight
        self.scale = nn.Parameter(torch.ones_like(w[:, 0]).detach())
        self.offset = nn.Parameter(torch.zeros_like(w[:, 0]).detach()) if bias else None

    def forward(self, features: Tensor) -> Tensor:
        """Scores ``(N, C)`` of features ``(N, D)``."""
        check_tensor(features, "features")
        check_floating(features, "features")
        width = self.classifier.in_features
        if features.ndim != 2 or features.shape[1] != width:
            raise ValueError(
                f"`features` must have {width} columns (the classifier's in_features), "
                f"shape (N, {width}), got {tuple(features.shape)}"
            )
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

    The training loop and defaults are those of :func:`~ltml.retrain_classifier` (class-balanced
    :class:`ltml.ClassAwareSampler`, :class:`ltml.BCE`, SGD with a cosine schedule); only the
    scales (and offsets, with ``bias=True``) learn. Deterministic from ``seed``.

    Parameters
    ----------
    classifier : nn.Linear
        The classifier trained with the representation (not modified).
    features, labels, loss, sampler, epochs, batch_size, lr, momentum, weight_decay, seed
        As in :func:`~ltml.retrain_classifier`.
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
    x, y = as_training_data(features, labels)
    if x.shape[1] != _check_linear(classifier).in_features:
        raise ValueError(
            f"`features` must have {classifier.in_features} columns (the classifier's "
            f"in_features), got shape {tuple(x.shape)}"
        )
    if shape_of(y)[1] != classifier.out_features:
        raise ValueError(
            f"`labels` must have {classifier.out_features} columns (the classifier's "
            f"out_features), got shape {shape_of(y)}"
        )
    lws = LearnableWeightScaling(classifier, bias=bias).to(x)
    fit_rebalanced(
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
    so that the offset is finite (so ``N`` is at least 2).

    Parameters
    ----------
    logits : Tensor, shape (N, C)
        Scores of a sigmoid head.
    class_counts : sequence or Tensor, shape (C,)
        Training images positive for each class.
    num_images : int
        Training images ``N >= 2``.
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
    check_int(num_images, "num_images", low=2)  # a prior in (0, 1) needs two images
    counts = counts_tensor(class_counts, num_images)
    if counts.numel() != logits.shape[1]:
        raise ValueError(
            f"`class_counts` must have {logits.shape[1]} entries (the columns of `logits`), "
            f"got {counts.numel()}"
        )
    n = counts.clamp(1, num_images - 1)
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
        The first candidate with the highest metric (NaN values left out).
    values : list of float
        The metric at each candidate (NaN where the metric is undefined).

    Raises
    ------
    ValueError
        The metric is NaN at every candidate, or ``scores_at`` gives no ``(N, C)`` finite
        scores.

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
        scores = as_scores(scores_at(tau), "scores_at(tau)", y.shape[1])
        check_same_rows(scores, y, "scores_at(tau)", "targets")
        value = metric(scores, y)
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if not is_real(value):
            raise TypeError(f"`metric` must return a real number, got {described(value)}")
        values.append(float(value))
    defined = [i for i, v in enumerate(values) if not math.isnan(v)]
    if not defined:
        raise ValueError(f"`metric` must be defined at some candidate, got NaN at all {len(taus)}")
    return taus[max(defined, key=values.__getitem__)], values
