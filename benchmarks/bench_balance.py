"""Benchmark: how balanced each multi-label sampler is, what it costs in images, and fit times.

For class-aware sampling (`ClassAwareSampler`, power 0 and 0.5), the naive per-image weight (the
mean of 1 / n_k over the image's classes, as one would give `WeightedRandomSampler`) and the
fitted `BalancedSampler` (smallest band, and the looser bands of `--ratios`), from each sampler's
exact image probabilities p_i:

- share of positive draws s_k = sum_i p_i y_ik / sum_i p_i |y_i|, as max and min over the ideal
  1 / C;
- the largest class's positives per draw over 1 / C (the share times E|y|: it counts co-labels
  too, class-aware sampling's "4.3x" on NIH);
- the images with a finding that can be drawn at all (p_i > 0), the expected number of distinct
  ones drawn in an epoch of N draws (sum_i 1 - (1 - p_i)^N), and the largest p_i over uniform;
- the fit time (construction of the sampler, best of --repeats; one run on the synthetic set),
  wall clock or, with --clock cpu, this process's CPU time.

Label sets: NIH ChestX-ray14 (112,120 x 14), VOC-LT (1,142 x 20), COCO-LT (1,909 x 80) from
--shared-data (a set whose file is absent is skipped with the reason), and a synthetic
long-tailed set of --size images x 1,000 classes (as in bench_samplers.py).

Run from the repository root:

    PYTHONPATH=src python benchmarks/bench_balance.py [--shared-data ../shared/data] [--clock cpu]
"""

from __future__ import annotations

import argparse
import gzip
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench_samplers import synthetic
from ltml import BalancedSampler

REPO = Path(__file__).resolve().parents[1]


def load(folder: Path, name: str) -> np.ndarray | None:
    """Load a real label set as a dense 0 / 1 matrix; None (saying why) when it is absent."""
    if name == "nih_cxr14":
        path = folder / name / "labels.tsv.gz"
        if not path.is_file():
            print(f"skipping {name}: {path} not found")
            return None
        with gzip.open(path, "rt") as table:
            return np.loadtxt(table, delimiter="\t", skiprows=1, usecols=range(2, 16), dtype=int)
    path = folder / name / "train_labels.tsv"
    if not path.is_file():
        print(f"skipping {name}: {path} not found")
        return None
    return np.loadtxt(path, delimiter="\t", skiprows=1, dtype=str)[:, 1:].astype(np.int64)


def class_aware(
    images: np.ndarray, classes: np.ndarray, n: np.ndarray, power: float, num_images: int
) -> np.ndarray:
    """Image probabilities of class-aware sampling: sum over i's classes of P(k) / n_k."""
    p_class = np.where(n > 0, np.maximum(n, 1.0) ** power, 0.0)
    p_class /= p_class.sum()
    per_label = np.where(n > 0, p_class / np.maximum(n, 1.0), 0.0)
    return np.bincount(images, per_label[classes], num_images)


def report(
    name: str,
    label: str,
    p: np.ndarray,
    images: np.ndarray,
    classes: np.ndarray,
    seconds: float | None = None,
) -> str:
    num_images, num_classes = p.size, int(classes.max()) + 1
    drawn = np.bincount(classes, p[images], num_classes)
    active = np.bincount(classes, minlength=num_classes) > 0
    share = drawn[active] / drawn.sum() * active.sum()
    finding = np.bincount(images, minlength=num_images) > 0
    pf = p[finding]
    distinct = -np.expm1(num_images * np.log1p(-pf)).sum()
    return (
        f"| {name} | {label} | {share.max():.2f} | {share.min():.3f}"
        f" | {drawn.max() * active.sum():.2f} | {(pf > 0).mean():.1%}"
        f" | {distinct / finding.sum():.1%} | {pf.max() * finding.sum():.1f}"
        f" | {'-' if seconds is None else f'{seconds * 1e3:,.0f}'} |"
    )


def fitted(
    labels: Any, num_classes: int, repeats: int, clock: Any, **kwargs: Any
) -> tuple[BalancedSampler, float]:
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # classes without positive, unreachable bands
            if isinstance(labels, np.ndarray):
                sampler = BalancedSampler(labels, num_classes=num_classes, **kwargs)
            else:
                sampler = BalancedSampler.from_class_lists(
                    labels, num_classes=num_classes, **kwargs
                )
        best = min(best, clock() - start)
    return sampler, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--size", type=int, default=1_000_000, help="synthetic N (C = 1000)")
    parser.add_argument("--ratios", default="1.25,1.5,3", help="looser bands to fit too")
    parser.add_argument("--repeats", type=int, default=3, help="fit time: best of this many")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="cpu: this process's CPU time"
    )
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    sets: list[tuple[str, Any, int]] = []
    for name, title in (("nih_cxr14", "NIH"), ("voc_lt", "VOC-LT"), ("coco_lt", "COCO-LT")):
        dense = load(args.shared_data, name)
        if dense is not None:
            sets.append((title, dense, dense.shape[1]))
    sets.append(("synthetic", synthetic(args.size, 1000), 1000))

    print(
        "| labels | sampler | max share | min share | max / draw | drawable"
        " | distinct / epoch | max p / u | fit ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for title, labels, num_classes in sets:
        repeats = 1 if title.startswith("synthetic") else args.repeats  # a fit takes seconds
        if isinstance(labels, np.ndarray):
            images, classes = np.nonzero(labels == 1)
            num_images = labels.shape[0]
        else:
            indptr, classes = labels
            num_images = indptr.size - 1
            images = np.repeat(np.arange(num_images), np.diff(indptr))
        n = np.bincount(classes, minlength=num_classes).astype(np.float64)
        for power in (0.0, 0.5):
            p = class_aware(images, classes, n, power, num_images)
            print(report(title, f"class-aware {power:g}", p, images, classes))
        sizes = np.bincount(images, minlength=num_images)
        naive = np.bincount(images, 1 / n[classes], num_images) / np.maximum(sizes, 1)
        print(report(title, "naive 1 / n_k", naive / naive.sum(), images, classes))
        sampler, seconds = fitted(labels, num_classes, repeats, clock)
        smallest = sampler.ratio
        p = sampler.weights.numpy()
        print(report(title, "fitted", p, images, classes, seconds))
        for ratio in (float(r) for r in args.ratios.split(",")):
            if ratio <= smallest:
                print(f"| {title} | max_ratio {ratio:g}: out of reach | | | | | | | |")
                continue
            sampler, seconds = fitted(labels, num_classes, repeats, clock, max_ratio=ratio)
            p = sampler.weights.numpy()
            print(report(title, f"max_ratio {ratio:g}", p, images, classes, seconds))
        sampler, seconds = fitted(labels, num_classes, repeats, clock, max_weight=10.0)
        p = sampler.weights.numpy()
        print(report(title, "max_weight 10", p, images, classes, seconds), flush=True)


if __name__ == "__main__":
    main()
