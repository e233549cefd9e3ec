"""The uint8-first training input (``--pipeline uint8``) and the decoded-image cache.

The float-first transform (:func:`ltml_example.data.transforms`) converts the full decoded image
to float32 before cropping; here the image stays uint8 (``torchvision.io``'s decoder) through
the random crop and its resize to ``image_size``, and becomes float only at 224 x 224. The
augmentations are the same transforms with the same parameters, drawn from the global generator
in the same order, so one seed gives the same crops, flips and colour factors in both pipelines;
the outputs differ by the uint8 rounding of the resized crop (at most half a grey level before
the colour jitter). The hue shift is :func:`adjust_hue`, a shorter computation of torchvision's
(equal to it within float rounding, and about 3x faster on the CPU).

``--cache-images`` decodes the training images once, before training, into copies whose shorter
side is :func:`cache_side` (never enlarged), up to ``--cache-mb``; the random crop is then taken
from the copy (the same region of the image, resampled from fewer pixels). On CUDA, when the
whole training set fits, the copies live on the device: the loader yields image indices and
:class:`DecodedImages.augment` crops, jitters and normalises each batch there.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

# The DB-loss recipe's augmentations, shared by both pipelines (see data.transforms).
CROP_SCALE, CROP_RATIO = (0.64, 1.0), (0.8, 1.25)
JITTER = {"brightness": 32 / 255, "contrast": 0.5, "saturation": 0.5, "hue": 0.05}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# torchvision 0.29 announces that its decoders will move to TorchCodec; until they do, they are
# the fastest here (one warning per image otherwise)
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated"
)


def adjust_hue(image: Tensor, factor: float) -> Tensor:
    """Shift the hue of float RGB images in [0, 1] by ``factor`` turns (torchvision's result).

    ``image``: ``(..., 3, H, W)``. The HSV round trip of ``F.adjust_hue`` written with fewer
    passes: the hue in sixths of a turn, then each channel as ``v - (v - min) * w`` with ``w``
    the channel's piecewise-linear weight of the shifted hue.
    """
    r, g, b = image.unbind(-3)
    high = torch.maximum(torch.maximum(r, g), b)
    chroma = high - torch.minimum(torch.minimum(r, g), b)
    # the hue in sixths of a turn times the chroma, by which channel is the largest (red first)
    is_r = high == r
    is_g = (high == g) & ~is_r
    is_b = ~(is_r | is_g)
    sixths = (g - b) * is_r + (b - r + 2 * chroma) * is_g + (r - g + 4 * chroma) * is_b
    turns = sixths / (6 * chroma.clamp_min(1e-30)) + factor  # grey pixels: 0, any hue will do
    h6 = (turns - torch.floor(turns)) * 6
    out = []
    for n in (5.0, 3.0, 1.0):  # red, green, blue
        k = h6 + n
        k = k - 6 * torch.floor(k / 6)
        out.append(high - chroma * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(out, dim=-3)


class ColorJitter(v2.ColorJitter):  # type: ignore[misc]
    """``v2.ColorJitter`` (same parameters, same order) with the hue shift of :func:`adjust_hue`."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Apply the four adjustments in the drawn order (torchvision's, hue apart)."""
        hue = params["hue_factor"]
        if hue is None or not isinstance(inpt, Tensor) or not inpt.is_floating_point():
            return super().transform(inpt, params)
        out = inpt
        for fn_id in params["fn_idx"].tolist():  # a CPU tensor: no device read
            if fn_id == 3:
                shifted = adjust_hue(out.as_subclass(Tensor), hue)
                is_image = isinstance(out, tv_tensors.Image)
                out = tv_tensors.wrap(shifted, like=out) if is_image else shifted
            else:
                one = dict(params, fn_idx=torch.tensor([fn_id]))
                out = super().transform(out, one)
        return out


def uint8_transform(image_size: int, hflip: float) -> v2.Compose:
    """Return the training transform of ``--pipeline uint8``: crop, resize, then float.

    Takes a uint8 ``(3, H, W)`` tensor (or a PIL image); returns a normalised float32
    ``(3, image_size, image_size)`` tensor.
    """
    size = (image_size, image_size)
    steps: list[Any] = [
        v2.ToImage(),
        v2.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO),
        v2.ToDtype(torch.float32, scale=True),
        ColorJitter(**JITTER),
    ]
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    steps.append(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return v2.Compose(steps)


def read_image(path: Path) -> Tensor:
    """Decode an image file to a uint8 RGB ``(3, H, W)`` tensor (torchvision; PIL for others)."""
    try:
        image: Tensor = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
        return image
    except RuntimeError:  # a format torchvision's decoders do not read (e.g. BMP, TIFF)
        with Image.open(path) as im:
            image = F.pil_to_tensor(im.convert("RGB"))
            return image


def cache_side(image_size: int) -> int:
    """Shorter side of the cached copies: ``image_size * 256 / 224`` (256 for 224)."""
    return math.ceil(image_size * 256 / 224)


def shrink(image: Tensor, side: int) -> Tensor:
    """Resize a uint8 image so that its shorter side is ``side``; a smaller one is kept as is."""
    h, w = image.shape[-2:]
    if min(h, w) <= side:
        return image
    small: Tensor = F.resize(image, [side], antialias=True)
    return small


class ImageCache:
    """Decoded, shrunk uint8 copies of some images, at most ``max_bytes`` of them.

    Parameters
    ----------
    paths : sequence of Path
        The image files, by dataset index.
    indices : sequence of int
        The indices to cache, in order, until the budget is spent.
    side : int
        Shorter side of the copies (:func:`shrink`).
    max_bytes : int
        Budget; images past it are decoded from disk at every access.
    """

    def __init__(
        self, paths: Sequence[Path], indices: Sequence[int], side: int, max_bytes: int
    ) -> None:
        self.images: dict[int, Tensor] = {}
        self.nbytes, self.side, self.wanted = 0, side, len(indices)
        for i in indices:
            image = shrink(read_image(paths[i]), side).contiguous()
            if self.nbytes + image.numel() > max_bytes:
                break
            self.images[i] = image
            self.nbytes += image.numel()

    @property
    def complete(self) -> bool:
        """Whether every index asked for was cached."""
        return len(self.images) == self.wanted

    def to(self, device: torch.device) -> ImageCache:
        """Move the copies to ``device`` (in place); return the cache."""
        self.images = {i: t.to(device) for i, t in self.images.items()}
        return self

    def describe(self) -> str:
        """One line for the start of a run."""
        return (
            f"image cache: {len(self.images)} of {self.wanted} training images decoded at "
            f"shorter side {self.side}, {self.nbytes / 2**20:.0f} MiB"
        )


class DecodedImages(Dataset[Any]):
    """A training set read as uint8 tensors: ``(transform(image), labels[i])``.

    ``paths`` and ``labels`` by dataset index; the image comes from ``cache`` when it holds it,
    else from the file. After :meth:`on_device`, items are ``(i, labels[i])`` and
    :meth:`augment` makes the images of a batch of indices on the device.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Tensor,
        transform: Callable[[Any], Tensor],
        cache: ImageCache | None = None,
    ) -> None:
        self.paths, self.labels, self.transform, self.cache = list(paths), labels, transform, cache
        self.indices_only = False

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> Tensor:
        """Return the uint8 image ``i``: the cached copy, else decoded from its file."""
        cached = None if self.cache is None else self.cache.images.get(i)
        return read_image(self.paths[i]) if cached is None else cached

    def __getitem__(self, i: int) -> tuple[Any, Tensor]:
        label = self.labels[i].to(torch.float32)
        if self.indices_only:
            return torch.tensor(i), label
        return self.transform(self.image(i)), label

    def on_device(self, device: torch.device) -> bool:
        """Keep the cache on ``device`` and yield indices, if every training image is cached."""
        if self.cache is None or not self.cache.complete:
            return False
        self.cache.to(device)
        self.indices_only = True
        return True

    def augment(self, indices: Tensor) -> Tensor:
        """Return the transformed images of a CPU batch of indices: ``(B, 3, S, S)``.

        Each image has its own crop, colour and flip, drawn on the host (no device read).
        """
        return torch.stack([self.transform(self.image(i)) for i in indices.tolist()])


def augment_batch(batch: Any, images: DecodedImages) -> Any:
    """Replace the index tensors of a loader batch (``(x, y)`` or pairs of them) by images."""
    if isinstance(batch[0], Tensor):
        return (images.augment(batch[0]), *batch[1:])
    return tuple(augment_batch(b, images) for b in batch)
