"""Benchmark: stratified_split against a random split and the iterative-stratification package.

Splits the real VOC-LT (1,142 x 20) and COCO-LT (1,909 x 80) training labels and synthetic
long-tailed sets (about 3 labels per image, Zipf 1.2 class popularity; the same generator as
bench_samplers.py) into train / test = 0.8 / 0.2, and also train / val / test = 0.7 / 0.1 / 0.2
where the package (two parts only) does not apply. Measured per method: time (best of
``--repeats``; labels as a dense int8 matrix), the mean over classes and parts of
``|share of the class's positives in the part - the part's fraction|`` (split_deviation), its
largest value over the classes with at least 20 positives, and the classes (among those with at
least as many positives as parts) missing from some part. The random split is averaged over 10
seeds. The package (``pip install iterative-stratification``, import ``iterstrat``) runs on the
sets of at most ``--package-max`` images (100,000 by default).

Run from the repository root:

    PYTHONPATH=src python benchmarks/bench_split.py [--repeats 3] [--size 1000000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from bench_samplers import load_real, synthetic
from ltml.data import split_deviation, stratified_split


def dense(indptr: np.ndarray, classes: np.ndarray, c: int) -> np.ndarray:
    labels = np.zeros((indptr.size - 1, c), dtype=np.int8)
    labels[np.repeat(np.arange(indptr.size - 1), np.diff(indptr)), classes] = 1
    return labels


def random_split(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return np.split(order, np.round(np.cumsum(fractions)[:-1] * n).astype(int))


def package_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(
        n_splits=1, test_size=fractions[1], random_state=seed
    )
    x = np.zeros((len(labels), 1))
    train, test = next(splitter.split(x, (labels == 1).astype(np.int64)))
    return [train, test]


def quality(labels: np.ndarray, parts: Sequence[Any], fractions: Sequence[float]) -> np.ndarray:
    """(mean |deviation|, max |deviation| over classes with >= 20 positives, classes missing)."""
    dev = split_deviation(labels, [torch.as_tensor(p) for p in parts], fractions).abs().numpy()
    counts = (labels == 1).sum(0)
    per_part = np.stack([(labels[np.asarray(p)] == 1).sum(0) for p in parts])
    missing = ((per_part == 0) & (counts >= len(parts))).any(axis=0).sum()
    frequent = counts >= 20
    largest = dev[frequent].max() if frequent.any() else np.nan
    return np.array([np.nanmean(dev), largest, missing])


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=1_000_000, help="largest synthetic N")
    parser.add_argument(
        "--package-max", type=int, default=100_000, help="largest N given to iterstrat"
    )
    args = parser.parse_args()
    try:
        import iterstrat.ml_stratifiers  # noqa: F401  (imported here, not in the timings)

        have_package = True
    except ImportError:
        print("iterative-stratification is not installed: its rows are skipped")
        have_package = False

    cases: list[tuple[str, np.ndarray]] = []
    for name in ("voc_lt", "coco_lt"):
        real = load_real(name)
        if real is not None:
            cases.append((name, real))
    for n, c in ((20_000, 200), (100_000, 1000), (args.size, 1000)):
        cases.append((f"synthetic {n:,} x {c}", dense(*synthetic(n, c), c)))

    print(f"torch {torch.__version__}, numpy {np.__version__}; time: best of {args.repeats}")
    head = f"{'labels':>22} | {'parts':>11} | {'method':>9} | {'time':>9} | "
    print(head + "mean |dev| | max |dev| n>=20 | missing")
    print("-" * (len(head) + 37))
    for name, labels in cases:
        n = len(labels)
        for fractions in ((0.8, 0.2), (0.7, 0.1, 0.2)):
            rows: list[tuple[str, float, np.ndarray]] = []
            run = partial(stratified_split, labels, fractions, seed=0)
            seconds, parts = best(run, args.repeats)
            rows.append(("ltml", seconds, quality(labels, parts, fractions)))
            seconds, _ = best(partial(random_split, n, fractions, 0), args.repeats)
            q = np.mean(
                [quality(labels, random_split(n, fractions, s), fractions) for s in range(10)], 0
            )
            rows.append(("random", seconds, q))
            if have_package and len(fractions) == 2 and n <= args.package_max:
                seconds, parts = best(partial(package_split, labels, fractions, 0), 1)
                rows.append(("iterstrat", seconds, quality(labels, parts, fractions)))
            for method, seconds, (mean, largest, missing) in rows:
                print(
                    f"{name:>22} | {'/'.join(map(str, fractions)):>11} | {method:>9} | "
                    f"{seconds:>8.3f}s | {mean:>10.4f} | {largest:>15.4f} | {missing:>7.1f}"
                )


if __name__ == "__main__":
    main()
