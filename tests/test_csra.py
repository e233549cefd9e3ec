"""Tests for ltml.csra: class-specific residual attention against a literal transcription.

The reference below follows Zhu & Wu (ICCV 2021), Eq. 1-6, one class, one head, one position at
a time, with plain sums and exponentials: no einsum, no softmax, no reshaping.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from ltml import CSRA, CSRA_TEMPERATURES

D, C = 6, 4


def _randn(*shape: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def reference(
    x: Tensor, weight: Tensor, temperatures: tuple[float, ...], lam: float, normalize: bool
) -> Tensor:
    """CSRA of a (B, D, H, W) map, written position by position."""
    batch, _, height, width = x.shape
    rows = []
    for b in range(batch):
        positions = [x[b, :, i, j] for i in range(height) for j in range(width)]
        logits = []
        for c in range(weight.shape[1]):
            total = torch.zeros((), dtype=x.dtype)
            for h, temperature in enumerate(temperatures):
                m = weight[h, c]
                if normalize:
                    m = m / torch.sqrt(sum(m_i * m_i for m_i in m))
                scores = [sum(x_l[d] * m[d] for d in range(len(m))) for x_l in positions]
                average = sum(scores) / len(scores)
                if math.isinf(temperature):
                    attended = max(scores)
                else:
                    e = [torch.exp(temperature * s) for s in scores]
                    z = sum(e)
                    attended = sum(e_l / z * s for e_l, s in zip(e, scores, strict=True))
                total = total + average + lam * attended
            logits.append(total)
        rows.append(torch.stack(logits))
    return torch.stack(rows)


@pytest.mark.parametrize(
    ("temperatures", "lam", "normalize"),
    [
        ((1.0,), 0.1, True),
        ((1.0, math.inf), 0.3, True),
        (CSRA_TEMPERATURES[4], 0.2, False),
        ((0.5, 20.0), 1.0, True),
    ],
)
def test_values_and_gradients_match_the_transcription(temperatures, lam, normalize):
    head = CSRA(D, C, temperatures=temperatures, lam=lam, normalize=normalize).double()
    x = _randn(2, D, 3, 2, seed=1).requires_grad_()
    got = head(x)
    want = reference(x, head.weight, temperatures, lam, normalize)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    upstream = _randn(*got.shape, seed=2)
    grads = torch.autograd.grad((got * upstream).sum(), (x, head.weight))
    want_grads = torch.autograd.grad((want * upstream).sum(), (x, head.weight))
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_token_sequence_equals_the_map_and_prefix_tokens_are_dropped():
    head = CSRA(D, C, temperatures=(1.0, math.inf)).double()
    x = _randn(2, D, 3, 4, seed=3)
    tokens = x.flatten(2).transpose(1, 2)  # (B, 12, D), row-major positions
    torch.testing.assert_close(head(tokens), head(x))
    with_class_token = torch.cat([_randn(2, 1, D, seed=4), tokens], dim=1)
    vit_head = CSRA(D, C, temperatures=(1.0, math.inf), num_prefix_tokens=1).double()
    vit_head.load_state_dict(head.state_dict())
    torch.testing.assert_close(vit_head(with_class_token), head(x))
    assert not torch.allclose(head(with_class_token), head(x))


def test_limits_lambda_zero_is_average_pooling_and_large_t_is_max_pooling():
    x = _randn(3, D, 2, 2, seed=5)
    pooled = CSRA(D, C, lam=0.0, normalize=False).double()
    torch.testing.assert_close(pooled(x), x.mean(dim=(2, 3)) @ pooled.weight[0].T)
    sharp = CSRA(D, C, temperatures=(1e4,), lam=1.0).double()
    hard = CSRA(D, C, temperatures=(math.inf,), lam=1.0).double()
    hard.load_state_dict(sharp.state_dict())
    torch.testing.assert_close(sharp(x), hard(x), rtol=1e-6, atol=1e-6)


def test_initialisation_is_uniform_within_the_conv_bound():
    torch.manual_seed(0)
    head = CSRA(400, 30, temperatures=CSRA_TEMPERATURES[2])
    assert head.weight.shape == (2, 30, 400)
    bound = 1 / math.sqrt(400)
    assert head.weight.abs().max() <= bound
    assert head.weight.abs().max() > 0.99 * bound  # 24,000 draws reach the bound
    assert "temperatures=(1.0, inf)" in repr(head)


def test_mixed_precision_autocast_runs_and_stays_close():
    head = CSRA(D, C, temperatures=(1.0, math.inf))
    x = _randn(2, D, 4, 4, seed=6).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = head(x)
    torch.testing.assert_close(low.float(), head(x), rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.zeros(2, D), r"`x` must be a \(B, D, H, W\) feature map or a \(B, L, D\)"),
        (torch.zeros(2, D + 1, 2, 2), r"`x` must be a \(B, 6, H, W\) map"),
        (torch.zeros(2, 2, 2, D), r"permute a channels-last map"),
        (torch.zeros(2, 3, D + 1), r"`x` must be a \(B, L, 6\) token sequence"),
        (torch.zeros(2, 0, D), r"`x` must have at least one spatial position"),
        (torch.zeros(2, D, 2, 2, dtype=torch.long), r"`x` must be a floating-point tensor"),
    ],
)
def test_bad_features_are_named(x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CSRA(D, C)(x)


@pytest.mark.parametrize(
    "temperatures", [(), (0.0,), (-1.0,), (math.nan,), "1", 1.0, (True,), ("1",)]
)
def test_bad_temperatures_are_named(temperatures):
    with pytest.raises((ValueError, TypeError), match="`temperatures` must be"):
        CSRA(D, C, temperatures=temperatures)
