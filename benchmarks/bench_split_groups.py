"""Benchmark: stratified_split with groups (patients) on NIH ChestX-ray14, against the others.

NIH ChestX-ray14 (112,120 images x 14 findings, 30,805 patients of 1 to 184 images) split into
train / test = 0.8 / 0.2 and train / val / test = 0.7 / 0.1 / 0.2, three ways: ``groups=`` the
patient ids; without groups (each image dealt alone: the class shares are closest, but patients
leak); a random split of the patients (10 seeds, averaged). Measured: time (best of
``--repeats``), ``mean |dev|`` and ``max |dev|`` of :func:`split_deviation` over the classes and
parts, and the share of the last part's images whose patient also has images in the first part.

Run from the repository root:

    PYTHONPATH=src python benchmarks/bench_split_groups.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

import numpy as np
import torch

from ltml.data import split_deviation, stratified_split

DATA = Path(os.environ.get("LTML_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data"))


def quality(labels: np.ndarray, patients: np.ndarray, parts: list, fractions: tuple) -> list:
    dev = split_deviation(labels, [torch.as_tensor(p) for p in parts], fractions).abs()
    first, last = patients[np.asarray(parts[0])], patients[np.asarray(parts[-1])]
    return [float(dev.mean()), float(dev.max()), float(np.isin(last, first).mean())]


def random_patient_split(patients: np.ndarray, fractions: tuple, seed: int) -> list:
    unique = np.unique(patients)
    cuts = np.round(np.cumsum(fractions)[:-1] * unique.size).astype(int)
    chosen = np.split(np.random.default_rng(seed).permutation(unique), cuts)
    return [np.flatnonzero(np.isin(patients, c)) for c in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = DATA / "nih_cxr14" / "labels.tsv.gz"
    if not path.is_file():
        raise SystemExit(f"{path} not found (set LTML_SHARED_DATA)")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter="\t", skiprows=1, usecols=range(1, 16), dtype=np.int64)
    patients, labels = table[:, 0], table[:, 1:]
    print(f"torch {torch.__version__}, numpy {np.__version__}; time: best of {args.repeats}")
    print(f"{'parts':>11} | {'method':>15} | {'time':>7} | mean |dev| | max |dev| | leaked")
    print("-" * 72)
    for fractions in ((0.8, 0.2), (0.7, 0.1, 0.2)):
        rows = []
        for method, groups in (("ltml, groups", patients), ("ltml, no groups", None)):
            times, parts = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                parts = list(stratified_split(labels, fractions, seed=0, groups=groups))
                times.append(time.perf_counter() - start)
            rows.append((method, min(times), quality(labels, patients, parts, fractions)))
        q = np.mean(
            [
                quality(labels, patients, random_patient_split(patients, fractions, s), fractions)
                for s in range(10)
            ],
            axis=0,
        )
        rows.append(("random patients", float("nan"), list(q)))
        for method, seconds, (mean, largest, leaked) in rows:
            parts_name = "/".join(f"{f:g}" for f in fractions)
            took = "-" if np.isnan(seconds) else f"{seconds:.2f}s"
            print(
                f"{parts_name:>11} | {method:>15} | {took:>7} | {mean:>10.4f} | "
                f"{largest:>9.4f} | {100 * leaked:>5.1f}%"
            )


if __name__ == "__main__":
    main()
