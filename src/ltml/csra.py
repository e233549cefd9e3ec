r"""Class-specific residual attention (CSRA): a classifier that attends where each class scores.

Zhu & Wu, "Residual Attention: A Simple but Effective Method for Multi-Label Recognition",
ICCV 2021 (code: Kevinz-code/CSRA; also mmpretrain's ``CSRAClsHead``). On the spatial features of
an image, each class ``c`` scores every position ``l`` with its classifier ``m_c``; a softmax of
those scores at temperature ``T`` gives the class its own spatial attention, and the attended
score is added to the average-pooled one (the residual):

.. math::

    s_{l c} = \frac{x_l^\top m_c}{\lVert m_c \rVert}, \qquad
    \mathrm{logit}_c = \frac{1}{L} \sum_l s_{l c}
        + \lambda \sum_l \operatorname{softmax}_l(T\, s_{\cdot c})_l \, s_{l c}.

``T = inf`` is max pooling over positions. Several heads, each with its own classifier and
temperature, are summed. :class:`CSRA` reads CNN maps ``(B, D, H, W)`` and ViT / Swin token
sequences ``(B, L, D)``, and can end a branch of a :class:`~ltml.DualBranchHead`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._validation import as_tokens, check_bool, check_int, check_scalar
from ._validation.scalars import described, is_real

__all__ = ["CSRA", "CSRA_TEMPERATURES"]

# The authors' temperatures for 1, 2, 4, 6 and 8 heads (their ``MHA.temp_settings``, with their
# 99 for max pooling written as infinity).
CSRA_TEMPERATURES: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (1.0, math.inf),
    4: (1.0, 2.0, 4.0, math.inf),
    6: (1.0, 2.0, 3.0, 4.0, 5.0, math.inf),
    8: (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, math.inf),
}


class CSRA(nn.Module):
    r"""Class-specific residual attention head: average pooling plus per-class spatial attention.

    For features ``x`` with ``L`` spatial positions and each head ``h`` (temperature ``T_h``,
    classifier ``W_h`` of shape ``(C, D)``, no bias):

    .. math::

        s^h_{l c} = \frac{x_l^\top W_{h, c}}{\lVert W_{h, c} \rVert}, \quad
        a^h_c = \begin{cases} \sum_l \operatorname{softmax}_l(T_h s^h_{\cdot c})_l\, s^h_{l c}
            & T_h < \infty \\ \max_l s^h_{l c} & T_h = \infty \end{cases}, \quad
        \mathrm{logit}_c = \sum_h \Big( \frac{1}{L} \sum_l s^h_{l c} + \lambda a^h_c \Big).

    As in Zhu & Wu (ICCV 2021), Eq. 1-6 and their released code: the attended score equals the
    class's classifier applied to its attention-weighted feature (the classifier is linear), and
    every head adds its own average-pooled score.

    Parameters
    ----------
    in_features : int
        Channels ``D`` of the features.
    num_classes : int
        Number of classes ``C``.
    temperatures : sequence of float
        One positive temperature per head, ``math.inf`` for max pooling. The authors' settings
        for 1, 2, 4, 6, 8 heads are :data:`CSRA_TEMPERATURES`, e.g. ``(1.0, math.inf)``.
    lam : float
        Weight ``lambda`` of the attended score (>= 0). The authors' default is 0.1 for ResNets
        (0.3 for ViT in their model builders); 0 gives average pooling with a normalised linear
        classifier.
    normalize : bool
        Divide each class's score by the norm of its weight row, as the authors' code does (the
        paper's equations do not); ``False`` uses the raw ``x^T W``.
    num_prefix_tokens : int
        Tokens dropped from the front of a ``(B, L, D)`` sequence before pooling: 1 for a ViT's
        class token, as the authors' ViT model does. Unused for maps.

    Attributes
    ----------
    weight : nn.Parameter, shape (H, C, D)
        The classifier of each head. For a text-initialised head, copy class embeddings into it
        (see :func:`~ltml.class_text_embeddings`).

    Notes
    -----
    Differences from the authors' code (Kevinz-code/CSRA, ``pipeline/csra.py``): max pooling is
    ``math.inf`` rather than their temperature 99; any temperatures may be given (theirs come from
    a table by head count, :data:`CSRA_TEMPERATURES`); the weight rows are normalised before the
    product rather than the scores divided after it (equal up to rounding); the heads' weights
    are one ``(H, C, D)`` parameter rather than ``1x1`` convolutions (the same initialisation,
    uniform in ``±1/sqrt(D)``). They train the head with a learning rate 10x the backbone's.

    Examples
    --------
    >>> import math, torch
    >>> from ltml import CSRA
    >>> _ = torch.manual_seed(0)
    >>> head = CSRA(in_features=64, num_classes=20, temperatures=(1.0, math.inf), lam=0.1)
    >>> head(torch.randn(2, 64, 7, 7)).shape  # a ResNet's (B, D, H, W) map
    torch.Size([2, 20])
    >>> head(torch.randn(2, 50, 64)).shape  # or a ViT / Swin (B, L, D) token sequence
    torch.Size([2, 20])
    >>> one = torch.randn(1, 64)  # one position: attention and average pooling agree
    >>> w = head.weight / head.weight.norm(dim=-1, keepdim=True)  # (H, C, D), rows normalised
    >>> expected = (1 + 0.1) * (one @ w.transpose(1, 2)).sum(dim=0)  # both heads: (1 + lam) s
    >>> torch.allclose(head(one[:, :, None, None]), expected, atol=1e-6)
    True
    """

    weight: nn.Parameter

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        temperatures: Sequence[float] = (1.0,),
        lam: float = 0.1,
        normalize: bool = True,
        num_prefix_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.num_classes = check_int(num_classes, "num_classes")
        self.temperatures = _check_temperatures(temperatures)
        self.lam = check_scalar(lam, "lam", low=0.0)
        self.normalize = check_bool(normalize, "normalize")
        self.num_prefix_tokens = check_int(num_prefix_tokens, "num_prefix_tokens", low=0)
        shape = (len(self.temperatures), num_classes, in_features)
        self.weight = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight uniformly in ``±1/sqrt(D)`` (PyTorch's default for a 1x1 conv)."""
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)

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
        weight = self.weight
        if self.normalize:
            weight = weight / weight.norm(dim=-1, keepdim=True)
        scores = torch.einsum("bld,hcd->bhcl", tokens, weight)  # (B, H, C, L)
        logits = scores.mean(dim=-1).sum(dim=1)
        if self.lam == 0:
            return logits
        for h, temperature in enumerate(self.temperatures):
            s = scores[:, h]
            if math.isinf(temperature):
                attended = s.amax(dim=-1)
            else:
                attended = (torch.softmax(s * temperature, dim=-1) * s).sum(dim=-1)
            logits = logits + self.lam * attended
        return logits

    def extra_repr(self) -> str:
        """Summary shown by ``print(head)``."""
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"temperatures={self.temperatures}, lam={self.lam}, normalize={self.normalize}"
        )


def _check_temperatures(temperatures: object) -> tuple[float, ...]:
    if isinstance(temperatures, str) or not isinstance(temperatures, Sequence):
        raise TypeError(
            "`temperatures` must be a sequence of positive numbers (math.inf for max pooling), "
            f"got {described(temperatures)}"
        )
    values = tuple(temperatures)
    if not values or not all(is_real(t) and float(t) > 0 for t in values):
        raise ValueError(
            "`temperatures` must be a non-empty sequence of positive numbers (math.inf for max "
            f"pooling), got {described(temperatures)}"
        )
    return tuple(float(t) for t in values)
