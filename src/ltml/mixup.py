"""Mixup and CutMix for multi-label batches with unknown (-1) labels.

Input mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018) blends a batch
with a permutation of itself, ``x = λ x_i + (1 - λ) x_j``, and the targets with the same ``λ``;
CutMix (Yun et al., ICCV 2019) pastes a box of ``x_j`` into ``x_i`` instead, with ``λ`` the part of
the image left to ``x_i``. The "Bag of Tricks for Long-Tailed Visual Recognition" (Zhang et al.,
AAAI 2021) uses mixup in the first stage of its best long-tail recipe. A mixed target is soft, in
[0, 1], and unknown (-1) wherever either source label is unknown: its true value cannot be known.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ._validation import (
    assert_on_device,
    check_choice,
    check_labels,
    check_matrix,
    check_scalar,
    check_tensor,
    labels_contract,
    sync_free,
)

__all__ = ["MixedBatch", "mix_batch"]

MixMethod = Literal["mixup", "cutmix"]


class MixedBatch(NamedTuple):
    """A mixed batch: ``inputs`` and ``targets`` blended with a permutation of themselves.

    Attributes
    ----------
    inputs : Tensor, shape (N, ...)
        The mixed inputs.
    targets : Tensor, shape (N, C), float
        ``lam * y + (1 - lam) * y[permutation]``, and -1 where either label is -1.
    lam : float
        The weight of the original batch (for CutMix: the share of each image left unchanged).
    permutation : Tensor, shape (N,), int64
        Sample ``i`` was mixed with sample ``permutation[i]``.
    """

    inputs: Tensor
    targets: Tensor
    lam: float
    permutation: Tensor


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    """Draw ``λ ~ Beta(alpha, alpha)`` from ``generator``'s stream (torch has no seeded Beta)."""
    seed = int(torch.randint(2**62, (1,), generator=generator).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _cut_box(
    height: int, width: int, lam: float, generator: torch.Generator | None
) -> tuple[int, int, int, int]:
    """Draw a box of area about ``(1 - lam) H W`` centred uniformly, clipped to the image."""
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = round(height * ratio), round(width * ratio)
    cy = int(torch.randint(height, (1,), generator=generator).item())
    cx = int(torch.randint(width, (1,), generator=generator).item())
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, width)
    return top, bottom, left, right


def _mix_targets(targets: Tensor, index: Tensor, lam: float) -> Tensor:
    """Blend ``targets`` with ``targets[index]``; -1 where either source label is -1."""
    y = targets.to(torch.promote_types(targets.dtype, torch.float32))
    other = y[index]
    mixed = lam * y + (1.0 - lam) * other
    return mixed.masked_fill((y < 0) | (other < 0), -1.0)


def mix_batch(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = 1.0,
    *,
    method: MixMethod = "mixup",
    generator: torch.Generator | None = None,
) -> MixedBatch:
    r"""Mix a multi-label batch with a permutation of itself (mixup or CutMix).

    With ``λ ~ Beta(alpha, alpha)`` and a random permutation ``j`` of the batch:

    .. math::
        \tilde x_i = \lambda x_i + (1 - \lambda) x_{j(i)}, \qquad
        \tilde y_{ik} = \lambda y_{ik} + (1 - \lambda) y_{j(i)k},

    and :math:`\tilde y_{ik} = -1` (unknown) when either label is -1. With ``method="cutmix"`` a
    box of area about :math:`(1 - \lambda) H W` of :math:`x_{j(i)}` replaces the same box of
    :math:`x_i`, and :math:`\lambda` becomes the exact share of the image left unchanged. Call it
    once per stream of a paired batch. Every loss of :mod:`ltml.losses` accepts the soft targets
    (each docstring gives its soft form) except :class:`ltml.DistributionBalancedLoss`,
    :class:`ltml.MultiFocalModifierLoss` and :class:`ltml.ReflectiveLabelCorrector`, whose
    definitions need 0 / 1 labels and which raise a ``ValueError``.

    Parameters
    ----------
    inputs : Tensor, shape (N, ...)
        The batch; ``(N, C_in, H, W)`` images for CutMix. Not modified.
    targets : Tensor, shape (N, C)
        0 / 1 labels, -1 for unknown; soft targets in [0, 1] mix too.
    alpha : float
        Beta concentration, > 0; 1.0 draws λ uniformly in [0, 1], small values keep λ near 0 or 1.
    method : {"mixup", "cutmix"}
        Blend whole images, or paste a box.
    generator : torch.Generator, optional
        Source of λ, the permutation and the box: the same generator state gives the same batch.

    Returns
    -------
    MixedBatch
        ``(inputs, targets, lam, permutation)``: targets are float (at least float32).

    Examples
    --------
    >>> import torch
    >>> from ltml import mix_batch
    >>> x = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    >>> y = torch.tensor([[1, 0, -1], [0, 1, 0]])
    >>> mixed = mix_batch(x, y, alpha=1.0, generator=torch.Generator().manual_seed(0))
    >>> round(mixed.lam, 4), mixed.permutation.tolist()
    (0.4299, [1, 0])
    >>> mixed.targets
    tensor([[ 0.4299,  0.5701, -1.0000],
            [ 0.5701,  0.4299, -1.0000]])
    """
    check_tensor(inputs, "inputs")
    check_tensor(targets, "targets")
    check_matrix(targets, "targets")
    if inputs.ndim == 0 or inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            "`inputs` and `targets` must have the same batch size (dimension 0), got shapes "
            f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    if sync_free(targets):  # on an accelerator: checked there, no wait for the values
        valid = (targets == -1) | ((targets >= 0) & (targets <= 1))
        assert_on_device(valid.all(), labels_contract("targets", soft=True))
    else:
        check_labels(targets, "targets", soft=True)
    check_scalar(alpha, "alpha", low=0.0, low_open=True)
    check_choice(method, "method", ("mixup", "cutmix"))
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"`generator` must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if method == "cutmix" and (inputs.ndim != 4 or not inputs.shape[-1] or not inputs.shape[-2]):
        raise ValueError(
            "`inputs` must be 4-D (N, C, H, W) images with H, W >= 1 for CutMix, got shape "
            f"{tuple(inputs.shape)}"
        )

    lam = _beta(alpha, generator)
    index = torch.randperm(inputs.shape[0], generator=generator).to(inputs.device)
    if method == "mixup":
        mixed = lam * inputs + (1.0 - lam) * inputs[index]
    else:
        height, width = inputs.shape[-2:]
        top, bottom, left, right = _cut_box(height, width, lam, generator)
        mixed = inputs.clone()
        mixed[..., top:bottom, left:right] = inputs[index][..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    return MixedBatch(mixed, _mix_targets(targets, index, lam), lam, index)
