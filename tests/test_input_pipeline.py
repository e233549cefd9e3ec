"""The harness's uint8-first training input and its decoded-image cache (examples/reproduce).

The uint8 pipeline must be the float-first one with the work reordered: the same random draws
(crop box, colour factors and order, flip) for one seed, and the same images up to the uint8
rounding of the resized crop. Oracles: torchvision's own ``ColorJitter`` / ``adjust_hue`` and
the float-first transform of ``ltml_example.data.transforms``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

HARNESS = Path(__file__).resolve().parents[1] / "examples" / "reproduce"
sys.path.insert(0, str(HARNESS))

from ltml_example import resolve  # noqa: E402
from ltml_example.config import Config  # noqa: E402
from ltml_example.data import build_data, transforms  # noqa: E402
from ltml_example.pipeline import (  # noqa: E402
    JITTER,
    ColorJitter,
    DecodedImages,
    ImageCache,
    adjust_hue,
    augment_batch,
    cache_side,
    read_image,
    shrink,
    uint8_transform,
)


def _photo(h: int = 75, w: int = 100, seed: int = 0) -> np.ndarray:
    """A smooth colour image with noise: gradients, as photos have, not uniform noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / 9.0), np.cos(yy / 7.0), np.sin((xx + yy) / 11.0)], -1)
    pixels = 128 + 90 * base + rng.normal(0, 12, (h, w, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _jpeg(path: Path, h: int = 75, w: int = 100, seed: int = 0) -> Path:
    Image.fromarray(_photo(h, w, seed)).save(path, quality=92)
    return path


def test_adjust_hue_is_torchvisions() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    x[0, :, :2] = 0.5  # grey: no hue
    x[0, :, 2:4] = 0.0  # black
    x[0, 1, 4:6] = x[0, 0, 4:6]  # red and green tie for the largest
    x[1, 2, :3] = x[1, 1, :3] = 1.0  # green and blue tie at 1
    for factor in (-0.5, -0.2, -0.05, 0.0, 0.01, 0.25, 0.5):
        expected = F.adjust_hue(x, factor)
        torch.testing.assert_close(adjust_hue(x, factor), expected, atol=3e-6, rtol=0)


def test_color_jitter_draws_and_applies_as_torchvisions() -> None:
    x = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(1))
    for seed in range(5):
        torch.manual_seed(seed)
        ours = ColorJitter(**JITTER)(x)
        after = torch.get_rng_state()
        torch.manual_seed(seed)
        theirs = v2.ColorJitter(**JITTER)(x)
        assert torch.equal(after, torch.get_rng_state())  # the same draws
        torch.testing.assert_close(ours, theirs, atol=3e-6, rtol=0)


def _voc_config(size: int) -> Config:
    """A configuration whose transforms are VOC-LT's (the data root is never read here)."""
    return dataclasses.replace(resolve(["--image-size", str(size)]), dataset="voc-lt")


class _Recorder:
    """Records the parameters every random transform of a ``v2.Compose`` draws."""

    def __init__(self, compose: v2.Compose) -> None:
        self.params: list[tuple[str, dict[str, Any]]] = []
        for t in compose.transforms:
            if hasattr(t, "make_params"):
                t.make_params = self._wrap(t)

    def _wrap(self, t: Any) -> Any:
        make = type(t).make_params.__get__(t)

        def recorded(flat_inputs: list[Any]) -> dict[str, Any]:
            out: dict[str, Any] = make(flat_inputs)
            if out:  # the random transforms (ours subclasses torchvision's ColorJitter)
                name = "ColorJitter" if isinstance(t, v2.ColorJitter) else type(t).__name__
                self.params.append((name, out))
            return out

        return recorded


@pytest.mark.parametrize("seed", range(6))
def test_uint8_pipeline_draws_the_float_pipelines_parameters(seed: int) -> None:
    cfg = _voc_config(32)
    image = Image.fromarray(_photo(seed=seed))
    floats, uint8 = transforms(cfg, train=True), uint8_transform(32, cfg.hflip)
    rec_f, rec_u = _Recorder(floats), _Recorder(uint8)
    torch.manual_seed(seed)
    a = floats(image)
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    b = uint8(F.pil_to_tensor(image))
    assert torch.equal(state, torch.get_rng_state())  # flips drawn alike too
    kinds = [k for k, _ in rec_u.params]
    assert kinds == [k for k, _ in rec_f.params] == ["RandomResizedCrop", "ColorJitter"]
    for (_, p), (_, q) in zip(rec_f.params, rec_u.params, strict=True):
        assert p.keys() == q.keys()
        for key in p:
            if isinstance(p[key], torch.Tensor):
                assert torch.equal(p[key], q[key])
            else:
                assert p[key] == q[key]
    assert a.shape == b.shape == (3, 32, 32)
    assert a.dtype == b.dtype == torch.float32
    # uint8 rounding of the crop (half a level), scaled by the colour factors and 1 / std
    assert (a - b).abs().max() < 0.05
    assert (a - b).abs().mean() < 0.01


def test_uint8_pipeline_keeps_the_value_range() -> None:
    """Both pipelines map [0, 255] to the same normalised range, and fill it alike."""
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    low, high = (-mean / std).view(3, 1, 1), ((1 - mean) / std).view(3, 1, 1)
    cfg = _voc_config(24)
    floats, uint8 = transforms(cfg, train=True), uint8_transform(24, cfg.hflip)
    extremes = torch.zeros(3, 40, 50, dtype=torch.uint8)
    extremes[:, :, 25:] = 255
    outs = []
    pil = Image.fromarray(extremes.permute(1, 2, 0).numpy())
    for tf, image in ((floats, pil), (uint8, extremes)):
        torch.manual_seed(0)
        out = torch.stack([tf(image) for _ in range(30)])
        assert (out >= low - 1e-5).all()
        assert (out <= high + 1e-5).all()
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1], atol=0.05, rtol=0)


def test_read_image_decodes_as_pil(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "a.jpg")
    ours = read_image(path).to(torch.int16)
    with Image.open(path) as im:
        pil = F.pil_to_tensor(im.convert("RGB")).to(torch.int16)
    assert ours.shape == pil.shape == (3, 75, 100)
    assert (ours - pil).abs().max() <= 3  # two libjpeg builds: rounding of the IDCT only
    bmp = tmp_path / "b.bmp"  # no torchvision decoder: PIL's
    Image.fromarray(_photo(10, 12)).save(bmp)
    assert torch.equal(read_image(bmp), torch.from_numpy(_photo(10, 12)).permute(2, 0, 1))


def test_shrink_and_cache_side() -> None:
    assert cache_side(224) == 256
    assert cache_side(32) == 37
    image = torch.zeros(3, 375, 500, dtype=torch.uint8)
    assert shrink(image, 256).shape == (3, 256, 341)
    assert shrink(image[:, :100, :120], 256).shape == (3, 100, 120)  # never enlarged


def test_cache_is_bounded_and_serves_the_images(tmp_path: Path) -> None:
    paths = [_jpeg(tmp_path / f"{i}.jpg", 60, 80, seed=i) for i in range(4)]
    one = 3 * 40 * 53  # an image shrunk to a shorter side of 40
    cache = ImageCache(paths, [3, 1, 0], side=40, max_bytes=2 * one)
    assert sorted(cache.images) == [1, 3]
    assert not cache.complete
    assert cache.nbytes == 2 * one
    full = ImageCache(paths, [0, 1, 2, 3], side=40, max_bytes=10 * one)
    assert full.complete
    assert "4 of 4" in full.describe()
    labels = torch.eye(4, dtype=torch.int64)
    data = DecodedImages(paths, labels, lambda x: x, cache)
    assert torch.equal(data.image(3), shrink(read_image(paths[3]), 40))
    assert torch.equal(data.image(2), read_image(paths[2]))  # past the budget: from the file
    _image, label = data[2]
    assert label.dtype == torch.float32
    assert torch.equal(label, labels[2].float())
    assert not data.on_device(torch.device("cpu"))  # incomplete: stays per-item


def test_batches_augmented_on_the_device_match_the_per_item_transform(tmp_path: Path) -> None:
    paths = [_jpeg(tmp_path / f"{i}.jpg", 50, 70, seed=i) for i in range(3)]
    cache = ImageCache(paths, range(3), side=40, max_bytes=2**20)
    tf = uint8_transform(24, 0.5)
    data = DecodedImages(paths, torch.eye(3), tf, cache)
    torch.manual_seed(3)
    per_item = torch.stack([data[i][0] for i in (2, 0, 2)])
    assert data.on_device(torch.device("cpu"))  # the CPU stands in for the device
    index, label = data[1]
    assert index.item() == 1
    assert torch.equal(label, torch.eye(3)[1])
    torch.manual_seed(3)
    batch = augment_batch((torch.tensor([2, 0, 2]), torch.zeros(3, 3)), data)
    assert torch.equal(batch[0], per_item)
    torch.manual_seed(3)
    paired = augment_batch(((torch.tensor([2]), 0), (torch.tensor([0, 2]), 1)), data)
    assert torch.equal(torch.cat([paired[0][0], paired[1][0]]), per_item)
    assert paired[0][1] == 0
    assert paired[1][1] == 1


def _tiny_voc(root: Path) -> Path:
    from ltml.data import VOC_CLASSES

    for year, ids in (("2012", [f"2008_{i:06d}" for i in range(8)]), ("2007", ["000001"])):
        voc = root / "VOCdevkit" / f"VOC{year}"
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            (voc / sub).mkdir(parents=True)
        for k, image_id in enumerate(ids):
            _jpeg(voc / "JPEGImages" / f"{image_id}.jpg", 40, 52, seed=k)
            (voc / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><object><name>{VOC_CLASSES[k]}</name></object></annotation>"
            )
        split = "trainval" if year == "2012" else "test"
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (root / "VOCdevkit" / "longtail2012").mkdir()
    (root / "VOCdevkit" / "longtail2012" / "img_id.txt").write_text(
        "\n".join(f"2008_{i:06d}" for i in range(8)) + "\n"
    )
    return root


def test_build_data_reads_voc_through_the_pipelines(tmp_path: Path) -> None:
    root = _tiny_voc(tmp_path)
    flags = ["--dataset", "voc-lt", "--data-root", str(root), "--image-size", "16"]
    floats = build_data(resolve([*flags, "--pipeline", "float", "--val-fraction", "0.25"]))
    uint8 = build_data(resolve([*flags, "--val-fraction", "0.25"]))
    cached = build_data(resolve([*flags, "--val-fraction", "0.25", "--cache-images"]))
    assert floats.decoded is None
    assert uint8.decoded is not None
    assert uint8.decoded.cache is None
    assert cached.decoded is not None
    assert cached.decoded.cache is not None
    assert cached.decoded.cache.complete
    assert len(cached.decoded.cache.images) == len(cached.train) == 6  # the training part only
    assert torch.equal(floats.train_labels, uint8.train_labels)
    for k in range(len(uint8.train)):
        torch.manual_seed(k)
        a, y = floats.train[k]
        torch.manual_seed(k)
        b, z = uint8.train[k]
        torch.manual_seed(k)
        c, _ = cached.train[k]
        assert torch.equal(y, z)
        assert a.shape == b.shape == c.shape == (3, 16, 16)
        assert (a - b).abs().mean() < 0.05  # two JPEG decoders and the uint8 rounding apart
    # the validation part is read as before (PIL, test transform)
    torch.testing.assert_close(floats.val[0][0], uint8.val[0][0])  # type: ignore[index]
    plain = build_data(resolve(flags))
    assert plain.decoded is not None
    assert plain.decoded.cache is None
    assert len(plain.train) == 8


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cache-images", "--pipeline", "float"], "--cache-images keeps uint8 copies"),
        (["--cache-mb", "0"], "--cache-mb must be positive, got 0"),
    ],
)
def test_cache_flags_are_checked(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        resolve(flags)
    assert message in capsys.readouterr().err


def test_a_run_trains_from_the_cache(tmp_path: Path) -> None:
    """The engine with --cache-images on the CPU: the host cache, one short epoch."""
    from ltml_example import run

    root = _tiny_voc(tmp_path / "data")
    flags = ["--dataset", "voc-lt", "--data-root", str(root), "--weights", "none",
             "--arch", "resnet18", "--image-size", "32", "--batch-size", "2",
             "--iters-per-epoch", "1", "--epochs", "1", "--workers", "0", "--no-progress",
             "--no-plot", "--quiet", "--cache-images",
             "--output", str(tmp_path / "run")]  # fmt: skip
    result = run(resolve(flags))
    assert result["config"]["cache_images"] is True
    assert result["config"]["pipeline"] == "uint8"
    assert np.isfinite(result["history"][0]["loss"])
