"""Training-input throughput of the harness's pipelines, per CPU core, on VOC-sized JPEGs.

Writes synthetic photos (500 x 375, smooth colour gradients with noise, JPEG quality 90) and
runs each training transform of examples/reproduce on them in one thread, the way one loader
worker does: CPU time per image (``time.process_time``, what a loaded shared machine does not
distort) and the wall time beside it.

- ``float``: the float-first pipeline (PIL decode, float32 at full size, crop, jitter, flip),
- ``uint8 (torchvision hue)``: decode to uint8, crop + resize, then float, with torchvision's
  ``ColorJitter``, to show what the reordering alone gains,
- ``uint8``: ``--pipeline uint8`` (the same, with the faster hue shift),
- ``uint8 + cache``: ``--cache-images``: the same transform on decoded copies shrunk to a
  shorter side of 256.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_input.py [--images 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "reproduce"))

from ltml_example import resolve
from ltml_example.data import transforms
from ltml_example.pipeline import (
    CROP_RATIO,
    CROP_SCALE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    JITTER,
    cache_side,
    read_image,
    shrink,
    uint8_transform,
)


def synthetic_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Write ``count`` VOC-sized photos-like JPEGs (500 x 375) into ``folder``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:375, 0:500]
    paths = []
    for k in range(count):
        f = rng.uniform(5, 40, 3)
        base = np.stack(
            [np.sin(xx / f[0] + k), np.cos(yy / f[1]), np.sin((xx + yy) / f[2])], axis=-1
        )
        pixels = 128 + 80 * base + rng.normal(0, 15, (375, 500, 3))
        path = folder / f"{k:05d}.jpg"
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def pil_rgb(path: Path) -> Image.Image:
    """Decode as the library's datasets do (PIL, RGB, file closed)."""
    with Image.open(path) as im:
        return im.convert("RGB")


def measure(items: list[Any], work: Callable[[Any], Any], repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` (CPU ms, wall ms) per item of ``work`` over ``items``."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        for item in items:
            work(item)
        cpu.append((time.process_time() - c0) * 1e3 / len(items))
        wall.append((time.perf_counter() - w0) * 1e3 / len(items))
    return min(cpu), min(wall)


def pipelines(image_size: int, paths: list[Path]) -> dict[str, tuple[list[Any], Callable]]:
    """Name -> (inputs, what one loader worker does per input)."""
    cfg = dataclasses.replace(resolve(["--image-size", str(image_size)]), dataset="voc-lt")
    floats = transforms(cfg, train=True)
    uint8 = uint8_transform(image_size, cfg.hflip)
    size = (image_size, image_size)
    torchvision_hue = v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO),
            v2.ToDtype(torch.float32, scale=True),
            v2.ColorJitter(**JITTER),
            v2.RandomHorizontalFlip(cfg.hflip),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    side = cache_side(image_size)
    cached = [shrink(read_image(p), side).contiguous() for p in paths]
    return {
        "float (PIL, float32 first)": (paths, lambda p: floats(pil_rgb(p))),
        "uint8, torchvision hue": (paths, lambda p: torchvision_hue(read_image(p))),
        "uint8 (--pipeline uint8)": (paths, lambda p: uint8(read_image(p))),
        f"uint8 + cache ({side} px copies)": (cached, uint8),
        "decode only (torchvision)": (paths, read_image),
        "decode only (PIL)": (paths, pil_rgb),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = synthetic_jpegs(Path(tmp), args.images)
        rows = pipelines(args.image_size, paths)
        base = None
        print(f"{args.images} JPEGs 500x375 -> {args.image_size}px, one thread, best of "
              f"{args.repeats}")  # fmt: skip
        print("| pipeline | CPU ms / image | images/s per core | vs float | wall ms / image |")
        print("|---|---:|---:|---:|---:|")
        for name, (items, work) in rows.items():
            cpu, wall = measure(items, work, args.repeats)
            base = base or cpu
            print(f"| {name} | {cpu:.2f} | {1e3 / cpu:.0f} | {base / cpu:.2f}x | {wall:.2f} |")


if __name__ == "__main__":
    main()
