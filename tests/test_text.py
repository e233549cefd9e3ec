"""Tests for ltml.text: class-name embeddings with prompt ensembling, text-initialised heads."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import Tensor

from ltml import (
    CSRA,
    PROMPT_TEMPLATES,
    MLDecoder,
    class_text_embeddings,
    text_classifier,
)

NAMES = ["cat", "dog", "traffic light"]


class Recorder:
    """A deterministic stand-in text encoder that records what it was asked to embed."""

    def __init__(self, dim: int = 5) -> None:
        self.calls: list[list[str]] = []
        self.dim = dim

    def __call__(self, texts: list[str]) -> Tensor:
        self.calls.append(list(texts))
        rows = []
        for t in texts:
            g = torch.Generator().manual_seed(sum(ord(ch) * (i + 1) for i, ch in enumerate(t)))
            rows.append(torch.randn(self.dim, generator=g) * (1 + len(t)))
        return torch.stack(rows)


def test_embeddings_are_the_normalised_mean_of_normalised_prompts():
    encode = Recorder()
    templates = ("a photo of a {}.", "a {} in the wild.")
    got = class_text_embeddings(NAMES, encode, templates=templates)
    assert encode.calls == [[t.replace("{}", n) for n in NAMES] for t in templates]
    for c, name in enumerate(NAMES):
        prompts = [encode([t.replace("{}", name)])[0] for t in templates]
        unit = [p / p.norm() for p in prompts]
        mean = sum(unit) / len(unit)
        torch.testing.assert_close(got[c], mean / mean.norm())


def test_without_normalisation_the_raw_mean():
    encode = Recorder()
    got = class_text_embeddings(NAMES, encode, templates=PROMPT_TEMPLATES, normalize=False)
    raw = torch.stack([encode([t.replace("{}", n) for n in NAMES]) for t in PROMPT_TEMPLATES])
    torch.testing.assert_close(got, raw.mean(dim=0))
    assert not got.requires_grad


def test_encoder_outputs_are_checked():
    with pytest.raises(ValueError, match=r"`encode` must return a \(3, D\) tensor"):
        class_text_embeddings(NAMES, lambda texts: torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"`encode` must return a \(3, D\) tensor"):
        class_text_embeddings(NAMES, lambda texts: [[0.0]] * 3)
    with pytest.raises(ValueError, match="`encode` must return a floating-point"):
        class_text_embeddings(NAMES, lambda texts: torch.zeros(3, 4, dtype=torch.long))


@pytest.mark.parametrize("templates", [(), "a photo of a {}.", ("no slot",), ("two {} {}",), (3,)])
def test_bad_templates_are_named(templates):
    with pytest.raises((ValueError, TypeError), match="`templates` must be"):
        class_text_embeddings(NAMES, Recorder(), templates=templates)


def test_text_classifier_scores_are_scaled_cosines_on_unit_features():
    t = class_text_embeddings(NAMES, Recorder())
    fc = text_classifier(t, scale=100.0)
    x = torch.randn(4, 5)
    x = x / x.norm(dim=1, keepdim=True)
    torch.testing.assert_close(fc(x), 100.0 * x @ t.T)
    assert text_classifier(t, bias=False).bias is None


def test_text_initialised_attention_heads():
    t = class_text_embeddings(NAMES, Recorder(dim=8))
    decoder = MLDecoder(8, 3, queries=t, embed_dim=8, num_heads=2, learn_queries=True)
    torch.testing.assert_close(decoder.queries.detach(), t)
    assert decoder(torch.randn(2, 4, 8)).shape == (2, 3)
    csra = CSRA(8, 3, temperatures=(1.0, 2.0))
    with torch.no_grad():
        csra.weight.copy_(t.expand_as(csra.weight))
    x = torch.randn(2, 8, 1, 1)  # one position: each head scores cos-like x . t_c
    torch.testing.assert_close(csra(x), 2 * 1.1 * x.flatten(1) @ t.T)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("open_clip") is None,
    reason="open_clip is an optional extra (pip install ltml-components[clip])",
)
def test_open_clip_text_tower_with_random_weights():
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("RN50", pretrained=None).eval()  # no download
    tokenizer = open_clip.get_tokenizer("RN50")
    t = class_text_embeddings(
        NAMES, lambda texts: model.encode_text(tokenizer(texts)), templates=PROMPT_TEMPLATES[:2]
    )
    assert t.shape == (3, model.text_projection.shape[1])
    torch.testing.assert_close(t.norm(dim=1), torch.ones(3))
    with torch.no_grad():
        image = model.encode_image(torch.randn(2, 3, 224, 224))
    fc = text_classifier(t, scale=100.0)
    assert fc(image / image.norm(dim=1, keepdim=True)).shape == (2, 3)
