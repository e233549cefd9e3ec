"""Benchmark: OpenImages-size labels on one machine, part by part, each in a process of its own.

Synthetic labels shaped like OpenImages' training set (:func:`make_labels`): ``--images`` rows
(9M) x ``--classes`` (9,605), class popularity Zipf (the class of rank r drawn with probability
proportional to 1 / r), per image Poisson(2.3) positives and Poisson(6) verified negatives, each
a distinct class (a class drawn twice for an image is one label; positive wins). Two forms of
the same labels are saved once and loaded by every section:

- a ``scipy.sparse`` CSR of the positives (implicit 0 = negative): what a user with a label
  matrix too large for dense memory builds;
- an ``ltml.VerifiedLabels`` of positives and verified negatives (implicit = unknown):
  OpenImages' own form.

Each section runs in a fresh interpreter that first loads the labels; it prints wall and CPU
seconds and the peak resident memory above what the process held after loading (the kernel's
high-water mark, ``VmHWM``, minus ``VmRSS`` before the section). Sections:

- ``counts``: ``ltml.class_counts``; ``describe``: ``ltml.data.describe_labels``;
- ``sampler``: ``ltml.ClassAwareSampler`` built and one epoch (``N`` draws) iterated, from the
  CSR; ``sampler-verified``: the same from the ``VerifiedLabels``;
- ``split``: ``ltml.data.stratified_split`` 90 / 10;
- ``reader``: ``ltml.data.read_openimages_labels`` on synthetic official-format files of
  ``--images`` images (the generator of ``bench_openimages.py``);
- ``meter`` and ``torchmetrics``: the mAP of ``--eval-images`` (12,500) x ``--classes`` test
  labels with 0.1 % known (OpenImages' test density; the batches of ``bench_meter_scale.py``),
  by ``ltml.mAPMeter`` and by torchmetrics' ``MultilabelAveragePrecision(ignore_index=-1)``, one
  thread each, every class given one verified positive in the first batch (torchmetrics fails
  on a class with no known label). torchmetrics keeps every score and an int64 target per
  entry, 12 bytes an entry: at OpenImages' full test size, 125,000 x 9,605, that is 14.4 GB
  before ``compute()`` copies it, beyond this 24 GB machine, so it runs at a tenth of the rows.
  ``bench_meter_scale.py`` measures the meter at the full size and under DDP with 1, 2 and 4
  processes; ``--with-meter-scale`` runs it after the sections.

What users would otherwise use cannot take these labels at all: iterative-stratification and
``np.nonzero``-style counting need the dense ``(N, C)`` matrix, 86 GB even as int8 here, on a
24 GB machine (``bench_split.py`` compares the split with iterative-stratification where it runs).

    PYTHONPATH=src python benchmarks/bench_scale.py [--images 9000000] [--sections counts split]
        [--with-meter-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ltml

HERE = Path(__file__).resolve().parent
POSITIVES, NEGATIVES = 2.3, 6.0  # per image, OpenImages' human + machine verdicts
KNOWN_PER_IMAGE = 9.6  # verified labels per test image: 0.1 % of 9,605


def make_labels(images: int, classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Row-major CSR of verdicts (1 positive, 0 verified negative), each row's classes sorted."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, classes + 1)
    cumulative = np.cumsum(popularity / popularity.sum())
    keys, values = [], []
    step = 1_000_000
    for start in range(0, images, step):
        n = min(step, images - start)
        for verdict, mean in ((1, POSITIVES), (0, NEGATIVES)):
            counts = rng.poisson(mean, n)
            rows = np.repeat(np.arange(start, start + n, dtype=np.int64), counts)
            drawn = np.searchsorted(cumulative, rng.random(rows.size))
            keys.append(rows * classes + np.minimum(drawn, classes - 1))
            values.append(np.full(rows.size, verdict, dtype=np.int8))
    key, value = np.concatenate(keys), np.concatenate(values)
    # Positive first among equal keys (value 1 sorts before 0 in -value), then one per key.
    order = np.lexsort((-value, key))
    key, value = key[order], value[order]
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, value = key[first], value[first]
    rows, cols = np.divmod(key, classes)
    indptr = np.zeros(images + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=images), out=indptr[1:])
    return {"indptr": indptr, "indices": cols.astype(np.int32), "values": value}


def _load(path: Path, form: str) -> Any:
    import scipy.sparse

    arrays = np.load(path)
    shape = (len(arrays["indptr"]) - 1, int(arrays["classes"]))
    if form == "verified":
        return ltml.VerifiedLabels(arrays["indptr"], arrays["indices"], arrays["values"], shape[1])
    # Only the positives: the CSR's implicit 0 means negative.
    positive = arrays["values"] == 1
    rows = np.repeat(np.arange(shape[0]), np.diff(arrays["indptr"]))[positive]
    return scipy.sparse.csr_array(
        (np.ones(int(positive.sum()), dtype=np.int8), (rows, arrays["indices"][positive])),
        shape=shape,
    )


def _counts(labels: Any) -> int:
    return int(ltml.class_counts(labels).sum())


def _describe(labels: Any) -> int:
    from ltml.data import describe_labels

    return describe_labels(labels).num_images


def _epoch(labels: Any) -> int:
    sampler = ltml.ClassAwareSampler(labels, seed=0)
    return sum(1 for _ in sampler)


def _split(labels: Any) -> list[int]:
    from ltml.data import stratified_split

    return [len(part) for part in stratified_split(labels, (0.9, 0.1), seed=0)]


def _evaluate(size: tuple[str, int, int]) -> float:
    """Return the mAP of OpenImages-like test labels (0.1 % known), computed by one library."""
    sys.path.insert(0, str(HERE))
    library, rows, classes = size
    torch.set_num_threads(1)
    if library == "ltml":
        meter = ltml.mAPMeter(classes)
        for scores, targets in _planted(rows, classes):
            meter.update(scores, targets)
        return meter.compute().map
    from torchmetrics.classification import MultilabelAveragePrecision

    metric = MultilabelAveragePrecision(classes, average="macro", thresholds=None, ignore_index=-1)
    for scores, targets in _planted(rows, classes):
        metric.update(scores, targets.long())
    return float(metric.compute())


def _planted(rows: int, classes: int) -> Any:
    """Yield the test batches, with a verified positive of every class in the first batch.

    torchmetrics (1.9) raises ``IndexError`` for a class with no known label, which a tenth of
    OpenImages' test rows leaves for many classes: one planted positive per class lets it run.
    """
    from bench_meter_scale import openimages_batches

    for start, (scores, targets) in enumerate(
        openimages_batches(rows, classes, KNOWN_PER_IMAGE, 500)
    ):
        if start == 0:
            targets[torch.arange(classes) % len(targets), torch.arange(classes)] = 1
        yield scores, targets


def _read(folder: Path) -> int:
    from ltml.data import read_openimages_labels

    return len(read_openimages_labels(folder / "labels.csv", folder / "classes.txt").image_ids)


# section -> (the labels it takes: "csr", "verified" or the CSV folder, the work measured)
SECTIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "counts": ("csr", _counts),
    "describe": ("csr", _describe),
    "sampler": ("csr", _epoch),
    "sampler-verified": ("verified", _epoch),
    "split": ("csr", _split),
    "reader": ("csv", _read),
    "meter": ("ltml", _evaluate),
    "torchmetrics": ("torchmetrics", _evaluate),
}


def _memory(field: str) -> float:
    """Resident memory of this process in GB: ``VmRSS`` (now) or ``VmHWM`` (peak), Linux."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1]) * 1024 / 1e9
    raise RuntimeError("needs /proc/self/status (Linux)")


def run_section(name: str, labels_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """In this (fresh) process: load the labels, run one section, measure it."""
    form, function = SECTIONS[name]
    if form in ("ltml", "torchmetrics"):
        labels: Any = (form, args.eval_images, args.classes)
    else:
        labels = args.dir / "csv" if form == "csv" else _load(labels_path, form)
    baseline = _memory("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(labels)
    return {
        "section": name,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_growth_gb": _memory("VmHWM") - baseline,
        "result": result,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=9_000_000)
    p.add_argument("--classes", type=int, default=9_605)
    p.add_argument("--eval-images", type=int, default=12_500, help="rows of meter / torchmetrics")
    p.add_argument("--dir", type=Path, default=Path("/tmp/ltml-scale-bench"))
    p.add_argument("--sections", nargs="+", choices=tuple(SECTIONS), default=list(SECTIONS))
    p.add_argument("--with-meter-scale", action="store_true", help="then bench_meter_scale.py")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    labels_path = args.dir / f"labels-{args.images}x{args.classes}.npz"
    if args.child:
        print(json.dumps(run_section(args.child, labels_path, args)))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    if not labels_path.exists():
        start = time.perf_counter()
        arrays = make_labels(args.images, args.classes)
        np.savez(labels_path, classes=args.classes, **arrays)
        positives = int(arrays["values"].sum())
        print(f"made {args.images:,} x {args.classes:,}: {positives:,} positives, "
              f"{arrays['values'].size - positives:,} verified negatives "
              f"in {time.perf_counter() - start:.0f} s")  # fmt: skip
    if "reader" in args.sections and not (args.dir / "csv" / "labels.csv").exists():
        sys.path.insert(0, str(HERE))
        from bench_openimages import write_labels

        written = write_labels(args.dir / "csv", args.images)
        print(f"wrote {written['rows']:,} rows of official-format labels")
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "src")}
    for name in args.sections:
        child = [sys.executable, __file__, "--child", name, "--images", str(args.images),
                 "--classes", str(args.classes), "--dir", str(args.dir)]  # fmt: skip
        done = subprocess.run(child, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"{name:17s} failed: {done.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:17s} {r['wall_s']:7.1f} s wall {r['cpu_s']:7.1f} s CPU "
              f"peak +{r['peak_growth_gb']:.2f} GB  {r['result']}")  # fmt: skip

    if args.with_meter_scale:
        subprocess.run([sys.executable, str(HERE / "bench_meter_scale.py")], env=env, check=True)


if __name__ == "__main__":
    main()
