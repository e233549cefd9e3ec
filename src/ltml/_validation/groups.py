"""Contracts of image groups: one group id per image (a patient, a video, a photographer)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from .scalars import described


def as_image_groups(groups: Any, name: str, num_images: int) -> np.ndarray:
    """Return ``(N,)`` int64 group ids ``0 .. G-1`` (in order of first appearance) of any labels.

    ``groups`` holds one hashable label per image: a 1-D tensor or array, a list, a pandas Series.
    Refused: a string, a mapping, more than one dimension, a length other than ``num_images``, a
    missing value (``None``, NaN, pandas' ``NA``: an image without a group would be split apart
    from nothing, silently), an unhashable label.
    """
    if isinstance(groups, str | bytes | Mapping) or not isinstance(groups, Iterable):
        raise TypeError(
            f"`{name}` must be a sequence of group labels, one per image (e.g. patient ids), "
            f"got {described(groups)}"
        )
    if isinstance(groups, torch.Tensor):
        groups = groups.detach().cpu().numpy()
    if isinstance(groups, np.ndarray):
        if groups.ndim != 1:
            raise ValueError(
                f"`{name}` must be 1-D, one group label per image, got shape {groups.shape}"
            )
        values = groups.tolist()
    else:
        values = list(groups)
    if len(values) != num_images:
        raise ValueError(
            f"`{name}` must hold one group label per image ({num_images}), got {len(values)}"
        )
    ids: dict[Any, int] = {}
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if _missing(value):
            raise ValueError(
                f"`{name}` must give every image a group, got {value!r} at image {i}; "
                "give each such image a group of its own"
            )
        try:
            out[i] = ids.setdefault(value, len(ids))
        except TypeError:
            raise TypeError(
                f"`{name}` must hold hashable group labels (ints, strings), got "
                f"{described(value)} at image {i}"
            ) from None
    return out


def _missing(value: Any) -> bool:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)
