"""Features once: run a frozen network over a loader and keep the pooled features and labels.

Every decoupled method then works on the cached ``(N, D)`` features, in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from .._validation import as_tensor, check_bool, check_choice, described
from ..heads import DualBranchHead

__all__ = ["extract_features"]


def _pool(z: Tensor) -> Tensor:
    """Global average pooling of ``(N, D, *spatial)`` features; ``(N, D)`` passes through."""
    return z.mean(dim=tuple(range(2, z.ndim))) if z.ndim > 2 else z


def _autocast_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    if amp is False or (amp is None and device.type != "cuda"):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _images_and_labels(batch: Any, i: int) -> tuple[Tensor, Tensor]:
    """Split a loader's batch into an image tensor and a label tensor of as many rows.

    A batch must be an ``(images, labels)`` pair (a tuple or a list, as a DataLoader over a
    dataset of pairs gives): a bare image tensor of two images would otherwise be read as one
    image and its label.
    """
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        seen = (
            f"a tensor of shape {tuple(batch.shape)}"
            if isinstance(batch, Tensor)
            else f"a {type(batch).__name__}"
            + (f" of {len(batch)} items" if isinstance(batch, tuple | list) else "")
        )
        raise TypeError(
            f"`loader` must yield (images, labels) pairs, got {seen} as batch {i}; wrap bare "
            "images with their labels, e.g. a TensorDataset(images, labels)"
        )
    x, y = batch
    if not isinstance(x, Tensor) or x.ndim < 1:
        raise TypeError(
            f"`loader` must yield images as a batched tensor, got {described(x)} in batch {i}"
        )
    y = as_tensor(y, "labels") if isinstance(y, Tensor | np.ndarray) else None
    if y is None or y.ndim != 2 or y.shape[0] != x.shape[0]:
        seen = "no label matrix" if y is None else f"labels of shape {tuple(y.shape)}"
        raise ValueError(
            f"`loader` must yield (N, C) labels for its N images, got {seen} for "
            f"{x.shape[0]} images in batch {i}"
        )
    return x, y


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
    if amp is not None:
        check_bool(amp, "amp")
    check_bool(progress, "progress")
    if device is None:
        first = next(trunk.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    elif not isinstance(device, str | torch.device):
        raise TypeError(f"`device` must be a torch.device, a str or None, got {described(device)}")
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"`device` must name a device, got {device!r} ({error})") from None
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
        for i, batch in enumerate(batches):
            x, y = _images_and_labels(batch, i)
            with torch.autocast(device.type, dtype, enabled=dtype is not None):
                z = x.to(device, non_blocking=True)
                for stage in stages:
                    z = stage(z)
            if not isinstance(z, Tensor) or z.ndim < 2 or z.shape[0] != x.shape[0]:
                shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
                raise ValueError(
                    f"`trunk` must map a batch of {x.shape[0]} images to features (B, D, ...), "
                    f"got {shape} (batch {i} of `loader`)"
                )
            features.append(_pool(z).float().cpu())
            labels.append(y.cpu())
            if labels[-1].shape[1:] != labels[0].shape[1:] or z.shape[1] != features[0].shape[1]:
                raise ValueError(
                    f"`loader` must give batches of one label width and one feature width, "
                    f"batch {i} has labels {tuple(y.shape)} and features {tuple(z.shape)} after "
                    f"labels {tuple(labels[0].shape)} and features of width {features[0].shape[1]}"
                )
    finally:
        for m, training in modes:
            m.train(training)
    if not features:
        raise ValueError("`loader` must yield at least one batch, got none")
    return torch.cat(features), torch.cat(labels)
