"""Contract of the spatial features an attention head reads: a map or a token sequence."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .arrays import check_floating, check_tensor


def as_tokens(value: Any, name: str, in_features: int, num_prefix_tokens: int = 0) -> Tensor:
    """Return features as a ``(B, L, D)`` token sequence, ``D = in_features``.

    A 4-D tensor is a channels-first map ``(B, D, H, W)`` (a CNN's, or a ViT's tokens reshaped),
    flattened to ``L = H W`` positions in row-major order; a 3-D tensor is a token sequence
    ``(B, L, D)`` (ViT, Swin flattened) whose first ``num_prefix_tokens`` tokens (a class token,
    register tokens) are dropped. Channels-last maps ``(B, H, W, D)`` are refused (permute them).
    """
    x = check_tensor(value, name)
    check_floating(x, name)
    if x.ndim == 4:
        if x.shape[1] != in_features:
            raise ValueError(
                f"`{name}` must be a (B, {in_features}, H, W) map (in_features channels first; "
                f"permute a channels-last map), got shape {tuple(x.shape)}"
            )
        tokens = x.flatten(2).transpose(1, 2)
    elif x.ndim == 3:
        if x.shape[2] != in_features:
            raise ValueError(
                f"`{name}` must be a (B, L, {in_features}) token sequence (in_features last), "
                f"got shape {tuple(x.shape)}"
            )
        tokens = x[:, num_prefix_tokens:]
    else:
        raise ValueError(
            f"`{name}` must be a (B, D, H, W) feature map or a (B, L, D) token sequence, "
            f"got shape {tuple(x.shape)}"
        )
    if tokens.shape[1] == 0:
        raise ValueError(
            f"`{name}` must have at least one spatial position (after {num_prefix_tokens} "
            f"prefix token(s)), got shape {tuple(x.shape)}"
        )
    return tokens
