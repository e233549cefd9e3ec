"""Build VOC-LT-shaped subsets of VOC2012 trainval with ltml and compare with the official list."""

import json
import sys
from pathlib import Path

import numpy as np

from ltml.data import class_counts, class_groups, make_long_tailed, pareto_quotas

shared = Path(sys.argv[1])
raw = np.loadtxt(shared / "voc2012_trainval/labels.tsv", delimiter="\t", skiprows=1, dtype=str)
ids, y = raw[:, 0], raw[:, 1:].astype(np.int64)
split = json.loads((shared / "voc_lt/split.json").read_text())
official_counts = np.array(split["class_freq"])
official_ids = set(
    np.loadtxt(shared / "voc_lt/train_labels.tsv", delimiter="\t", skiprows=1, dtype=str)[:, 0]
)
quotas = pareto_quotas(20, 800)
print("| seed | images | max | min | head / medium / tail | sum abs count diff | ids in official |")
print("|---|---|---|---|---|---|---|")
for seed in range(10):
    idx = make_long_tailed(y, quotas, seed=seed).numpy()
    c = class_counts(y[idx])
    g = class_groups(c)
    diff = int(np.abs(c.numpy() - official_counts).sum())
    shared_ids = len(official_ids & set(ids[idx]))
    print(
        f"| {seed} | {len(idx)} | {int(c.max())} | {int(c.min())} | "
        f"{len(g['head'])} / {len(g['medium'])} / {len(g['tail'])} | {diff} | {shared_ids} |"
    )
    if seed == 0:
        per_class = c.tolist()
print("\n| class | official | seed 0 |\n|---|---|---|")
for name, o, s in zip(split["classes"], official_counts.tolist(), per_class, strict=True):
    print(f"| {name} | {o} | {s} |")
