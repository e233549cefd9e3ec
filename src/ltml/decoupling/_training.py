"""What cRT, NCM and LWS share: the check of training features and labels, and the training loop."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Sampler

from .._label_forms import Entries, LabelForm, read_labels, shape_of
from .._validation import (
    as_positions,
    as_tensor,
    check_callable,
    check_finite,
    check_floating,
    check_int,
    check_matrix,
    check_scalar,
    check_seed,
    described,
)
from ..losses import BCE
from ..samplers import ClassAwareSampler

Loss = Callable[[Tensor, Tensor], Tensor]


def as_training_data(features: Any, labels: Any) -> tuple[Tensor, LabelForm]:
    """Check training ``features`` (N, D) and ``labels`` (N, C, any label form); return them.

    ``labels`` comes back as a dense tensor, or as the entries of a sparse form (never
    densified: :func:`label_rows` makes each batch's targets).
    """
    x = as_tensor(features, "features")
    y = read_labels(labels, "labels")
    check_floating(x, "features")
    check_matrix(x, "features")
    if x.shape[0] != shape_of(y)[0]:
        raise ValueError(
            "`features` and `labels` must have the same number of rows N, "
            f"got {x.shape[0]} and {shape_of(y)[0]}"
        )
    if x.shape[0] == 0:
        raise ValueError("`features` must hold at least one row, got N=0")
    check_finite(x, "features")
    return x, y


def label_rows(labels: LabelForm, index: Tensor) -> Tensor:
    """Return the rows ``index`` of a label form as a dense tensor, on ``index``'s device."""
    if isinstance(labels, Entries):
        rows = labels.rows(index.cpu().numpy())
        dense = torch.from_numpy(rows.dense_rows(0, len(index))).to(torch.int64)
        return dense.to(index.device)
    return labels[index]


def _index(i: Any) -> Any:
    """Read an index a sampler gave: a 0-d integer tensor as an int (others checked after)."""
    if isinstance(i, Tensor) and i.ndim == 0 and not i.is_floating_point():
        return int(i)
    return i


def fit_rebalanced(
    model: nn.Module,
    features: Tensor,
    labels: LabelForm,
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
    elif not hasattr(sampler, "__iter__") or not hasattr(sampler, "__len__"):
        raise TypeError(
            f"`sampler` must be a Sampler of indices with a length, got {type(sampler).__name__}"
        )
    if len(sampler) < 1:
        raise ValueError("`sampler` must give at least one index an epoch, got a length of 0")
    criterion: Loss = BCE() if loss is None else loss
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(sampler) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps))
    )
    y = labels.to(features.device) if isinstance(labels, Tensor) else labels
    with torch.enable_grad():  # also when called under no_grad (e.g. inside an evaluation)
        for epoch in range(epochs):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            drawn = [_index(i) for i in sampler]
            order = as_positions(drawn, "sampler", len(features), "image indices")
            for batch in torch.split(order.to(features.device), batch_size):
                optimizer.zero_grad(set_to_none=True)
                value = criterion(model(features[batch]), label_rows(y, batch))
                if not isinstance(value, Tensor) or value.numel() != 1:
                    shape = tuple(value.shape) if isinstance(value, Tensor) else described(value)
                    raise ValueError(f"`loss` must return a scalar tensor, got {shape}")
                torch.autograd.backward(value)
                optimizer.step()
                schedule.step()
