"""Benchmark: ClassAwareSampler against a straightforward pure-Python per-draw sampler.

Times construction + one epoch of indices, for both sampling modes, on the real VOC-LT (1,142 x 20)
and COCO-LT (1,909 x 80) training labels and on a synthetic sparse long-tailed label set
(1,000,000 images x 1,000 classes, about 3 labels per image). The reference is what one writes by
hand (and what the DB-loss code does): Python lists of positives per class, then one class and one
image per draw with the `random` module; for the cycle mode, a reshuffling cycle iterator per class.
Both sides get the same input and produce the same kind of output (a list of ints).

Run from the repository root:

    PYTHONPATH=src python benchmarks/bench_samplers.py [--repeats 3] [--size 1000000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ltml import ClassAwareSampler

DATA = Path(
    os.environ.get("LTML_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


# ------------------------------------------------------------------ pure-Python references


def _per_class_lists(label_lists: list[list[int]], num_classes: int) -> list[list[int]]:
    per_class: list[list[int]] = [[] for _ in range(num_classes)]
    for i, row in enumerate(label_lists):
        for k in row:
            per_class[k].append(i)
    return [images for images in per_class if images]


def reference_random(
    label_lists: list[list[int]], num_classes: int, n: int, power: float, seed: int
) -> list[int]:
    """One class by weight n_k ** power, then one of its images, per draw."""
    rng = random.Random(seed)
    per_class = _per_class_lists(label_lists, num_classes)
    if power == 0:
        return [rng.choice(rng.choice(per_class)) for _ in range(n)]
    cum_weights = list(itertools.accumulate(len(images) ** power for images in per_class))
    return [rng.choice(rng.choices(per_class, cum_weights=cum_weights)[0]) for _ in range(n)]


class _RandomCycle:
    """Endless iterator over a list, reshuffled at each pass (as in the DB-loss code)."""

    def __init__(self, items: list[int], rng: random.Random) -> None:
        self.items, self.rng, self.pos = list(items), rng, len(items)

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if self.pos == len(self.items):
            self.rng.shuffle(self.items)
            self.pos = 0
        self.pos += 1
        return self.items[self.pos - 1]


def reference_cycle(
    label_lists: list[list[int]], num_classes: int, n: int, per_class_draws: int, seed: int
) -> list[int]:
    """Shuffled class cycle; ``per_class_draws`` consecutive images from each class's cycle."""
    rng = random.Random(seed)
    per_class = _per_class_lists(label_lists, num_classes)
    classes = _RandomCycle(list(range(len(per_class))), rng)
    cycles = [_RandomCycle(images, rng) for images in per_class]
    out: list[int] = []
    while len(out) < n:
        cycle = cycles[next(classes)]
        out.extend(next(cycle) for _ in range(per_class_draws))
    return out[:n]


# ------------------------------------------------------------------------------- inputs


def load_real(name: str) -> np.ndarray | None:
    path = DATA / name / "train_labels.tsv"
    if not path.is_file():
        print(f"skipping {name}: {path} not found (set LTML_SHARED_DATA)")
        return None
    return np.loadtxt(path, delimiter="\t", skiprows=1, dtype=str)[:, 1:].astype(np.int64)


def synthetic(n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Long-tailed sparse labels (CSR pair): 1 + Poisson(2) labels per image, Zipf(1.2) classes."""
    rng = np.random.default_rng(seed)
    popularity = np.arange(1, c + 1, dtype=np.float64) ** -1.2
    per_image = 1 + rng.poisson(2.0, n)
    classes = np.searchsorted(np.cumsum(popularity / popularity.sum()), rng.random(per_image.sum()))
    pairs = np.unique(np.repeat(np.arange(n), per_image) * c + np.minimum(classes, c - 1))
    images, classes = pairs // c, pairs % c
    indptr = np.concatenate([[0], np.cumsum(np.bincount(images, minlength=n))])
    return indptr, classes


def sampler(labels: Any, c: int, n: int | str, **kwargs: Any) -> ClassAwareSampler:
    """Build a ClassAwareSampler from a dense matrix, class lists or a CSR pair."""
    if isinstance(labels, np.ndarray):
        return ClassAwareSampler(labels, n, num_classes=c, **kwargs)
    return ClassAwareSampler.from_class_lists(labels, num_classes=c, num_draws=n, **kwargs)


def ours(labels: Any, c: int, n: int, kwargs: dict[str, Any]) -> list[int]:
    """Build a ClassAwareSampler and draw one epoch."""
    return list(sampler(labels, c, n, **kwargs))


def reference(lists: list[list[int]], c: int, n: int, kwargs: dict[str, Any]) -> list[int]:
    """Build the pure-Python reference of the same mode and draw one epoch."""
    if kwargs.get("mode") == "cycle":
        return reference_cycle(lists, c, n, 3, 0)
    return reference_random(lists, c, n, kwargs.get("power", 0.0), 0)


def _best(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--size", type=int, default=1_000_000, help="synthetic N (C = 1000)")
    args = parser.parse_args()

    cases: list[tuple[str, Any, list[list[int]], int, str]] = []
    for name in ("voc_lt", "coco_lt"):
        dense = load_real(name)
        if dense is not None:
            lists = [np.flatnonzero(row == 1).tolist() for row in dense]
            cases.append((name.upper().replace("_", "-"), dense, lists, dense.shape[1], "dense"))
    indptr, classes = synthetic(args.size, 1000)
    lists = [row.tolist() for row in np.split(classes, indptr[1:-1])]
    cases.append(("synthetic", lists, lists, 1000, "lists"))
    cases.append(("synthetic", (indptr, classes), lists, 1000, "CSR pair"))

    rows = []
    for name, labels, lists, c, form in cases:
        n_images, nnz = len(lists), sum(map(len, lists))
        ref_repeats = 1 if n_images > 100_000 else args.repeats  # the reference takes seconds
        db_length = sampler(labels, c, "db").num_draws
        # The DB epoch of the synthetic set would be 1.3e8 draws: use N there.
        cycle_n = db_length if name != "synthetic" else n_images
        runs: list[tuple[str, int, dict[str, Any]]] = [
            ("random, power 0", n_images, {}),
            ("random, power 0.5", n_images, {"power": 0.5}),
            ("cycle (DB)", cycle_n, {"mode": "cycle"}),
        ]
        for mode, n, kwargs in runs:
            t_ours = _best(partial(ours, labels, c, n, kwargs), args.repeats)
            t_ref = _best(partial(reference, lists, c, n, kwargs), ref_repeats)
            rows.append(
                (name, f"{n_images:,} x {c}", f"{nnz:,}", form, mode, f"{n:,}", t_ours, t_ref)
            )
            print(
                f"{name:10s} {form:9s} {mode:18s} ours {t_ours * 1e3:9.1f} ms  "
                f"reference {t_ref * 1e3:9.1f} ms  x{t_ref / t_ours:6.1f}",
                flush=True,
            )

    print()
    print(
        "| labels | N x C | positives | input | mode | draws | ours (ms) | reference (ms) | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, shape, nnz, form, mode, n, t_ours, t_ref in rows:
        print(
            f"| {name} | {shape} | {nnz} | {form} | {mode} | {n} | {t_ours * 1e3:.1f} "
            f"| {t_ref * 1e3:.1f} | {t_ref / t_ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
