"""Draw the documentation's figures into docs/img/ (run from the repository root).

    python docs/make_figures.py [--shared-data ../shared/data] [--demo-results RESULTS.json]
                                [--crt-results RESULTS.json]

- ``class_profile.png``: training images per class, sorted, of the demo dataset and (when the
  VOC-LT / COCO-LT label matrices are in ``--shared-data``) of VOC-LT and COCO-LT, with the
  head / medium / tail thresholds.
- ``sampler_effect.png``: how often each VOC-LT class (or the demo's, without VOC-LT) is
  present in the images of one epoch, under uniform sampling and each ClassAwareSampler mode.
- ``demo_ap.png``: per-class AP against training count, from the ``results.json`` files that
  ``examples/reproduce/train.py`` writes for demo runs (``--demo-results run1/results.json ...``,
  e.g. the ``u-only`` and ``ltml`` runs of ``examples/reproduce/demo.py``); skipped without them.
- ``crt_ap.png``: per-class AP before (the stage-1 model) and after cRT, classes sorted by training
  count, from the ``results.json`` of a ``crt`` row (``--crt-results``); skipped without it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import torch

import ltml

OUT = Path(__file__).resolve().parent / "img"
# Sized for the page column (about 900 px wide on a 1280-px screen) at 1:1, so that the text of a
# figure reads at the size of the page's own: 7.5 x 120 = 900 px, fonts of 9 points and more.
WIDTH, DPI = 7.5, 120
plt.rcParams.update({"font.size": 10, "legend.fontsize": 9, "xtick.labelsize": 9})
# Legends in words: what each row of examples/reproduce/train.py trains.
ROW_NAMES = {
    "u-only": "uniform sampling only (one branch)",
    "ltml": "LTML: both samplings, consistency, compensation",
    "erm": "ERM (uniform sampling, BCE)",
    "rs": "class-aware re-sampling, BCE",
}


def _load_split(shared: Path, name: str) -> tuple[np.ndarray, list[str]] | None:
    folder = shared / name
    if not (folder / "train_labels.tsv").is_file():
        return None
    table = np.loadtxt(folder / "train_labels.tsv", delimiter="\t", skiprows=1, dtype=str)
    classes = json.loads((folder / "split.json").read_text())["classes"]
    return table[:, 1:].astype(np.int64), classes


def class_profile(datasets: dict[str, np.ndarray]) -> None:
    fig, ax = plt.subplots(figsize=(WIDTH, 4))
    for name, labels in datasets.items():
        counts = np.sort(ltml.class_counts(labels).numpy())[::-1]
        ax.plot(np.linspace(0, 1, counts.size), counts, marker="o", ms=3, label=name)
    for threshold, text in ((100, "head >= 100"), (20, "tail < 20")):
        ax.axhline(threshold, color="grey", lw=0.8, ls="--")
        ax.text(1.0, threshold * 1.08, text, ha="right", fontsize=9, color="grey")
    ax.set(
        yscale="log",
        xlabel="classes, most to least frequent (fraction of classes)",
        ylabel="training images",
        title="Long-tailed class profiles",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "class_profile.png", dpi=DPI)


def sampler_effect(labels: np.ndarray, classes: list[str], title: str) -> None:
    n = labels.shape[0]
    counts = ltml.class_counts(labels).numpy()
    order = np.argsort(-counts)
    samplers = {
        "uniform": torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist(),
        "square-root (power 0.5)": list(ltml.ClassAwareSampler(labels, power=0.5)),
        "class-balanced (power 0)": list(ltml.ClassAwareSampler(labels)),
        "DB cycle": list(ltml.ClassAwareSampler(labels, n, mode="cycle")),
    }
    fig, ax = plt.subplots(figsize=(WIDTH, 4.8))
    width = 0.8 / len(samplers)
    for i, (name, indices) in enumerate(samplers.items()):
        # Fraction of the epoch's draws that carry each class (an image brings all its labels).
        share = (labels[np.asarray(indices)] == 1).mean(axis=0)[order]
        ax.bar(np.arange(order.size) + (i - 1.5) * width, share, width, label=name)
    ax.set_xticks(np.arange(order.size), [classes[k] for k in order], rotation=60, ha="right")
    ax.set(ylabel="share of drawn images with the class", title=title, xlim=(-0.6, order.size))
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "sampler_effect.png", dpi=DPI)


def demo_ap(results_paths: list[Path]) -> None:
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    for path in results_paths:
        run = json.loads(path.read_text())  # what examples/reproduce/train.py writes
        ap = np.array([np.nan if a is None else a for a in run["test_per_class"]["ap"]])
        label = ROW_NAMES.get(run["row"], run["row"])
        ax.plot(run["train_counts"], 100 * ap, marker="o", ls="", ms=6, label=label)
    ax.set(
        xscale="log",
        ylim=(0, 100),
        xlabel="training images of the digit (log scale)",
        ylabel="test AP (%)",
        title="Demo: per-digit test AP against training images",
    )
    # Which digit each column of points is, on the top axis.
    top = ax.secondary_xaxis("top")
    top.set_xticks(run["train_counts"], run["classes"], minor=False)
    top.set_xlabel("digit")
    top.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(OUT / "demo_ap.png", dpi=DPI)


def crt_ap(path: Path) -> None:
    run = json.loads(path.read_text())  # a decoupled row's results.json holds both stages
    counts = np.array(run["train_counts"])
    order = np.argsort(-counts, kind="stable")

    def ap(key: str) -> np.ndarray:
        return 100 * np.array([np.nan if a is None else a for a in run[key]["ap"]])[order]

    before, after = ap("stage1_test_per_class"), ap("test_per_class")
    x = np.arange(order.size)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(x - 0.2, before, 0.4, label=f"ERM (stage 1): mAP {np.nanmean(before):.1f}")
    ax.bar(x + 0.2, after, 0.4, label=f"cRT on its features: mAP {np.nanmean(after):.1f}")
    ax.set_xticks(x, [f"{run['classes'][k]}\n{counts[k]}" for k in order], fontsize=8)
    ax.set(
        ylim=(0, 100),
        xlabel="class (training images), most to least frequent",
        ylabel="test AP (%)",
        title="Demo: per-class AP before and after classifier re-training (cRT)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "crt_ap.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # As the tests and benchmarks do: LTML_SHARED_DATA, else the folder beside the repository.
    default_shared = Path(
        os.environ.get("LTML_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--shared-data", type=Path, default=default_shared)
    parser.add_argument("--demo-results", type=Path, nargs="+", metavar="RESULTS_JSON")
    parser.add_argument("--crt-results", type=Path, metavar="RESULTS_JSON")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)

    demo = ltml.data.make_demo("train", seed=0)
    demo_labels = demo.labels.numpy()
    profiles = {"demo (digits)": demo_labels}
    real = {name: _load_split(args.shared_data, name) for name in ("voc_lt", "coco_lt")}
    profiles.update({name.upper().replace("_", "-"): r[0] for name, r in real.items() if r})
    class_profile(profiles)

    if real["voc_lt"] is not None:
        sampler_effect(*real["voc_lt"], "VOC-LT: who is drawn in one epoch")
    else:
        sampler_effect(demo_labels, list(demo.classes), "Demo: who is drawn in one epoch")

    if args.demo_results:
        demo_ap(args.demo_results)
    if args.crt_results:
        crt_ap(args.crt_results)
    print(f"figures written to {OUT}")


if __name__ == "__main__":
    main()
