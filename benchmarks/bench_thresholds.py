"""Fitted thresholds on a small validation split: what they do to OF1 / CF1, and the guard.

The labels are COCO-LT's training matrix (1,909 images x 80 classes, from ``../shared/data``);
the scores are synthetic logits of a long-tailed model: ``logit = b_k + 2.5 y + noise``, with the
bias ``b_k`` lower for rarer classes (``-1.25 + 0.3 log(n_k / n_max)``: logit 0 is midway for
the most frequent class) and unit Gaussian noise.
Each seed draws a validation split of ``--val`` images (the rest is the test split), fits
thresholds on it with ``fit_thresholds`` (``min_positives`` 1, i.e. no guard, and larger, the
other classes keeping logit 0), and scores the test split; also logit 0 without fitting. The
table gives the mean over seeds and how many classes have fewer than 5 validation positives.

    python benchmarks/bench_thresholds.py                  # 190 validation images, 20 seeds
    python benchmarks/bench_thresholds.py --val 400
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

import ltml

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_lt" / "train_labels.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val", type=int, default=190)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--labels", type=Path, default=DATA)
    args = parser.parse_args()
    labels = np.loadtxt(args.labels, skiprows=1, usecols=range(1, 81), dtype=np.int64)
    counts = labels.sum(0)
    bias = -1.25 + 0.3 * np.log(np.maximum(counts, 1) / counts.max())
    guards = [1, 2, 3, 5, 10]
    rows: dict[str, list[tuple[float, float]]] = {"logit 0": []}
    rows.update({f"fitted, min_positives={m}": [] for m in guards})
    few = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        logits = bias + 2.5 * labels + rng.standard_normal(labels.shape)
        order = rng.permutation(len(labels))
        val, test = order[: args.val], order[args.val :]
        s, y = torch.from_numpy(logits), torch.from_numpy(labels)
        few.append(int(((y[val] == 1).sum(0) < 5).sum()))

        def score(
            threshold: torch.Tensor | float, s: torch.Tensor = s[test], y: torch.Tensor = y[test]
        ) -> tuple[float, float]:
            m = ltml.thresholded_metrics(s, y, threshold=threshold)
            return m.OF1, m.CF1

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # classes without validation positives
            rows["logit 0"].append(score(0.0))
            for m in guards:
                thr = ltml.fit_thresholds(s[val], y[val], min_positives=m, fallback=0.0)
                rows[f"fitted, min_positives={m}"].append(score(thr))
    print(
        f"COCO-LT labels, synthetic logits, {args.val} validation / {len(labels) - args.val} "
        f"test images, {args.seeds} seeds; classes with < 5 validation positives: "
        f"{np.mean(few):.1f} of 80 on average"
    )
    print(f"| {'thresholds':<26} | {'OF1':>6} | {'CF1':>6} |")
    print(f"|{'-' * 28}|{'-' * 8}|{'-' * 8}|")
    for name, values in rows.items():
        of1, cf1 = np.mean(values, axis=0)
        print(f"| {name:<26} | {100 * of1:6.2f} | {100 * cf1:6.2f} |")


if __name__ == "__main__":
    main()
