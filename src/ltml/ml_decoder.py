r"""ML-Decoder: class queries that read the spatial tokens through cross-attention.

Ridnik, Sharir, Ben-Cohen, Ben-Baruch & Noy, "ML-Decoder: Scalable and Versatile Classification
Head", WACV 2023 (code: Alibaba-MIIL/ML_Decoder). A transformer decoder without self-attention:
``K`` queries attend to the image's tokens (projected to the decoder's width), and *group
decoding* turns each query's output into ``ceil(C / K)`` logits with its own small linear map
(the group fully-connected layer), so the cost stays flat as ``C`` grows to thousands. Queries
are fixed random vectors (the authors' default), learnt, or text embeddings of the class names
(one query per class; see :func:`~ltml.class_text_embeddings`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._validation import as_tokens, check_bool, check_int, check_probability, check_tensor

__all__ = ["MLDecoder"]


class _DecoderLayer(nn.Module):
    """One decoder layer without self-attention, post-norm, as the authors' ``...LayerOptimal``.

    ``q <- LN1(q + dropout(q))``, ``q <- LN2(q + dropout(attn(q, m, m)))``,
    ``q <- LN3(q + dropout(W2 dropout(relu(W1 q))))``.
    """

    def __init__(self, dim: int, num_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, q: Tensor, memory: Tensor) -> Tensor:
        q = self.norm1(q + self.dropout1(q))  # where self-attention was: the authors' residual
        attended = self.attention(q, memory, memory, need_weights=False)[0]
        q = self.norm2(q + self.dropout2(attended))
        hidden = self.linear2(self.dropout(F.relu(self.linear1(q))))
        out: Tensor = self.norm3(q + self.dropout3(hidden))
        return out


class MLDecoder(nn.Module):
    r"""ML-Decoder classification head with group decoding.

    With tokens ``x`` of shape ``(B, L, D)`` (a map ``(B, D, H, W)`` is flattened), ``K`` queries
    ``Q`` and ``g = ceil(C / K)`` classes per query:

    .. math::

        m = \operatorname{relu}(x W_e^\top + b_e), \qquad
        h = \operatorname{Decoder}(Q, m) \in \mathbb{R}^{B \times K \times E}, \qquad
        \mathrm{logit}_{k g + j} = h_k^\top P_{k, :, j} + b_{k g + j},

    the flattened ``(K g)`` logits cut to the first ``C``. Each decoder layer is
    ``q = LN(q + dropout(q))`` (in place of self-attention), ``q = LN(q + MHA(q, m, m))``,
    ``q = LN(q + FFN(q))`` with a ReLU feed-forward block.

    Parameters
    ----------
    in_features : int
        Channels ``D`` of the features.
    num_classes : int
        Number of classes ``C``.
    num_groups : int, optional
        Number of queries ``K`` (at most ``C``). Default: 100, or ``C`` if fewer (the
        authors'); the number of rows of ``queries`` when given.
    embed_dim : int
        Width ``E`` of the decoder (768 in the authors' code), divisible by ``num_heads``.
    num_heads : int
        Attention heads (8).
    num_layers : int
        Decoder layers (1).
    dim_feedforward : int
        Hidden width of the feed-forward block (2048).
    dropout : float
        Dropout in the decoder (0.1).
    queries : Tensor, shape (K, D_q), optional
        Initial queries, e.g. text embeddings of the class names (``K = C``: one query per
        class). When ``D_q != embed_dim`` they pass through a learnt ``Linear(D_q, E)`` and a
        ReLU, as the authors' zero-shot head does. Default: ``N(0, 1)`` random vectors.
    learn_queries : bool
        Train the queries (``False``: fixed, as in the authors' code; a projection of given
        queries is trained either way).
    num_prefix_tokens : int
        Tokens dropped from the front of a ``(B, L, D)`` sequence (1 for a ViT's class token;
        the authors keep it). Unused for maps.

    Attributes
    ----------
    queries : nn.Parameter, shape (K, D_q)
        The queries (``requires_grad=learn_queries``).
    group_weight : nn.Parameter, shape (K, E, g)
        The group fully-connected layer; ``group_bias`` ``(C,)`` its bias.

    Notes
    -----
    Differences from the authors' code (Alibaba-MIIL/ML_Decoder, ``ml_decoder.py``): the layers
    are built here independently rather than as ``nn.TransformerDecoder`` copies of one layer
    (the same with one layer, their default); the zero-shot mode's one linear map shared by all
    queries is not offered (each query has its own group weights; with ``K = C`` text queries
    ``g = 1``); with ``num_layers > 1`` each layer has its own parameters. The arithmetic is
    theirs, including the dropout-residual in place of self-attention (in evaluation
    ``LN(2 q) = LN(q)``: the queries enter only normalised).

    Examples
    --------
    >>> import torch
    >>> from ltml import MLDecoder
    >>> _ = torch.manual_seed(0)
    >>> head = MLDecoder(64, num_classes=10, num_groups=4, embed_dim=32, num_heads=4,
    ...                  dim_feedforward=64).eval()
    >>> head.group_weight.shape  # 4 queries, ceil(10 / 4) = 3 classes each
    torch.Size([4, 32, 3])
    >>> head(torch.randn(2, 64, 7, 7)).shape, head(torch.randn(2, 50, 64)).shape
    (torch.Size([2, 10]), torch.Size([2, 10]))
    >>> text = torch.randn(10, 16)  # e.g. ltml.class_text_embeddings(names, encode)
    >>> MLDecoder(64, 10, queries=text, embed_dim=32, num_heads=4)(torch.randn(2, 49, 64)).shape
    torch.Size([2, 10])
    """

    queries: nn.Parameter

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        num_groups: int | None = None,
        embed_dim: int = 768,
        num_heads: int = 8,
        num_layers: int = 1,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        queries: Tensor | None = None,
        learn_queries: bool = False,
        num_prefix_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.num_classes = check_int(num_classes, "num_classes")
        check_int(embed_dim, "embed_dim")
        check_int(num_heads, "num_heads")
        if embed_dim % num_heads:
            raise ValueError(
                f"`embed_dim` must be divisible by num_heads={num_heads}, got {embed_dim}"
            )
        check_int(num_layers, "num_layers")
        check_int(dim_feedforward, "dim_feedforward")
        check_probability(dropout, "dropout")
        check_bool(learn_queries, "learn_queries")
        self.num_prefix_tokens = check_int(num_prefix_tokens, "num_prefix_tokens", low=0)
        if queries is not None:
            _check_queries(queries, num_groups, num_classes)
            initial = queries.detach().clone().float()
        else:
            k = min(100, num_classes) if num_groups is None else num_groups
            check_int(k, "num_groups", high=num_classes)
            initial = torch.randn(k, embed_dim)
        self.num_groups = k = initial.shape[0]
        self.group_size = math.ceil(num_classes / k)
        self.queries = nn.Parameter(initial, requires_grad=learn_queries)
        self.query_projection: nn.Module = (
            nn.Identity()
            if initial.shape[1] == embed_dim
            else nn.Sequential(nn.Linear(initial.shape[1], embed_dim), nn.ReLU())
        )
        self.embed = nn.Linear(in_features, embed_dim)
        self.layers = nn.ModuleList(
            _DecoderLayer(embed_dim, num_heads, dim_feedforward, dropout) for _ in range(num_layers)
        )
        self.group_weight = nn.Parameter(torch.empty(k, embed_dim, self.group_size))
        self.group_bias = nn.Parameter(torch.empty(num_classes))
        self._reset_group_fc()

    def _reset_group_fc(self) -> None:
        nn.init.xavier_normal_(self.group_weight)  # as the authors (fans of the 3-D tensor)
        nn.init.zeros_(self.group_bias)

    def reset_parameters(self) -> None:
        """Re-draw every learnt parameter (the queries are kept)."""
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.LayerNorm):
                m.reset_parameters()
            elif isinstance(m, nn.MultiheadAttention):
                m._reset_parameters()
        self._reset_group_fc()

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of spatial features.

        Parameters
        ----------
        x : Tensor, shape (B, D, H, W) or (B, L, D)
            A channels-first feature map, or a token sequence (channels last).

        Returns
        -------
        Tensor, shape (B, C)
            Logits.
        """
        tokens = as_tokens(x, "x", self.in_features, self.num_prefix_tokens)
        memory = F.relu(self.embed(tokens))
        q = self.query_projection(self.queries)
        q = q.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, memory)
        logits = torch.einsum("bke,keg->bkg", q, self.group_weight)
        out: Tensor = logits.flatten(1)[:, : self.num_classes] + self.group_bias
        return out

    def extra_repr(self) -> str:
        """Summary shown by ``print(head)``."""
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"num_groups={self.num_groups}, group_size={self.group_size}"
        )


def _check_queries(value: object, num_groups: int | None, num_classes: int) -> None:
    queries = check_tensor(value, "queries")
    if queries.ndim != 2 or not queries.is_floating_point():
        raise ValueError(
            f"`queries` must be a floating-point (K, D_q) matrix, got shape "
            f"{tuple(queries.shape)} and dtype {queries.dtype}"
        )
    if not 1 <= queries.shape[0] <= num_classes:
        raise ValueError(
            f"`queries` must have between 1 and num_classes={num_classes} rows, "
            f"got {queries.shape[0]}"
        )
    if num_groups is not None and num_groups != queries.shape[0]:
        raise ValueError(
            f"`num_groups` must equal the number of rows of `queries` ({queries.shape[0]}) "
            f"when both are given, got {num_groups}"
        )
