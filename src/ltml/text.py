r"""Classifiers that start from text: class-name embeddings from any text encoder.

The strongest long-tailed multi-label results since 2023 (LMPT, DP-VLPA on VOC-LT / COCO-LT)
start from a vision-language model, whose text tower maps a class name to a point of the image
embedding space: a tail class with a handful of images starts from where its name points rather
than from noise. :func:`class_text_embeddings` builds those points with prompt templates and
ensembling (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021, Sec. 3.1.4): each template's prompts are embedded and L2-normalised, the
templates are averaged and the mean normalised again. :func:`text_classifier` turns them into a
linear classifier; :class:`~ltml.MLDecoder` takes them as queries and :class:`~ltml.CSRA` as its
weights. Any encoder works: a callable from a list of strings to a ``(n, D)`` tensor, e.g.
open_clip's ``model.encode_text`` after its tokenizer (``pip install ltml-components[clip]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ._validation import as_class_names, check_bool, check_callable, check_scalar
from ._validation.scalars import described

__all__ = ["PROMPT_TEMPLATES", "class_text_embeddings", "text_classifier"]

# A few generic photo prompts for ensembling; "{}" is replaced by the class name.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo containing a {}.",
    "a cropped photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
)


def class_text_embeddings(
    class_names: Sequence[str],
    encode: Callable[[list[str]], Tensor],
    *,
    templates: Sequence[str] = ("a photo of a {}.",),
    normalize: bool = True,
) -> Tensor:
    r"""Embed each class name with prompt templates, averaged over the templates.

    .. math::

        t_c = \frac{\bar e_c}{\lVert \bar e_c \rVert}, \qquad
        \bar e_c = \frac{1}{|P|} \sum_{p \in P} \frac{E(p(c))}{\lVert E(p(c)) \rVert},

    for the encoder ``E`` and the templates ``P`` (CLIP's prompt ensembling). With
    ``normalize=False`` the raw embeddings are averaged and not normalised.

    Parameters
    ----------
    class_names : sequence of str
        The ``C`` class names, distinct, e.g. ``ltml.data.VOC_CLASSES``.
    encode : callable
        Maps a list of ``n`` strings to an ``(n, D)`` floating-point tensor. Called once per
        template, under ``torch.no_grad()``.
    templates : sequence of str
        Prompt templates, each with one ``"{}"`` where the name goes; :data:`PROMPT_TEMPLATES`
        holds a few for ensembling.
    normalize : bool
        L2-normalise each prompt's embedding and the class mean.

    Returns
    -------
    Tensor, shape (C, D)
        One embedding per class, float32 on the encoder's device, without gradient history.

    Examples
    --------
    >>> import torch
    >>> from ltml import PROMPT_TEMPLATES, class_text_embeddings
    >>> def encode(texts):  # a stand-in encoder: any callable list[str] -> (n, D)
    ...     return torch.tensor([[float(len(t)), 1.0] for t in texts])
    >>> t = class_text_embeddings(["cat", "zebra"], encode, templates=PROMPT_TEMPLATES)
    >>> t.shape, torch.allclose(t.norm(dim=1), torch.ones(2))
    (torch.Size([2, 2]), True)
    """
    names = as_class_names(class_names, "class_names")
    check_callable(encode, "encode")
    prompts = _check_templates(templates)
    check_bool(normalize, "normalize")
    per_template = []
    with torch.no_grad():
        for template in prompts:
            embedded = encode([template.replace("{}", name) for name in names])
            if not isinstance(embedded, Tensor) or embedded.shape[:1] != (len(names),):
                shown = (
                    tuple(embedded.shape) if isinstance(embedded, Tensor) else described(embedded)
                )
                raise ValueError(
                    f"`encode` must return a ({len(names)}, D) tensor for {len(names)} "
                    f"strings, got {shown}"
                )
            if embedded.ndim != 2 or not embedded.is_floating_point():
                raise ValueError(
                    f"`encode` must return a floating-point (n, D) tensor, got shape "
                    f"{tuple(embedded.shape)} and dtype {embedded.dtype}"
                )
            e = embedded.detach().float()
            if normalize:
                e = e / e.norm(dim=1, keepdim=True)
            per_template.append(e)
    mean = torch.stack(per_template).mean(dim=0)
    return mean / mean.norm(dim=1, keepdim=True) if normalize else mean


def text_classifier(embeddings: Tensor, *, scale: float = 1.0, bias: bool = True) -> nn.Linear:
    """Build a linear classifier whose weight rows are the class embeddings (times ``scale``).

    ``logit_c = scale * t_c^T x + b_c`` with ``b = 0`` at the start: on image features from the
    same embedding space (a CLIP image tower), the zero-shot classifier; trained on, a classifier
    that starts from the class names.

    Parameters
    ----------
    embeddings : Tensor, shape (C, D)
        Class embeddings, e.g. from :func:`class_text_embeddings`.
    scale : float
        Positive factor on the weights: CLIP scores normalised features with a scale of 100
        (its learnt temperature); on unnormalised features choose it to match their norm.
    bias : bool
        Give the classifier a bias (initialised to zero).

    Returns
    -------
    nn.Linear
        ``Linear(D, C)`` on the embeddings' device and dtype (float).

    Examples
    --------
    >>> import torch
    >>> from ltml import text_classifier
    >>> t = torch.eye(3, 4)  # three classes in a 4-d embedding space
    >>> fc = text_classifier(t, scale=10.0)
    >>> fc(torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    tensor([[ 0., 10.,  0.]], grad_fn=<AddmmBackward0>)
    """
    if not isinstance(embeddings, Tensor):
        raise TypeError(f"`embeddings` must be a torch.Tensor, got {described(embeddings)}")
    if embeddings.ndim != 2 or not embeddings.is_floating_point() or 0 in embeddings.shape:
        raise ValueError(
            "`embeddings` must be a non-empty floating-point (C, D) matrix, got shape "
            f"{tuple(embeddings.shape)} and dtype {embeddings.dtype}"
        )
    factor = check_scalar(scale, "scale", low=0.0, low_open=True)
    check_bool(bias, "bias")
    num_classes, dim = embeddings.shape
    fc = nn.Linear(dim, num_classes, bias=bias, device=embeddings.device, dtype=embeddings.dtype)
    with torch.no_grad():
        fc.weight.copy_(embeddings.detach() * factor)
        if fc.bias is not None:
            fc.bias.zero_()
    return fc


def _check_templates(templates: object) -> tuple[str, ...]:
    if isinstance(templates, str) or not isinstance(templates, Sequence):
        raise TypeError(
            f"`templates` must be a sequence of strings with one '{{}}', got {described(templates)}"
        )
    values = tuple(templates)
    if not values or not all(isinstance(t, str) and t.count("{}") == 1 for t in values):
        raise ValueError(
            "`templates` must be a non-empty sequence of strings, each with one '{}' where the "
            f"class name goes, got {described(templates)}"
        )
    return values
