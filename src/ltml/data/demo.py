"""An embedded long-tailed multi-label demo dataset: mosaics of real handwritten digits.

No download: the tiles are scikit-learn's ``load_digits`` (1,797 real 8x8 handwritten digits).
By default each image is a 2x2 grid of 16x16 cells (the digits upscaled; 32x32 pixels, 3 channels
so that ResNet trunks take it) holding distinct digits in random cells, with a random colour per
tile and Gaussian noise; its labels are the digits present. Glyphs this large are learnt by a
from-scratch ResNet-18 in a few hundred steps, so that the few tail images, not feature learning,
limit the tail AP (a 4x4 grid of 8x8 cells, ``grid=4, cell=8``, is much harder).

The training set is long-tailed as VOC-LT is: digit ``d`` appears in exactly
``pareto_quotas(10, max_count)[d]`` images (800, 344, 162, 82, 45, 25, 15, 10, 6, 4 by default:
digit 0 is the most frequent, 9 the rarest), which gives 3 head / 3 medium / 4 tail digits under
the default thresholds (20, 100) of :func:`~ltml.data.class_groups`, as VOC-LT's 6 / 6 / 8 of 20
classes. The digits of an image are otherwise independent. The test set
is balanced: 1 to 3 distinct digits per image, drawn uniformly.

Train and test never share a tile: for each digit, the first half of its ``load_digits`` images
(in the library's order) feeds training mosaics and the second half test mosaics. That split is
fixed, not seeded, so any seeds give disjoint sources.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._validation import (
    as_labels,
    check_callable,
    check_choice,
    check_floating,
    check_int,
    check_scalar,
    check_seed,
    check_tensor,
)
from .longtail import pareto_quotas

NUM_DIGITS = 10
MAX_DIGITS = 3  # test images hold 1, 2 or 3 digits, equally likely


class DemoMosaics(Dataset[tuple[Any, Tensor]]):
    """Rendered digit mosaics held in memory; built by :func:`make_demo`.

    Attributes
    ----------
    images : Tensor, shape (N, 3, 32, 32), float32
        Pixel values in [0, 1].
    labels : Tensor, shape (N, 10), int64
        ``labels[i, d] == 1`` when digit ``d`` appears in image ``i``.
    classes : tuple of str
        ``("0", ..., "9")``.
    source_indices : Tensor, int64
        The ``load_digits`` images used as tiles (sorted, unique).

    Examples
    --------
    >>> from ltml.data import make_demo
    >>> train = make_demo("train", seed=0)
    >>> image, label = train[0]
    >>> tuple(image.shape), tuple(train.labels.shape), train.classes[:3]
    ((3, 32, 32), (1104, 10), ('0', '1', '2'))
    """

    classes: tuple[str, ...] = tuple(str(d) for d in range(NUM_DIGITS))

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        source_indices: Tensor,
        transform: Callable[[Tensor], Any] | None = None,
    ) -> None:
        images = check_tensor(images, "images")
        check_floating(images, "images")
        labels = as_labels(labels, "labels", NUM_DIGITS)
        if images.ndim != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                "`images` must be (N, channels, height, width) with one image per row of "
                f"`labels`, got shapes {tuple(images.shape)} and {tuple(labels.shape)}"
            )
        check_callable(transform, "transform", optional=True)
        self.images = images
        self.labels = labels
        self.source_indices = source_indices
        self.transform = transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, Tensor]:
        image: Any = self.images[i]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i].to(torch.float32)


def make_demo(
    split: Literal["train", "test"] = "train",
    seed: int = 0,
    *,
    max_count: int = 800,
    num_test: int = 1000,
    grid: int = 2,
    cell: int = 16,
    noise: float = 0.05,
    transform: Callable[[Tensor], Any] | None = None,
) -> DemoMosaics:
    """Build the long-tailed digit-mosaic training set or its balanced test set.

    Parameters
    ----------
    split : {"train", "test"}
        ``"train"``: long-tailed (about 1,100 images with the defaults, digit counts 800 down to
        4). ``"test"``: ``num_test`` balanced images from held-out tiles.
    seed : int
        Everything (pool, selection, cells, tiles, colours, noise) follows from ``(split, seed)``.
    max_count : int
        Quota of the most frequent digit (:func:`~ltml.data.pareto_quotas` with 10 classes); the
        default gives 3 / 3 / 4 head / medium / tail digits at thresholds (20, 100). Scale the
        thresholds with it if you change it.
    num_test : int
        Number of test images.
    grid : int
        Cells per side of an image; at least 2, so that a test image has room for its 3 digits.
        Training images never hold more than ``grid ** 2`` digits.
    cell : int
        Side of a cell in pixels: the 8x8 ``load_digits`` tiles are resized to it (bilinear).
        Images are ``grid * cell`` pixels square.
    noise : float
        Standard deviation of the Gaussian pixel noise (values are clipped to [0, 1]).
    transform : callable, optional
        Applied to the image tensor in ``__getitem__``.

    Returns
    -------
    DemoMosaics
        A dataset of ``(image (3, 32, 32) float32, label (10,) float32)``.

    Raises
    ------
    ImportError
        scikit-learn is missing (``pip install ltml-components[examples]``).

    Examples
    --------
    >>> from ltml.data import make_demo
    >>> test = make_demo("test", num_test=8)
    >>> image, label = test[0]
    >>> image.shape, label.shape
    (torch.Size([3, 32, 32]), torch.Size([10]))
    >>> small = make_demo("train", max_count=50)
    >>> small.labels.sum(0).tolist()
    [50, 22, 10, 6, 3, 2, 1, 1, 1, 1]
    """
    check_choice(split, "split", ("train", "test"))
    seed = check_seed(seed)
    check_int(max_count, "max_count")
    check_int(num_test, "num_test")
    check_int(grid, "grid", low=2)
    check_int(cell, "cell")
    check_scalar(noise, "noise", low=0.0)
    check_callable(transform, "transform", optional=True)
    digits, targets = _load_digits(cell)
    sources = _source_split(targets)[0 if split == "train" else 1]
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    if split == "train":
        labels = _long_tailed_labels(rng, pareto_quotas(NUM_DIGITS, max_count).numpy(), grid * grid)
    else:
        labels = _random_labels(rng, num_test)
    images, used = _render(rng, labels, digits, sources, grid, noise)
    return DemoMosaics(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        torch.from_numpy(np.unique(used)),
        transform,
    )


def _load_digits(cell: int) -> tuple[np.ndarray, np.ndarray]:
    """load_digits images in [0, 1] resized to (1797, cell, cell), and their digits (1797,)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "the demo dataset needs scikit-learn (its embedded load_digits images): "
            "pip install ltml-components[examples]"
        ) from None
    bunch = load_digits()
    images = torch.from_numpy(bunch.images / 16.0).to(torch.float32)
    if cell != images.shape[-1]:
        # bilinear weights are convex: values stay in [0, 1] (and _render clips its output)
        images = torch.nn.functional.interpolate(
            images[:, None], size=(cell, cell), mode="bilinear", align_corners=False
        )[:, 0]
    return images.numpy(), bunch.target.astype(np.int64)


def _source_split(targets: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per digit, the first half of its images (library order) for train, the rest for test."""
    train, test = [], []
    for d in range(NUM_DIGITS):
        idx = np.flatnonzero(targets == d)
        half = len(idx) // 2
        train.append(idx[:half])
        test.append(idx[half:])
    return train, test


def _long_tailed_labels(rng: np.random.Generator, quotas: np.ndarray, room: int) -> np.ndarray:
    """Rows in which digit ``d`` is present exactly ``quotas[d]`` times, at most ``room`` a row.

    Each digit goes into ``quotas[d]`` of ``2 * quotas.max()`` slots drawn without replacement
    among the slots not yet full, otherwise independently of the other digits; empty slots are
    dropped, which leaves the counts exact. Free slots never run out: at most
    ``quotas.sum() / room`` slots are full, so ``quotas.max()`` more than that suffice (more
    slots only where tiny quotas would need them).
    """
    top = int(quotas.max())
    slots = max(2 * top, top + -(-int(quotas.sum()) // room))
    labels = np.zeros((slots, NUM_DIGITS), dtype=np.int64)
    for d, q in enumerate(quotas):
        free = np.flatnonzero(labels.sum(axis=1) < room)
        labels[rng.choice(free, size=int(q), replace=False), d] = 1
    return labels[labels.any(axis=1)]


def _random_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` label rows, each with 1 to MAX_DIGITS distinct digits, uniformly."""
    k = rng.integers(1, MAX_DIGITS + 1, size=n)
    order = np.argsort(rng.random((n, NUM_DIGITS)), axis=1)  # a random permutation per row
    labels = np.zeros((n, NUM_DIGITS), dtype=np.int64)
    rows = np.repeat(np.arange(n), k)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(k) - k, k)  # 0..k-1 within each row
    cols = order[rows, slot]
    labels[rows, cols] = 1
    return labels


def _render(
    rng: np.random.Generator,
    labels: np.ndarray,
    digits: np.ndarray,
    sources: list[np.ndarray],
    grid: int,
    noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw each row's digits in distinct random cells; return images and the tiles used."""
    n = labels.shape[0]
    cell = digits.shape[-1]
    size = grid * cell
    images = rng.normal(0.0, noise, size=(n, 3, size, size)).astype(np.float32)
    used = []
    for i in range(n):
        present = np.flatnonzero(labels[i])
        cells = rng.choice(grid * grid, size=len(present), replace=False)
        for d, where in zip(present, cells, strict=True):
            tile = rng.choice(sources[d])
            colour = rng.uniform(0.5, 1.0, size=(3, 1, 1)).astype(np.float32)
            r, c = divmod(int(where), grid)
            images[i, :, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] += (
                colour * digits[tile]
            )
            used.append(tile)
    return np.clip(images, 0.0, 1.0), np.asarray(used, dtype=np.int64)
