"""Tests for ltml.ml_decoder: ML-Decoder against a literal transcription.

The reference follows Ridnik et al. (WACV 2023) and their released layer one token, one query,
one attention head at a time: layer norms, attention and the group fully-connected layer are
written as sums over vectors, reading the module's parameters (so gradients flow to them).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from ltml import MLDecoder

D, E, HEADS = 6, 8, 2


def _randn(*shape: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _layer_norm(v: Tensor, norm: nn.LayerNorm) -> Tensor:
    mean = sum(v) / len(v)
    var = sum((v_i - mean) ** 2 for v_i in v) / len(v)
    return (v - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _softmax(scores: list[Tensor]) -> list[Tensor]:
    e = [torch.exp(s) for s in scores]
    z = sum(e)
    return [e_i / z for e_i in e]


def _attend(q: Tensor, memory: list[Tensor], mha: nn.MultiheadAttention) -> Tensor:
    """Multi-head attention of one query over the memory tokens, head by head."""
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
    width = E // HEADS
    outputs = []
    for h in range(HEADS):
        rows = slice(h * width, (h + 1) * width)
        q_h = w_q[rows] @ q + b_q[rows]
        keys = [w_k[rows] @ m + b_k[rows] for m in memory]
        values = [w_v[rows] @ m + b_v[rows] for m in memory]
        weights = _softmax([torch.dot(q_h, k) / math.sqrt(width) for k in keys])
        outputs.append(sum(a * v for a, v in zip(weights, values, strict=True)))
    return mha.out_proj.weight @ torch.cat(outputs) + mha.out_proj.bias


def reference(head: MLDecoder, tokens: Tensor) -> Tensor:
    """ML-Decoder of (B, L, D) tokens with dropout off: the paper's steps, written out."""
    rows = []
    for b in range(tokens.shape[0]):
        memory = [torch.relu(head.embed.weight @ x + head.embed.bias) for x in tokens[b]]
        queries = [head.query_projection(q) for q in head.queries]
        for layer in head.layers:
            updated = []
            for q in queries:
                q = _layer_norm(q + q, layer.norm1)  # the residual in place of self-attention
                q = _layer_norm(q + _attend(q, memory, layer.attention), layer.norm2)
                hidden = torch.relu(layer.linear1.weight @ q + layer.linear1.bias)
                q = _layer_norm(q + layer.linear2.weight @ hidden + layer.linear2.bias, layer.norm3)
                updated.append(q)
            queries = updated
        g = head.group_size
        logits = [
            torch.dot(queries[c // g], head.group_weight[c // g, :, c % g]) + head.group_bias[c]
            for c in range(head.num_classes)
        ]
        rows.append(torch.stack(logits))
    return torch.stack(rows)


def _build(num_classes: int, **kwargs) -> MLDecoder:
    torch.manual_seed(0)
    settings = {"embed_dim": E, "num_heads": HEADS, "dim_feedforward": 12, "dropout": 0.0}
    head = MLDecoder(D, num_classes, **{**settings, **kwargs}).double()
    with torch.no_grad():  # nonzero biases and affine norms, so that each term shows
        for name, p in head.named_parameters():
            if name.endswith(("bias", "norm1.weight", "norm2.weight", "norm3.weight")):
                p.add_(0.3 * torch.randn_like(p))
    return head


@pytest.mark.parametrize(
    ("num_classes", "kwargs"),
    [
        (7, {"num_groups": 3}),  # ceil(7 / 3) = 3 classes a query, the last group cut to 1
        (5, {}),  # default: min(100, C) queries, one class each
        (4, {"num_groups": 2, "num_layers": 2, "learn_queries": True}),
        (4, {"queries": _randn(4, 5, seed=9)}),  # text-like queries, projected 5 -> E
    ],
)
def test_values_and_gradients_match_the_transcription(num_classes, kwargs):
    head = _build(num_classes, **kwargs).train()  # dropout 0: training and evaluation agree
    tokens = _randn(2, 5, D, seed=1).requires_grad_()
    got = head(tokens)
    want = reference(head, tokens)
    assert got.shape == (2, num_classes)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    upstream = _randn(*got.shape, seed=2)
    inputs = [tokens, *(p for p in head.parameters() if p.requires_grad)]
    grads = torch.autograd.grad((got * upstream).sum(), inputs, allow_unused=True)
    want_grads = torch.autograd.grad((want * upstream).sum(), inputs, allow_unused=True)
    for g, w in zip(grads, want_grads, strict=True):
        if w is None:  # the group weights of the classes cut off past C
            assert g is None or not g.any()
            continue
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


def test_queries_are_fixed_by_default_and_learnt_on_request():
    fixed = _build(4)
    assert not fixed.queries.requires_grad
    assert fixed.queries.shape == (4, E)
    assert _build(4, learn_queries=True).queries.requires_grad
    text = _randn(4, E, seed=3)
    given = _build(4, queries=text)
    assert isinstance(given.query_projection, nn.Identity)  # already E wide: used as they are
    torch.testing.assert_close(given.queries.detach(), text.float().double())


def test_map_equals_its_tokens_and_prefix_tokens_are_dropped():
    head = _build(5).eval()
    x = _randn(2, D, 3, 2, seed=4)
    tokens = x.flatten(2).transpose(1, 2)
    torch.testing.assert_close(head(x), head(tokens))
    vit = _build(5, num_prefix_tokens=1).eval()
    with_class_token = torch.cat([_randn(2, 1, D, seed=5), tokens], dim=1)
    torch.testing.assert_close(vit(with_class_token), head(x))


def test_group_decoding_keeps_the_query_count():
    head = MLDecoder(D, 1000, num_groups=50, embed_dim=E, num_heads=HEADS, dim_feedforward=8)
    assert head.queries.shape == (50, E)
    assert head.group_weight.shape == (50, E, 20)
    assert head(torch.randn(2, 4, D)).shape == (2, 1000)
    assert MLDecoder(D, 250, embed_dim=E, num_heads=HEADS).num_groups == 100  # the default


def test_dropout_residual_acts_in_training_only():
    head = _build(3, dropout=0.5)
    x = _randn(4, 3, D, seed=6)
    head.eval()
    torch.testing.assert_close(head(x), head(x))
    torch.manual_seed(1)
    head.train()
    assert not torch.allclose(head(x), head.eval()(x))


def test_reset_parameters_redraws_and_keeps_the_queries():
    head = _build(4)
    before = {k: v.clone() for k, v in head.state_dict().items()}
    head.reset_parameters()
    after = head.state_dict()
    assert torch.equal(after["queries"], before["queries"])
    assert not torch.equal(after["group_weight"], before["group_weight"])
    assert not torch.equal(
        after["layers.0.attention.in_proj_weight"], before["layers.0.attention.in_proj_weight"]
    )
    assert not after["group_bias"].any()


def test_mixed_precision_autocast_runs_and_stays_close():
    head = _build(5).float().eval()
    x = torch.randn(2, 9, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = head(x)
    torch.testing.assert_close(low.float(), head(x), rtol=0.1, atol=0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_groups": 6}, r"`num_groups` must be an integer in \[1, 5\]"),
        ({"embed_dim": 10, "num_heads": 4}, r"`embed_dim` must be divisible by num_heads=4"),
        ({"queries": torch.zeros(6, 3)}, r"`queries` must have between 1 and num_classes=5"),
        ({"queries": torch.zeros(5)}, r"`queries` must be a floating-point \(K, D_q\) matrix"),
        ({"queries": torch.zeros(5, 3), "num_groups": 4}, r"`num_groups` must equal"),
        ({"dropout": 1.5}, r"`dropout` must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MLDecoder(D, 5, **kwargs)
