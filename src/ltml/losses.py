"""Losses for long-tailed multi-label recognition.

The losses of Guo & Wang, "Long-Tailed Multi-Label Visual Recognition by Collaborative Training on
Uniform and Re-balanced Samplings" (CVPR 2021): :class:`LogitCompensatedBCE` (Eq. 2),
:class:`CrossBranchConsistency` and their sum :class:`LTMLLoss` (Eq. 1); and the baselines they
are compared with: :class:`BCE`, :class:`WeightedBCE`, :class:`FocalLoss`,
:class:`ClassBalancedFocalLoss` and :class:`DistributionBalancedLoss`.

All take ``(logits, targets)`` of shape ``(N, C)``, where a target of -1 marks an unknown label
that contributes nothing; all honour ``reduction`` as :mod:`torch.nn` losses do, compute in at
least float32 (safe under autocast) and never modify their inputs. Class statistics are given as
counts or read from the training label matrix (``from_labels``); per-class weights come from
:func:`ltml.class_weights`. Class statistics are buffers, so they follow ``.to(device)`` and are
saved in the ``state_dict``. The functional forms are in :mod:`ltml.functional`.

Targets may be soft, any value in [0, 1] (mixup, label smoothing), for every loss but
:class:`DistributionBalancedLoss`, :class:`MultiFocalModifierLoss` and
:class:`ReflectiveLabelCorrector`, whose definitions need 0 / 1 labels; each functional form's
docstring gives its soft form. On CPU tensors the values of the inputs (finite logits, targets in
{-1, 0, 1}, or {-1} ∪ [0, 1] where soft targets are accepted) are checked eagerly and a bad
value raises a ``ValueError``; on GPU tensors (and under ``torch.compile``) the same checks are
device-side assertions, so that no loss makes the host wait for the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence, Sized
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn
from typing_extensions import Self

from . import functional as LF
from ._deprecation import renamed_keyword
from ._validation import (
    as_labels,
    as_logits,
    as_tensor,
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_reduction,
    check_scalar,
    check_unknown,
    counts_tensor,
)
from .functional import losses as LFL
from .functional.losses import Reduction, Unknown
from .stats import class_counts, class_weights, cooccurrence

__all__ = [
    "BCE",
    "AsymmetricLoss",
    "ClassBalancedFocalLoss",
    "CorrectorOutput",
    "CrossBranchConsistency",
    "DistributionBalancedLoss",
    "FocalLoss",
    "LTMLLoss",
    "LTMLLossOutput",
    "LogitCompensatedBCE",
    "MultiFocalModifierLoss",
    "ReflectiveLabelCorrector",
    "WeightedBCE",
]


class _Loss(nn.Module):
    """Base: holds and validates ``reduction``; shows ``_repr_fields`` in the module's repr."""

    _repr_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def extra_repr(self) -> str:
        """Hyper-parameters, as in ``FocalLoss(gamma=2.0, alpha=None, reduction='mean')``."""
        return ", ".join(f"{f}={getattr(self, f)!r}" for f in (*self._repr_fields, "reduction"))


class _LabelLoss(_Loss):
    """Base of the losses against targets: also holds the unknown-label policy ``unknown``."""

    def __init__(self, reduction: Reduction = "mean", unknown: Unknown = "ignore") -> None:
        super().__init__(reduction)
        check_unknown(unknown)
        self.unknown: Unknown = unknown

    def extra_repr(self) -> str:
        """Hyper-parameters, then ``reduction`` and ``unknown``."""
        return f"{super().extra_repr()}, unknown={self.unknown!r}"


class _FromLabels:
    """Mixin: build a loss from the training label matrix instead of class counts."""

    _needs_num_images: ClassVar[bool] = False

    @classmethod
    def from_labels(cls, labels: Any, **kwargs: Any) -> Self:
        """Build the loss from the training label matrix.

        Parameters
        ----------
        labels : Tensor or ndarray, shape (N, C)
            Training labels, 0 / 1, -1 = unknown (not counted as positive). The class counts are
            :func:`ltml.data.class_counts` of it and, where the loss needs it, ``N`` its number
            of rows.
        **kwargs
            The other arguments of the constructor.

        Returns
        -------
        The loss.
        """
        y = as_labels(labels, "labels")
        counts = class_counts(y)
        args = (counts, y.shape[0]) if cls._needs_num_images else (counts,)
        return cls(*args, **kwargs)


class BCE(_LabelLoss):
    r"""Binary cross-entropy with logits, ignoring unknown (-1) targets: the ERM baseline.

    :func:`ltml.functional.bce` as a module; the same as :class:`torch.nn.BCEWithLogitsLoss`
    where every target is known.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements, ``"sum"``, or the ``(N, C)`` loss with 0 at unknown
        targets.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import BCE
    >>> loss = BCE()(torch.tensor([[2.0, -1.0]]), torch.tensor([[1, -1]]))
    >>> round(loss.item(), 4)
    0.1269
    """

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return LF.bce(logits, targets, reduction=self.reduction, unknown=self.unknown)


class WeightedBCE(_FromLabels, _LabelLoss):
    r"""BCE re-weighted by inverse class frequency.

    Every element of class :math:`k` (positive or negative) is weighted by

    .. math::
        w_k = \frac{n_k^{-q}}{\frac{1}{C} \sum_{k'} n_{k'}^{-q}},

    i.e. inverse frequency (``power`` :math:`q` = 1) or inverse square root (0.5), normalised to
    mean 1 over the classes so that the loss keeps the scale of the plain BCE:
    ``ltml.class_weights(class_counts, power=power)``. A count of 0 is read as 1 (the class has
    no positive to up-weight; its weight is finite).

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training images positive for each class.
    power : float
        Exponent :math:`q \ge 0`.
    reduction : {"mean", "sum", "none"}
        As in :class:`BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor, shape (C,)
        The per-class weights (a buffer).

    Examples
    --------
    >>> from ltml.losses import WeightedBCE
    >>> WeightedBCE([300, 100]).weight
    tensor([0.5000, 1.5000])
    """

    weight: Tensor

    def __init__(
        self,
        class_counts: Any,
        *,
        power: float = 1.0,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        counts = counts_tensor(class_counts)
        self.register_buffer("weight", class_weights(counts, power=power))

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        as_logits(logits, "logits", self.weight.numel())
        return LF.bce(logits, targets, self.weight, reduction=self.reduction, unknown=self.unknown)


class FocalLoss(_LabelLoss):
    r"""Sigmoid focal loss (Lin et al., ICCV 2017), ignoring unknown (-1) targets.

    :func:`ltml.functional.focal_loss` as a module:
    :math:`-\alpha_t (1 - p_t)^\gamma \log p_t` per element.

    Parameters
    ----------
    gamma : float
        Focusing parameter (2 in the paper).
    alpha : float, optional
        Weight of positives (negatives get ``1 - alpha``); None (default) for none.
    reduction : {"mean", "sum", "none"}
        As in :class:`BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import FocalLoss
    >>> loss = FocalLoss()(torch.tensor([[2.0, -1.0]]), torch.tensor([[1, 0]]))
    >>> round(loss.item(), 4)
    0.0122
    """

    _repr_fields = ("gamma", "alpha")

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = None,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        LFL._check_focal_hyperparameters(gamma, alpha)
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return LF.focal_loss(
            logits,
            targets,
            gamma=self.gamma,
            alpha=self.alpha,
            reduction=self.reduction,
            unknown=self.unknown,
        )


class ClassBalancedFocalLoss(_FromLabels, _LabelLoss):
    r"""Focal loss weighted by the effective number of samples (Cui et al., CVPR 2019).

    Every element of class :math:`k` is weighted by the inverse effective number

    .. math::
        w_k \propto \frac{1 - \beta}{1 - \beta^{n_k}}, \qquad \sum_k w_k = C,

    (their Eq. 3 and the normalisation of their code), times the focal term of
    :class:`FocalLoss`: ``ltml.class_weights(class_counts, method="effective_number",
    beta=beta)``. A count of 0 is read as 1 (whose weight is finite, the largest).

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training images positive for each class.
    beta : float
        :math:`\beta \in [0, 1)`; 0 gives equal weights, close to 1 inverse frequency.
    gamma : float
        Focal exponent.
    reduction : {"mean", "sum", "none"}
        As in :class:`BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor, shape (C,)
        The per-class weights (a buffer).

    Examples
    --------
    >>> from ltml.losses import ClassBalancedFocalLoss
    >>> ClassBalancedFocalLoss([300, 100], beta=0.99).weight
    tensor([0.8000, 1.2000])
    """

    _repr_fields = ("beta", "gamma")
    weight: Tensor

    def __init__(
        self,
        class_counts: Any,
        *,
        beta: float = 0.9999,
        gamma: float = 2.0,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        beta = check_scalar(beta, "beta", low=0.0, high=1.0, high_open=True)
        LFL._check_focal_hyperparameters(gamma, None)
        self.register_buffer(
            "weight",
            class_weights(counts_tensor(class_counts), method="effective_number", beta=beta),
        )
        self.beta = beta
        self.gamma = gamma

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        as_logits(logits, "logits", self.weight.numel())
        return LF.focal_loss(
            logits,
            targets,
            gamma=self.gamma,
            weight=self.weight,
            reduction=self.reduction,
            unknown=self.unknown,
        )


_DB_PRESETS: dict[str, dict[str, float]] = {
    "voc": {"mu": 0.3, "neg_scale": 5.0},
    "coco": {"mu": 0.2, "neg_scale": 2.0},
}


class DistributionBalancedLoss(_FromLabels, _LabelLoss):
    r"""Distribution-Balanced loss, focal form (Wu et al., ECCV 2020): "DB-Focal".

    Re-balanced weights :math:`w_{ik} = \alpha + \varsigma(\beta (r_{ik} - \mu))` and
    negative-tolerant regularisation (logit shift :math:`b_k = -\frac{\kappa}{\lambda}
    \log(N / n_k - 1)`, negatives' logits :math:`\times\lambda` and weights :math:`/\lambda`)
    with a focal term; see :func:`ltml.functional.distribution_balanced_loss` for the formula.

    ``preset`` sets the dataset-specific values of the authors' configurations:
    ``"voc"`` (VOC-LT: :math:`\mu` = 0.3, :math:`\lambda` = 5) or ``"coco"`` (COCO-LT:
    :math:`\mu` = 0.2, :math:`\lambda` = 2); an explicit ``mu`` or ``neg_scale`` overrides it.
    Shared values: :math:`\alpha` = 0.1, :math:`\beta` = 10, :math:`\kappa` = 0.05,
    :math:`\gamma` = 2, loss scale 2. Counts are clamped to ``[1, N - 1]`` (never an infinite
    weight or shift). Targets must be 0 / 1 (-1 = unknown): the re-balanced weights are defined
    by the image's positive labels, so soft targets raise a ``ValueError``.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training images positive for each class.
    num_images : int
        Number of training images. Formerly ``num_samples`` (deprecated).
    preset : {"voc", "coco"}
        Defaults for ``mu`` and ``neg_scale``.
    alpha, beta, mu, kappa, neg_scale, gamma, scale : float
        As in :func:`ltml.functional.distribution_balanced_loss`.
    reduction : {"mean", "sum", "none"}
        As in :class:`BCE`.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import DistributionBalancedLoss
    >>> labels = torch.tensor([[1, 0], [1, 1], [1, 0], [0, 0]])
    >>> criterion = DistributionBalancedLoss.from_labels(labels, preset="coco")
    >>> criterion.neg_scale, criterion.mu
    (2.0, 0.2)
    >>> round(criterion(torch.zeros(4, 2), labels).item(), 4)
    0.2616
    """

    _needs_num_images = True
    _repr_fields = ("alpha", "beta", "mu", "kappa", "neg_scale", "gamma", "scale")
    inv_freq: Tensor
    bias: Tensor

    @renamed_keyword("num_samples", "num_images")
    def __init__(
        self,
        class_counts: Any,
        num_images: int,
        *,
        preset: Literal["voc", "coco"] = "voc",
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float | None = None,
        kappa: float = 0.05,
        neg_scale: float | None = None,
        gamma: float = 2.0,
        scale: float = 2.0,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        check_choice(preset, "preset", tuple(_DB_PRESETS))
        self.alpha, self.beta, self.kappa = alpha, beta, kappa
        self.mu = _DB_PRESETS[preset]["mu"] if mu is None else mu
        self.neg_scale = _DB_PRESETS[preset]["neg_scale"] if neg_scale is None else neg_scale
        self.gamma, self.scale = gamma, scale
        LFL._check_db_hyperparameters(alpha, beta, self.mu, self.neg_scale, gamma, scale)
        inv_freq, bias = LFL._db_statistics(
            class_counts, num_images, kappa=kappa, neg_scale=self.neg_scale
        )
        self.register_buffer("inv_freq", inv_freq)
        self.register_buffer("bias", bias)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return LFL._distribution_balanced_loss(
            logits,
            targets,
            self.inv_freq,
            self.bias,
            alpha=self.alpha,
            beta=self.beta,
            mu=self.mu,
            neg_scale=self.neg_scale,
            gamma=self.gamma,
            scale=self.scale,
            reduction=self.reduction,
            unknown=self.unknown,
        )


class LogitCompensatedBCE(_FromLabels, _LabelLoss):
    r"""Weighted BCE with learnable logit compensation (Guo & Wang, CVPR 2021, Eq. 2).

    .. math::
        L_i = -\frac{1}{K} \sum_k \omega_{ik} \,[\,
              y_{ik} \log \varsigma(u_{ik} \sigma^p_k + \mu^p_k)
              + (1 - y_{ik}) \log (1 - \varsigma(u_{ik} \sigma^n_k + \mu^n_k)) \,],

    with :math:`\omega_{ik} = y_{ik} e^{1 - p_k} + (1 - y_{ik}) e^{p_k}` and
    :math:`p_k = n_k / N` (``ltml.class_weights(class_counts, num_images, method="omega")``).
    The per-class :math:`\sigma^p, \mu^p, \sigma^n, \mu^n` start at the identity
    (:math:`\sigma = 1, \mu = 0`), where the loss is the :math:`\omega`-weighted BCE. They act
    inside the loss only: predict with the raw logits.

    .. warning::
        **The compensation parameters are this module's own** ``nn.Parameter`` objects: give them to
        the optimizer, e.g. ``SGD([*model.parameters(), *criterion.parameters()], ...)``,
        otherwise they never move and the loss is a fixed weighted BCE. (With ``learnable=False``
        they are buffers and the loss is that weighted BCE by design.)

    Left free, the compensation can lower the loss without better logits (:math:`\mu^p` up,
    :math:`\mu^n` down, :math:`\sigma^p` through 0). ``guard="tied"`` removes that direction:
    one per-class map :math:`\sigma_k u + \mu_k` for positives and negatives alike, with
    :math:`\sigma_k = \exp(c \tanh((s_k - 1) / c))` and :math:`c = \log m`, :math:`m` =
    ``max_scale``, kept in :math:`(1/m, m)`. The paper's free form stays the default; the docs'
    concepts page ("The compensation's degenerate direction") explains both.

    The ``state_dict`` has the same keys whatever ``learnable`` and ``guard``: ``weight`` and
    ``sigma_pos``, ``mu_pos``, ``sigma_neg``, ``mu_neg``. With the guard, ``sigma_pos`` holds
    :math:`s` and ``mu_pos`` :math:`\mu`, and ``sigma_neg`` / ``mu_neg`` are the same tensors;
    at the identity both forms store the same values.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        :math:`n_k`, training images positive for each class (0 allowed: :math:`p_k = 0`).
    num_images : int
        :math:`N`, the number of training images (>= every count). Formerly ``num_samples``
        (deprecated).
    learnable : bool
        Learn the compensation (default). False: fixed at the identity (buffers).
    guard : {None, "tied"}
        None (default): the paper's four free parameters per class. ``"tied"``: the guarded
        form above.
    max_scale : float
        Bound of the tied scale (> 1); ignored without a guard.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` averages over the known elements, which with no unknown label is the paper's
        :math:`\frac{1}{K}\sum_k` followed by the mean over images; ``"sum"``; ``"none"`` the
        ``(N, C)`` loss, 0 at unknown targets.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor, shape (2, C)
        :math:`\omega`: row 0 weighs positives, row 1 negatives (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import LogitCompensatedBCE
    >>> labels = torch.tensor([[1, 0], [1, 1], [1, 0], [0, 0]])  # training labels
    >>> criterion = LogitCompensatedBCE.from_labels(labels)
    >>> [name for name, _ in criterion.named_parameters()]
    ['sigma_pos', 'mu_pos', 'sigma_neg', 'mu_neg']
    >>> logits = torch.tensor([[1.0, -2.0], [0.5, 0.3]], requires_grad=True)
    >>> loss = criterion(logits, torch.tensor([[1, 0], [1, -1]]))
    >>> loss.backward()
    >>> round(loss.item(), 4), criterion.mu_pos.grad.shape
    (0.3913, torch.Size([2]))
    """

    _needs_num_images = True
    _repr_fields = ("guard", "max_scale")
    weight: Tensor
    sigma_pos: Tensor
    mu_pos: Tensor
    sigma_neg: Tensor
    mu_neg: Tensor

    @renamed_keyword("num_samples", "num_images")
    def __init__(
        self,
        class_counts: Any,
        num_images: int,
        *,
        learnable: bool = True,
        guard: Literal["tied"] | None = None,
        max_scale: float = 2.0,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        check_bool(learnable, "learnable")
        check_choice(guard, "guard", (None, "tied"))
        check_scalar(max_scale, "max_scale", low=1.0, low_open=True)
        self.guard = guard
        self.max_scale = max_scale
        counts = counts_tensor(class_counts, num_images)
        self.register_buffer("weight", class_weights(counts, num_images, method="omega"))
        num_classes = self.weight.shape[1]
        initial = {"sigma_pos": 1.0, "mu_pos": 0.0, "sigma_neg": 1.0, "mu_neg": 0.0}
        for name, value in initial.items():
            if guard == "tied" and name.endswith("_neg"):  # tied: the positives' tensors
                tensor = getattr(self, name.replace("_neg", "_pos"))
            else:
                tensor = torch.full((num_classes,), value)
                tensor = nn.Parameter(tensor) if learnable else tensor
            if learnable:
                self.register_parameter(name, tensor)
            else:
                self.register_buffer(name, tensor)

    def compensation(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""Return the per-class :math:`(\sigma^p, \mu^p, \sigma^n, \mu^n)` in use, each (C,)."""
        if self.guard is None:
            return self.sigma_pos, self.mu_pos, self.sigma_neg, self.mu_neg
        c = math.log(self.max_scale)
        sigma = torch.exp(c * torch.tanh((self.sigma_pos - 1.0) / c))
        return sigma, self.mu_pos, sigma, self.mu_pos

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return LFL._logit_compensated_bce(
            logits, targets, self.weight, *self.compensation(), self.reduction, self.unknown
        )


class CrossBranchConsistency(_Loss):
    r"""The cross-branch consistency term of Guo & Wang (CVPR 2021, Eq. 1).

    :func:`ltml.functional.cross_branch_consistency` as a module: the mean squared error between
    the sigmoid probabilities (``space="prob"``, default) or the logits (``"logit"``) of two
    branches for the same images. The paper does not give the term's form; the default is what a
    published reproduction used. Needs no labels.

    Parameters
    ----------
    space : {"prob", "logit"}
        Space in which the two outputs are compared.
    detach : {None, "first", "second"}
        Stop the gradient through one argument (None: both branches learn from the term).
    reduction : {"mean", "sum", "none"}
        Mean or sum over all elements, or the ``(N, C)`` loss.

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import CrossBranchConsistency
    >>> u, u_hat = torch.tensor([[0.0, 2.0]]), torch.tensor([[0.0, -2.0]])
    >>> round(CrossBranchConsistency()(u, u_hat).item(), 4)
    0.29
    """

    _repr_fields = ("space", "detach")

    def __init__(
        self,
        space: Literal["prob", "logit"] = "prob",
        detach: Literal["first", "second"] | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(reduction)
        LFL._check_consistency_options(space, detach)
        self.space: Literal["prob", "logit"] = space
        self.detach: Literal["first", "second"] | None = detach

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        """Consistency of two ``(N, C)`` logit matrices for the same images."""
        return LF.cross_branch_consistency(
            first, second, space=self.space, detach=self.detach, reduction=self.reduction
        )


class LTMLLossOutput(NamedTuple):
    """The terms of :class:`LTMLLoss`: backpropagate ``total``, log the rest.

    A term is ``None`` when the head output lacks its logits (an ablation that runs one branch
    only, or ``cross=False``); ``total`` is the sum of the terms present.
    """

    total: Tensor
    cls_u: Tensor | None
    cls_r: Tensor | None
    con_u: Tensor | None
    con_r: Tensor | None


class LTMLLoss(nn.Module):
    r"""The collaborative-training loss of Guo & Wang (CVPR 2021, Eq. 1).

    .. math::
        L = L_{cls}(u, y^u) + L_{cls}(r, y^r) + \lambda\,(L_{con}(u, \hat u) + L_{con}(r, \hat r)),

    where ``u`` / ``u_hat`` are the uniform batch's logits from branch U / R and ``r`` / ``r_hat``
    the re-balanced batch's from branch R / U (the output of :class:`ltml.DualBranchHead`).

    Parameters
    ----------
    cls_u : nn.Module
        Classification loss of the uniform branch, ``(logits, targets) -> Tensor``, e.g.
        :class:`LogitCompensatedBCE`.
    cls_r : nn.Module, optional
        That of the re-balanced branch. None (default) shares ``cls_u``, as the paper appears
        to: one set of compensation parameters then learns from both batches. Pass a second
        instance for separate ones.
    consistency : nn.Module, optional
        :math:`L_{con}`, ``(first, second) -> Tensor``; None (default) is
        :class:`CrossBranchConsistency` with its defaults.
    weight : float
        :math:`\lambda` (0.1, the value of a published reproduction). 0 turns the term off in
        ``total``; it is still computed and reported.

    Examples
    --------
    One training step (the head's output is any object with fields ``u, u_hat, r, r_hat``):

    >>> import torch
    >>> from ltml.losses import LogitCompensatedBCE, LTMLLoss
    >>> g = torch.Generator().manual_seed(0)
    >>> train_labels = (torch.rand(100, 3, generator=g) < torch.tensor([0.6, 0.2, 0.05])).long()
    >>> criterion = LTMLLoss(LogitCompensatedBCE.from_labels(train_labels))
    >>> head = torch.nn.Linear(8, 3)
    >>> opt = torch.optim.SGD([*head.parameters(), *criterion.parameters()], lr=0.01)
    >>> x_u, x_r = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    >>> y_u, y_r = train_labels[:4], train_labels[4:8]
    >>> out = (head(x_u), head(x_u), head(x_r), head(x_r))  # stand-in for (u, u_hat, r, r_hat)
    >>> terms = criterion(out, y_u, y_r)
    >>> terms.total.backward()
    >>> opt.step()
    >>> terms._fields
    ('total', 'cls_u', 'cls_r', 'con_u', 'con_r')
    """

    def __init__(
        self,
        cls_u: nn.Module,
        cls_r: nn.Module | None = None,
        consistency: nn.Module | None = None,
        weight: float = 0.1,
    ) -> None:
        super().__init__()
        check_callable(cls_u, "cls_u")
        check_callable(cls_r, "cls_r", optional=True)
        check_callable(consistency, "consistency", optional=True)
        check_scalar(weight, "weight", low=0.0)
        self.cls_u = cls_u
        self.cls_r = cls_u if cls_r is None else cls_r
        self.consistency = CrossBranchConsistency() if consistency is None else consistency
        self.weight = weight

    def forward(self, out: Any, y_u: Tensor | None, y_r: Tensor | None) -> LTMLLossOutput:
        """Loss of a two-branch output against the two batches' targets.

        Parameters
        ----------
        out : DualBranchOutput or sequence of 4 Tensors
            ``(u, u_hat, r, r_hat)``, each ``(N, C)``: read by field name when present,
            otherwise unpacked in that order. An entry may be ``None`` (a branch or a batch not
            run, as in the single-branch ablations): the terms that need it are skipped.
        y_u, y_r : Tensor, shape (N, C), or None
            Targets of the uniform and the re-balanced batch (-1 = unknown; soft targets in
            [0, 1] where the classification losses accept them, e.g. from
            :func:`ltml.mix_batch` on each batch); None only where the matching ``u`` / ``r``
            is None.

        Returns
        -------
        LTMLLossOutput
            ``(total, cls_u, cls_r, con_u, con_r)``.
        """
        if all(hasattr(out, f) for f in ("u", "u_hat", "r", "r_hat")):
            u, u_hat, r, r_hat = out.u, out.u_hat, out.r, out.r_hat
        elif isinstance(out, Sequence) and not isinstance(out, str) and len(out) == 4:
            u, u_hat, r, r_hat = out
        else:
            raise TypeError(
                "`out` must be a DualBranchOutput or a sequence of 4 logits (u, u_hat, r, r_hat), "
                f"got {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, Sized) else "")
            )
        if u is None and r is None:
            raise ValueError("`out` must hold at least one of `u` and `r`, got neither")
        cls_u = None if u is None else self.cls_u(u, _targets(y_u, "y_u"))
        cls_r = None if r is None else self.cls_r(r, _targets(y_r, "y_r"))
        con_u = None if u is None or u_hat is None else self.consistency(u, u_hat)
        con_r = None if r is None or r_hat is None else self.consistency(r, r_hat)
        cls = [t for t in (cls_u, cls_r) if t is not None]
        con = [t for t in (con_u, con_r) if t is not None]
        total = sum(cls[1:], cls[0])
        if con:
            total = total + self.weight * sum(con[1:], con[0])
        return LTMLLossOutput(total, cls_u, cls_r, con_u, con_r)

    def extra_repr(self) -> str:
        """Show the consistency weight."""
        return f"weight={self.weight}"


def _targets(targets: Any, name: str) -> Tensor:
    """Targets of one batch: required where its logits are given; their form is checked here."""
    if targets is None:
        raise ValueError(f"`{name}` is required when the matching logits are given, got None")
    return as_tensor(targets, name)


class AsymmetricLoss(_LabelLoss):
    r"""Asymmetric loss, ASL (Ridnik et al., ICCV 2021).

    :func:`ltml.functional.asymmetric_loss` as a module: separate focusing of positives and
    negatives, :math:`-y (1-p)^{\gamma_+} \log p - (1-y) p_m^{\gamma_-} \log(1 - p_m)` with the
    shifted probability :math:`p_m = \max(p - m, 0)` of the negatives.

    Defaults are the paper's recommended values (:math:`\gamma_+ = 0`, :math:`\gamma_- = 4`,
    :math:`m = 0.05`, the values of the authors' training script) with the focusing weight's
    gradient, as in the paper's formula. The authors' class differs in two defaults:
    :math:`\gamma_+ = 1` and ``disable_torch_grad_focal_loss=True`` (here
    ``detach_focal_weight=True``). It also **sums** the loss over the batch and the classes:
    ``reduction="sum"`` reproduces that value, :math:`N \cdot C` times the default mean over
    the known elements.

    Parameters
    ----------
    gamma_pos, gamma_neg : float
        Focusing exponents :math:`\gamma_+, \gamma_-`.
    clip : float
        Probability margin :math:`m` of the negatives.
    eps : float
        Lower clamp of the logarithms' arguments.
    detach_focal_weight : bool
        Compute the focusing weight without gradient (the authors' code default).
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements, ``"sum"`` (the authors' code), or ``"none"``.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import AsymmetricLoss
    >>> logits, targets = torch.tensor([[2.0, -1.0], [0.5, 3.0]]), torch.tensor([[1, 0], [0, 1]])
    >>> round(AsymmetricLoss()(logits, targets).item(), 4)
    0.0668
    >>> reference = AsymmetricLoss(gamma_pos=1.0, detach_focal_weight=True, reduction="sum")
    >>> round(reference(logits, targets).item(), 4)  # the authors' class defaults and scale
    0.1093
    """

    _repr_fields = ("gamma_pos", "gamma_neg", "clip", "eps", "detach_focal_weight")

    def __init__(
        self,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        *,
        detach_focal_weight: bool = False,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        LFL._check_asymmetric(gamma_pos, gamma_neg, clip, eps)
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps
        self.detach_focal_weight = detach_focal_weight

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        return LF.asymmetric_loss(
            logits,
            targets,
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            clip=self.clip,
            eps=self.eps,
            detach_focal_weight=self.detach_focal_weight,
            reduction=self.reduction,
            unknown=self.unknown,
        )


class MultiFocalModifierLoss(_LabelLoss):
    r"""COMIC's Multi-Focal Modifier loss (Zhang et al., ICCV 2023), single-branch form.

    :func:`ltml.functional.multi_focal_modifier_loss` as a module, with the class weights
    :math:`w_c = (1 - \log(n_c / n_{max}))^{q}` and the training co-occurrence counts held as
    buffers. Build it with :meth:`from_labels` (class counts and co-occurrence of the training
    label matrix, known positives only). The formula, and every difference between the paper,
    the released code and this implementation, are listed in the functional's documentation.
    Targets must be 0 / 1 (-1 = unknown): the co-occurrence attention is defined by the image's
    positive labels, so soft targets raise a ``ValueError``.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training positives per class.
    cooccurrence : Tensor, shape (C, C), optional
        Training co-occurrence counts (:func:`ltml.data.cooccurrence`); None: no modifier.
    gamma_pos, gamma_neg, clip, eps, weight_power, neg_boost : float
        As in :func:`ltml.functional.multi_focal_modifier_loss`.
    detach_focal_weight : bool
        Focusing weight without gradient (the released code).
    reduction : {"mean", "sum", "none"}
        ``"mean"`` over the known elements, ``"sum"`` (the released code), or ``"none"``.
    unknown : {"ignore", "negative"}
        Unknown (-1) targets left out of the loss (default) or counted as negatives.

    Attributes
    ----------
    weight : Tensor, shape (C,)
        The class weights :math:`w_c` (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import MultiFocalModifierLoss
    >>> train = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 1, 0]])
    >>> criterion = MultiFocalModifierLoss.from_labels(train)
    >>> criterion.weight
    tensor([1.0000, 1.1201, 1.2803])
    >>> logits = torch.tensor([[2.0, -1.0, 0.5], [0.5, 3.0, -2.0]])
    >>> round(criterion(logits, torch.tensor([[1, 0, -1], [0, 1, 0]])).item(), 4)
    0.4916
    """

    _repr_fields = ("gamma_pos", "gamma_neg", "clip", "weight_power", "neg_boost")
    weight: Tensor
    cooccurrence: Tensor | None

    def __init__(
        self,
        class_counts: Any,
        cooccurrence: Tensor | None = None,
        *,
        gamma_pos: float = 0.0,
        gamma_neg: float = 3.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        weight_power: float = 1 / 3,
        neg_boost: float = 1.0,
        detach_focal_weight: bool = False,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        LFL._check_asymmetric(gamma_pos, gamma_neg, clip, eps)
        check_scalar(neg_boost, "neg_boost", low=1.0)
        weight = LFL._frequency_weights(class_counts, weight_power)
        c = weight.numel()
        if cooccurrence is not None and tuple(cooccurrence.shape) != (c, c):
            raise ValueError(
                f"`cooccurrence` must have shape ({c}, {c}), got {tuple(cooccurrence.shape)}"
            )
        self.register_buffer("weight", weight.to(torch.float32))
        self.register_buffer(
            "cooccurrence", None if cooccurrence is None else cooccurrence.to(torch.float32)
        )
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps
        self.weight_power, self.neg_boost = weight_power, neg_boost
        self.detach_focal_weight = detach_focal_weight

    @classmethod
    def from_labels(cls, labels: Any, **kwargs: Any) -> Self:
        """Build the loss from the training label matrix (0 / 1, -1 = unknown).

        Parameters
        ----------
        labels : Tensor or ndarray, shape (N, C)
            Training labels; class counts and co-occurrence count known positives only.
        **kwargs
            The other arguments of the constructor.

        Returns
        -------
        The loss.
        """
        return cls(class_counts(labels), cooccurrence(labels), **kwargs)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``(N, C)`` logits against ``(N, C)`` targets."""
        z, t, mask = LFL._prepare(
            logits, targets, self.weight.numel(), self.unknown, hard="the Multi-Focal Modifier loss"
        )
        return LFL._multi_focal(
            z, t, mask, self.weight.to(z), self.cooccurrence, self.gamma_pos, self.gamma_neg,
            self.clip, self.eps, self.neg_boost, self.detach_focal_weight, self.reduction,
        )  # fmt: skip


class CorrectorOutput(NamedTuple):
    """What :class:`ReflectiveLabelCorrector` returns: its loss and the corrected targets."""

    loss: Tensor
    targets: Tensor


class ReflectiveLabelCorrector(_LabelLoss):
    r"""COMIC's Reflective Label Corrector (Zhang et al., ICCV 2023): pseudo-positives + loss.

    Each call corrects the batch's targets, then computes a loss on the corrected ones:

    1. **Correction.** A candidate entry (an unknown label, or with
       ``candidates="unobserved"`` any entry not known positive) becomes a pseudo-positive where
       the model's confidence :math:`\varsigma(z_{ic})` exceeds the class-aware threshold
       :math:`t_c = \max(\tau, P_c)`. :math:`P_c` is a running mean of the class's confidence
       over the training batches (momentum ``momentum``), as in the paper.
       ``threshold="batch"`` uses the released code's rule instead: above :math:`\tau` and
       above the class's mean confidence in the current batch.
    2. **Loss.** The asymmetric loss of :class:`MultiFocalModifierLoss` without the
       co-occurrence modifier, on the corrected targets, with class weights
       :math:`w_c = (1 - \log(n'_c / n'_{max}))^{q}` from the training counts plus the
       pseudo-positives found since the last :meth:`reset` (call it at each epoch start, as the
       released code does), and negatives focused by :math:`\gamma_- + w_c`.

    Nothing is corrected and the loss is 0 until :meth:`set_epoch` reaches ``start_epoch``
    (the released code: 1, one epoch of warm-up). The correction runs without gradient; the
    running mean and the pseudo-counts change only in training mode.

    **Differences from the released code**, all available as arguments: it shifts the
    positives' logits by a margin of 1 (``margin=1.0``; the paper has none, default 0), uses the
    batch-mean threshold (``threshold="batch"``), the exponent :math:`q = 1/6`
    (``weight_power``, default the same), sums the loss and scales it by the batch size over
    the number of positives of the corrected batch (``reduction="sum"`` gives the sum), and
    weights it by 0.2 in the total (the caller's choice). It cannot tell a missing label from
    a negative (``candidates="unobserved"``). In DDP each process keeps its own pseudo-counts.
    Targets must be 0 / 1 (-1 = unknown): soft targets raise a ``ValueError``.

    Parameters
    ----------
    class_counts : sequence or Tensor, shape (C,)
        Training positives per class.
    tau : float
        Confidence threshold :math:`\tau \in (0, 1)`.
    threshold : {"running", "batch"}
        Class-aware threshold of the paper (running class mean) or of the released code.
    momentum : float
        Weight of the past in the running class mean, in [0, 1).
    candidates : {"unknown", "unobserved"}
        Entries that may become pseudo-positives: -1 only, or everything not positive.
    margin : float
        Shift subtracted from the known positives' logits, in the correction and the loss.
    start_epoch : int
        First epoch (as given to :meth:`set_epoch`) with corrections.
    gamma_pos, gamma_neg, clip, eps, weight_power : float
        As in :func:`ltml.functional.multi_focal_modifier_loss`.
    detach_focal_weight : bool
        Focusing weight without gradient (the released code).
    reduction : {"mean", "sum", "none"}
        Of the loss, as in :class:`MultiFocalModifierLoss`.
    unknown : {"ignore", "negative"}
        Policy for the entries still unknown after the correction.

    Attributes
    ----------
    running_mean : Tensor, shape (C,)
        :math:`P_c` (a buffer).
    pseudo_counts : Tensor, shape (C,)
        Pseudo-positives found since the last :meth:`reset` (a buffer).

    Examples
    --------
    >>> import torch
    >>> from ltml.losses import ReflectiveLabelCorrector
    >>> corrector = ReflectiveLabelCorrector([30, 10, 2], start_epoch=0)
    >>> logits = torch.tensor([[2.0, 3.0, -1.0], [0.5, 3.0, 2.0]], requires_grad=True)
    >>> out = corrector(logits, torch.tensor([[1, -1, -1], [0, 1, -1]]))
    >>> out.targets
    tensor([[ 1,  1, -1],
            [ 0,  1,  1]])
    >>> corrector.pseudo_counts
    tensor([0., 1., 1.])
    >>> out.loss.backward()
    """

    _repr_fields = ("tau", "threshold", "candidates", "margin", "start_epoch")
    counts: Tensor
    running_mean: Tensor
    pseudo_counts: Tensor

    def __init__(
        self,
        class_counts: Any,
        *,
        tau: float = 0.7,
        threshold: Literal["running", "batch"] = "running",
        momentum: float = 0.9,
        candidates: Literal["unknown", "unobserved"] = "unknown",
        margin: float = 0.0,
        start_epoch: int = 1,
        gamma_pos: float = 0.0,
        gamma_neg: float = 3.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        weight_power: float = 1 / 6,
        detach_focal_weight: bool = False,
        reduction: Reduction = "mean",
        unknown: Unknown = "ignore",
    ) -> None:
        super().__init__(reduction, unknown)
        check_scalar(tau, "tau", low=0.0, high=1.0, low_open=True, high_open=True)
        check_choice(threshold, "threshold", ("running", "batch"))
        check_scalar(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        check_choice(candidates, "candidates", ("unknown", "unobserved"))
        check_int(start_epoch, "start_epoch", low=0)
        check_scalar(margin, "margin", low=0.0)
        check_scalar(weight_power, "weight_power", low=0.0)
        LFL._check_asymmetric(gamma_pos, gamma_neg, clip, eps)
        counts = counts_tensor(class_counts).to(torch.float32)
        self.register_buffer("counts", counts)
        self.register_buffer("running_mean", torch.zeros_like(counts))
        self.register_buffer("pseudo_counts", torch.zeros_like(counts))
        self.tau, self.threshold, self.momentum = tau, threshold, momentum
        self.candidates: Literal["unknown", "unobserved"] = candidates
        self.margin, self.start_epoch, self.epoch = margin, start_epoch, 0
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps
        self.weight_power, self.detach_focal_weight = weight_power, detach_focal_weight

    def reset(self) -> None:
        """Forget the pseudo-positives counted so far (the class weights return to the counts)."""
        self.pseudo_counts.zero_()

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: corrections run from ``start_epoch`` on; pseudo-counts reset."""
        self.epoch = epoch
        self.reset()

    def class_weight(self) -> Tensor:
        r"""Return the class weights :math:`w_c` in use, from counts plus pseudo-positives (C,)."""
        return LFL._frequency_weights(self.counts + self.pseudo_counts, self.weight_power)

    def forward(self, logits: Tensor, targets: Tensor) -> CorrectorOutput:
        """Correct ``(N, C)`` targets by ``(N, C)`` logits; return the loss and the targets."""
        z, _, _ = LFL._prepare(
            logits,
            targets,
            self.counts.numel(),
            self.unknown,
            hard="the Reflective Label Corrector",
        )
        y = as_tensor(targets, "targets").to(z)  # -1 kept: unknown entries are the candidates
        if self.epoch < self.start_epoch:
            return CorrectorOutput(z.new_zeros(()), targets)
        if self.margin:
            z = torch.where(y > 0, z - self.margin, z)
        with torch.no_grad():
            confidence = torch.sigmoid(z)
            batch_mean = confidence.mean(dim=0)
            if self.training:
                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * batch_mean)
            # Above tau and above the class mean: the running one (paper) or the batch's (code).
            mean = self.running_mean if self.threshold == "running" else batch_mean
            corrected = LF.reflective_label_correction(
                z, y, mean.clamp(min=self.tau), candidates=self.candidates
            )
            if self.training:
                self.pseudo_counts += ((corrected > 0) & (y <= 0)).sum(dim=0)
        mask = corrected < 0 if self.unknown == "ignore" else None
        loss = LFL._multi_focal(
            z, corrected.clamp(min=0), mask, self.class_weight().to(z), None, self.gamma_pos,
            self.gamma_neg, self.clip, self.eps, 1.0, self.detach_focal_weight, self.reduction,
        )  # fmt: skip
        return CorrectorOutput(loss, corrected.to(torch.as_tensor(targets).dtype))
