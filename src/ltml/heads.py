"""The two-branch head of collaborative training on uniform and re-balanced samplings.

Guo & Wang, "Long-Tailed Multi-Label Visual Recognition by Collaborative Training on Uniform and
Re-balanced Samplings", CVPR 2021, Fig. 2: a shared trunk ``phi`` feeds two branches with the same
architecture and no shared parameters. Branch U (``f = f2 . GAP . f1``) is trained on the uniform
batch ``x_u``, branch R (``g = g2 . GAP . g1``) on the re-balanced batch ``x_r``, and each branch
also sees the other batch for the cross-branch consistency term:

    u = f(x_u),   u_hat = g(x_u),   r = g(x_r),   r_hat = f(x_r).

:class:`DualBranchHead` returns these four logits as a :class:`DualBranchOutput`; at inference
its :meth:`~DualBranchHead.predict` averages the two branches. :func:`paired_forward` runs one
module over both batches in a single call; the trunk and each branch use it. The splitters of a
backbone into a trunk and this head, :func:`~ltml.resnet_dual_branch` and
:func:`~ltml.split_dual_branch`, are in :mod:`ltml.backbones`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import deprecated

from ._deprecation import warn_deprecated
from ._validation import (
    check_bool,
    check_callable,
    check_choice,
    check_floating,
    check_int,
    check_tensor,
)

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` below serves it
    from .backbones import resnet_dual_branch

__all__ = ["DualBranchHead", "DualBranchOutput", "paired_forward", "resnet_dual_branch"]

PredictMode = Literal["prob", "logit", "u", "r"]
_PREDICT_MODES = ("prob", "logit", "u", "r")

# Marks "forward called with one argument" (the deprecated inference form), which `None` cannot:
# `None` means "this batch is absent" in the two-argument form.
_ONE_ARGUMENT: Any = object()
_ONE_ARGUMENT_MESSAGE = (
    "calling a DualBranchHead with one argument is deprecated and will be removed in a future "
    "release; use `head.predict(feat)` (the same scores: mode='prob', the default)"
)


class DualBranchOutput(NamedTuple):
    """The four logits of a two-branch forward pass, each of shape ``(N, C)``.

    An entry is ``None`` when :meth:`DualBranchHead.forward` was asked not to compute it (a batch
    given as ``None``, or ``cross=False``).

    Attributes
    ----------
    u : Tensor or None
        ``f(x_u)``: branch U on the uniform batch (its classification loss).
    u_hat : Tensor or None
        ``g(x_u)``: branch R on the uniform batch (consistency partner of ``u``).
    r : Tensor or None
        ``g(x_r)``: branch R on the re-balanced batch (its classification loss).
    r_hat : Tensor or None
        ``f(x_r)``: branch U on the re-balanced batch (consistency partner of ``r``).
    """

    u: Tensor | None
    u_hat: Tensor | None
    r: Tensor | None
    r_hat: Tensor | None


@overload
def paired_forward(
    module: nn.Module, x_u: Tensor, x_r: Tensor, *, concat: bool = True
) -> tuple[Tensor, Tensor]: ...
@overload
def paired_forward(
    module: nn.Module, x_u: Tensor | None, x_r: Tensor | None, *, concat: bool = True
) -> tuple[Tensor | None, Tensor | None]: ...
def paired_forward(
    module: nn.Module, x_u: Tensor | None, x_r: Tensor | None, *, concat: bool = True
) -> tuple[Tensor | None, Tensor | None]:
    """Apply ``module`` to two batches, in one call over their concatenation by default.

    One call over ``torch.cat([x_u, x_r])`` runs each layer once on a batch of ``N_u + N_r``,
    which is faster than two calls (larger matrix products, half the Python and kernel-launch
    overhead). The results are identical, except for layers whose output depends on the rest of
    the batch: a BatchNorm layer **in training mode** then normalises with the statistics of both
    batches together (uniform and re-balanced images mixed) and updates its running statistics
    once, where two calls normalise each batch with its own statistics and update twice. In eval
    mode, or with BatchNorm frozen (``eval()`` on the BN layers, as in the DB-loss recipe), the
    two ways agree to float rounding. Pass ``concat=False`` for two separate calls.

    Parameters
    ----------
    module : nn.Module
        Any module mapping a batch ``(N, ...)`` to ``(N, ...)``, e.g. the trunk of
        :func:`~ltml.resnet_dual_branch`.
    x_u, x_r : Tensor or None, shape (N_u, ...) and (N_r, ...)
        The two batches; equal shapes except the batch dimension when concatenated. A ``None``
        batch is skipped and gives ``None``.
    concat : bool
        One call over the concatenation (default) or one call per batch.

    Returns
    -------
    (Tensor or None, Tensor or None)
        ``(module(x_u), module(x_r))``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from ltml import paired_forward
    >>> trunk = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    >>> x_u, x_r = torch.randn(4, 3, 16, 16), torch.randn(2, 3, 16, 16)
    >>> feat_u, feat_r = paired_forward(trunk, x_u, x_r)
    >>> feat_u.shape, feat_r.shape
    (torch.Size([4, 8, 16, 16]), torch.Size([2, 8, 16, 16]))
    >>> torch.allclose(feat_r, trunk(x_r), atol=1e-6)
    True
    """
    check_callable(module, "module")
    check_bool(concat, "concat")
    for x, name in ((x_u, "x_u"), (x_r, "x_r")):
        if x is not None:
            check_tensor(x, name)
    if x_u is None or x_r is None or not concat:
        return (
            None if x_u is None else module(x_u),
            None if x_r is None else module(x_r),
        )
    _check_pair(x_u, x_r, "x_u", "x_r")
    out_u, out_r = module(torch.cat([x_u, x_r])).split([x_u.shape[0], x_r.shape[0]])
    return out_u, out_r


class _Branch(nn.Module):
    """``classifier(GAP(features(x)))``: one branch, ``f`` or ``g`` of the paper.

    A classifier other than ``nn.Linear`` (an attention head) reads the unpooled features.
    """

    def __init__(self, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        z = self.features(x)
        if not isinstance(self.classifier, nn.Linear):
            out: Tensor = self.classifier(z)
            return out
        if z.ndim > 2:  # (N, D, *spatial), channels first: global average pooling
            z = z.mean(dim=tuple(range(2, z.ndim)))
        if z.ndim != 2 or z.shape[1] != self.classifier.in_features:
            raise ValueError(
                f"the branch must output (N, {self.classifier.in_features}) features after "
                f"global average pooling (in_features={self.classifier.in_features}), "
                f"got shape {tuple(z.shape)}"
            )
        logits: Tensor = self.classifier(z)
        return logits


class DualBranchHead(nn.Module):
    """Two independent branches with global average pooling and a linear classifier each.

    ``branch`` (e.g. a ResNet ``layer4``) is deep-copied twice: ``branch_u`` (the paper's ``f``,
    trained on the uniform sampling) and ``branch_r`` (``g``, trained on the re-balanced
    sampling). Both copies start with the same weights and share no parameter. The two linear
    classifiers also start identical (one ``nn.Linear(in_features, num_classes)`` with PyTorch's
    default initialisation, copied), so the branches begin as the same function and differ only
    through the batches they are trained on; for independent classifiers call
    ``head.branch_r.classifier.reset_parameters()`` after construction.

    Parameters
    ----------
    branch : nn.Module
        Maps trunk features ``(N, in_channels, ...)`` to ``(N, in_features, *spatial)`` (pooled
        by the mean over the spatial dimensions) or ``(N, in_features)``. ``nn.Identity()``
        gives a head of two linear classifiers on precomputed features.
    in_features : int or None
        Channels of the branch output (2048 for a ResNet-50 ``layer4``), the width of the linear
        classifiers; may be ``None`` when ``classifier`` is given (it is then unused).
    num_classes : int
        Number of classes ``C``.
    in_channels : int, optional
        Channels the branch expects, checked on every input for a clear error; defaults to
        ``in_features`` when ``branch`` is ``nn.Identity`` (and no ``classifier`` is given) and
        is unchecked otherwise.
    concat : bool
        Run each branch once over the concatenation of its two inputs (default), or once per
        input. They differ only for BatchNorm in training mode: see :func:`paired_forward`.
    classifier : nn.Module, optional
        What ends each branch in place of global average pooling and a linear classifier: a
        module from the branch's unpooled output to ``(N, C)`` logits, such as
        :class:`~ltml.CSRA` or :class:`~ltml.MLDecoder` (copied for each branch, so both start
        identical). Default: ``nn.Linear(in_features, num_classes)`` after pooling.

    Notes
    -----
    ``head(feat_u, feat_r)`` computes the four logits with two branch calls over ``2N`` images
    (with ``concat=True``). Work that an ablation does not need is skipped:

    * ``head(feat_u, feat_r, cross=False)`` gives ``u`` and ``r`` only (both branches, no
      consistency term): each branch sees only its own batch.
    * ``head(feat_u, None, cross=False)`` gives ``u`` only (uniform branch alone);
      ``head(None, feat_r, cross=False)`` gives ``r`` only (re-balanced branch alone).

    The trunk can also run once over both batches: ``feat_u, feat_r = paired_forward(trunk, x_u,
    x_r)``, which has the same BatchNorm caveat.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from ltml import DualBranchHead
    >>> _ = torch.manual_seed(0)
    >>> branch = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
    >>> head = DualBranchHead(branch, in_features=32, num_classes=5)
    >>> feat_u, feat_r = torch.randn(4, 16, 7, 7), torch.randn(4, 16, 7, 7)
    >>> out = head(feat_u, feat_r)  # training: u, u_hat, r, r_hat
    >>> out.u.shape, out.r_hat.shape
    (torch.Size([4, 5]), torch.Size([4, 5]))
    >>> torch.equal(out.u, out.u_hat)  # identical branches until trained apart
    True
    >>> head.predict(feat_u).shape  # inference: logit of the mean of the two probabilities
    torch.Size([4, 5])
    """

    def __init__(
        self,
        branch: nn.Module,
        in_features: int | None,
        num_classes: int,
        *,
        in_channels: int | None = None,
        concat: bool = True,
        classifier: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(branch, nn.Module):
            raise TypeError(f"`branch` must be an nn.Module, got {type(branch).__name__}")
        if classifier is not None and not isinstance(classifier, nn.Module):
            raise TypeError(
                f"`classifier` must be an nn.Module or None, got {type(classifier).__name__}"
            )
        check_int(num_classes, "num_classes")
        check_bool(concat, "concat")
        if in_channels is not None:
            check_int(in_channels, "in_channels")
        if classifier is None:
            width = check_int(in_features, "in_features")
            classifier = nn.Linear(width, num_classes)
            if in_channels is None and isinstance(branch, nn.Identity):
                in_channels = width
        elif in_features is not None:
            check_int(in_features, "in_features")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.concat = concat
        self.branch_u = _Branch(copy.deepcopy(branch), copy.deepcopy(classifier))
        self.branch_r = _Branch(copy.deepcopy(branch), copy.deepcopy(classifier))

    @overload
    def forward(
        self, feat_u: Tensor | None, feat_r: Tensor | None, *, cross: bool = True
    ) -> DualBranchOutput: ...
    @overload
    # Type checkers flag this form (their message must be a literal); at run time forward warns.
    @deprecated("one argument is deprecated: use `head.predict(feat)`", category=None)
    def forward(self, feat_u: Tensor) -> Tensor: ...
    def forward(
        self, feat_u: Tensor | None, feat_r: Tensor | None = _ONE_ARGUMENT, *, cross: bool = True
    ) -> DualBranchOutput | Tensor:
        """Compute the four logits of a training step: ``head(feat_u, feat_r)``.

        Parameters
        ----------
        feat_u : Tensor or None, shape (N_u, in_channels, ...)
            Trunk features of the uniform batch, ``None`` to skip it.
        feat_r : Tensor or None, shape (N_r, in_channels, ...)
            Trunk features of the re-balanced batch, ``None`` to skip it.
        cross : bool
            Also run each branch on the other branch's batch (``u_hat``, ``r_hat``), needed for
            the consistency term only.

        Returns
        -------
        DualBranchOutput
            ``(u, u_hat, r, r_hat)``, each ``(N_u, C)`` or ``(N_r, C)``, ``None`` where not
            computed.

        Notes
        -----
        The one-argument form ``head(feat)`` is deprecated: it warns (``FutureWarning``) and
        returns ``head.predict(feat)``, the scores of :meth:`predict` with ``mode="prob"``.
        """
        if feat_r is _ONE_ARGUMENT:
            # stacklevel 4: this method, Module._call_impl, Module.__call__, the caller's line
            warn_deprecated(_ONE_ARGUMENT_MESSAGE, stacklevel=4)
            return self.predict(check_tensor(feat_u, "feat"))
        if feat_u is None and feat_r is None:
            raise ValueError("at least one of `feat_u` and `feat_r` must be a Tensor, got None")
        check_bool(cross, "cross")
        for feat, name in ((feat_u, "feat_u"), (feat_r, "feat_r")):
            if feat is not None:
                self._check_features(feat, name)
        if feat_u is not None and feat_r is not None:
            _check_pair(feat_u, feat_r, "feat_u", "feat_r")
        u, r_hat = paired_forward(
            self.branch_u, feat_u, feat_r if cross else None, concat=self.concat
        )
        u_hat, r = paired_forward(
            self.branch_r, feat_u if cross else None, feat_r, concat=self.concat
        )
        return DualBranchOutput(u, u_hat, r, r_hat)

    def predict(self, feat: Tensor, mode: PredictMode = "prob") -> Tensor:
        """Inference scores from both branches (or one), as logits that keep their ranking.

        Parameters
        ----------
        feat : Tensor, shape (N, in_channels, ...)
            Trunk features.
        mode : {"prob", "logit", "u", "r"}
            ``"prob"`` (default, the paper's average of the two sigmoid outputs): the logit of
            the mean probability, ``log(mean p) - log(mean (1 - p))``, computed in log space as
            ``logsumexp(logsigmoid(u), logsigmoid(r)) - logsumexp(logsigmoid(-u),
            logsigmoid(-r))``. It ranks exactly as ``(sigmoid(u) + sigmoid(r)) / 2`` but does
            not saturate: float32 ``sigmoid`` is 1.0 above about 17, which ties confident
            positives and lowers average precision. ``"logit"``: ``(u + r) / 2``.
            ``"u"`` / ``"r"``: one branch alone (ablation rows; the other branch is not run).

        Returns
        -------
        Tensor, shape (N, C)
            Scores (logits); ``torch.sigmoid`` gives probabilities. Float16 / bfloat16 logits are
            averaged in float32.

        Examples
        --------
        >>> import torch
        >>> from torch import nn
        >>> from ltml import DualBranchHead
        >>> head = DualBranchHead(nn.Identity(), in_features=1, num_classes=1)
        >>> for branch in (head.branch_u, head.branch_r):  # both branches: logit = feature
        ...     _ = nn.init.ones_(branch.classifier.weight)
        ...     _ = nn.init.zeros_(branch.classifier.bias)
        >>> feat = torch.tensor([[0.0], [20.0], [40.0]])
        >>> with torch.no_grad():
        ...     head.predict(feat).flatten()
        tensor([ 0., 20., 40.])
        >>> with torch.no_grad():  # sigmoid-then-average saturates: confident scores tie
        ...     (torch.sigmoid(head.branch_u(feat)) + torch.sigmoid(head.branch_r(feat))) / 2
        tensor([[0.5000],
                [1.0000],
                [1.0000]])
        """
        check_choice(mode, "mode", _PREDICT_MODES)
        self._check_features(feat, "feat")
        if mode == "r":
            r_only: Tensor = self.branch_r(feat)
            return r_only
        u: Tensor = self.branch_u(feat)
        if mode == "u":
            return u
        r: Tensor = self.branch_r(feat)
        # average in at least float32: half-precision logits (autocast) would round the mean
        dtype = torch.promote_types(u.dtype, torch.float32)
        u, r = u.to(dtype), r.to(dtype)
        if mode == "logit":
            return (u + r) / 2
        log_p = torch.logaddexp(F.logsigmoid(u), F.logsigmoid(r))
        log_q = torch.logaddexp(F.logsigmoid(-u), F.logsigmoid(-r))
        return log_p - log_q

    def extra_repr(self) -> str:
        """Summary shown by ``print(head)``."""
        return (
            f"num_classes={self.num_classes}, in_channels={self.in_channels}, concat={self.concat}"
        )

    def _check_features(self, feat: Tensor, name: str) -> None:
        check_tensor(feat, name)
        check_floating(feat, name)
        if feat.ndim < 2:
            raise ValueError(
                f"`{name}` must be at least 2-D (N, channels, ...), got shape {tuple(feat.shape)}"
            )
        if self.in_channels is not None and feat.shape[1] != self.in_channels:
            raise ValueError(
                f"`{name}` must have {self.in_channels} channels (in_channels) in dimension 1, "
                f"got shape {tuple(feat.shape)}"
            )


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape except the batch dimension, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def __getattr__(name: str) -> object:
    """Serve ``resnet_dual_branch``, which lives in :mod:`ltml.backbones`, from here too.

    Looked up on first use rather than imported: ``ltml.backbones`` imports this module.
    """
    if name == "resnet_dual_branch":
        from .backbones import resnet_dual_branch

        return resnet_dual_branch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
