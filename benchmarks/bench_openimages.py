"""Benchmark: reading OpenImages-sized label files, and VerifiedLabels' memory at that scale.

Writes synthetic files shaped like the official V6 / V7 training labels, then reads them with
``ltml.data.read_openimages_labels`` in a fresh process (its time and peak resident memory are
the reader's alone). The generator (:func:`write_labels`, reusable by other benchmarks):

- ``--images`` ImageIDs (9M by default): distinct random 64-bit numbers as 16 hex digits, sorted,
  as in the official files;
- 19,605 LabelNames ``/m/0<k in hex>`` (5 to 8 characters); the first 9,605 are the trainable
  classes (``classes.txt``), the others, like the real file's non-trainable classes, are dropped;
- per image ``1 + Poisson(1.22)`` label rows (2.22 on average: about 20M rows for 9M images, the
  size of the human-verified file the issue gives), in random class order; classes drawn by a Zipf
  profile (popularity of the class of rank r proportional to 1 / r, so about 7% of the rows have
  a non-trainable class); ``Confidence`` 1 with probability 0.28 (2.3 of 8.3 verdicts per image
  are positive in OpenImages), else 0; ``Source`` ``verification``, or one row in ten
  ``crowdsource-verification``. A class drawn twice for an image gives a repeat (the same verdict)
  or a conflict (both): the reader's rules run at scale too.

The memory row builds a container of ``--images`` rows with 8.3 verdicts each (OpenImages' human
and machine verdicts together) and reports its bytes (``indptr``, ``indices``, ``values``).

Run from the repository root (the default size needs about 4 GB of memory and 1 GB of disk):

    PYTHONPATH=src python benchmarks/bench_openimages.py [--images 9000000] [--dir /tmp/oi]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

TRAINABLE, ALL_CLASSES = 9_605, 19_605
HEADER = b"ImageID,Source,LabelName,Confidence\n"
SOURCES = (b"verification", b"crowdsource-verification")
CHUNK = 1_000_000  # images written at a time


def label_names(count: int) -> list[str]:
    return [f"/m/0{k:x}" for k in range(count)]


def _byte_matrix(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as a NUL-padded (n, width) uint8 matrix and their lengths."""
    array = np.array(strings)
    width = array.dtype.itemsize
    return array.view(np.uint8).reshape(len(strings), width), np.char.str_len(array)


def _hex_ids(values: np.ndarray) -> np.ndarray:
    """uint64 values as 16 lowercase hex digits each: an (n, 16) uint8 matrix."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    return digits[((values[:, None] >> shifts) & np.uint64(15)).astype(np.intp)]


def csv_rows(fields: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Rows of CSV text from fields given as (n, width) uint8 matrices and (n,) lengths."""
    row = sum(length for _, length in fields) + len(fields)  # each field ends with , or \n
    at = np.cumsum(row) - row
    out = np.empty(int(row.sum()), dtype=np.uint8)
    for j, (matrix, length) in enumerate(fields):
        for k in range(matrix.shape[1]):
            has = length > k
            out[at[has] + k] = matrix[has, k]
        at = at + length
        out[at] = ord("\n") if j == len(fields) - 1 else ord(",")
        at = at + 1
    return out.tobytes()


def write_labels(folder: Path, images: int, seed: int = 0) -> dict[str, int]:
    """Write ``labels.csv`` and ``classes.txt`` under ``folder``; return their sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = label_names(ALL_CLASSES)
    (folder / "classes.txt").write_text("\n".join(names[:TRAINABLE]) + "\n")
    popularity = 1.0 / np.arange(1, ALL_CLASSES + 1)
    cumulative = np.cumsum(popularity / popularity.sum())
    ids = np.sort(rng.integers(0, 2**63, size=images, dtype=np.uint64))
    assert (np.diff(ids) > 0).all(), "a repeated ImageID: another seed"
    name_bytes, name_length = _byte_matrix([n.encode() for n in names])
    source_bytes, source_length = _byte_matrix(list(SOURCES))
    verdict_bytes, verdict_length = _byte_matrix([b"0", b"1"])
    rows = 0
    with (folder / "labels.csv").open("wb") as f:
        f.write(HEADER)
        for start in range(0, images, CHUNK):
            chunk = ids[start : start + CHUNK]
            per_image = 1 + rng.poisson(1.22, size=len(chunk))
            image = np.repeat(np.arange(len(chunk)), per_image)
            cls = np.minimum(np.searchsorted(cumulative, rng.random(len(image))), ALL_CLASSES - 1)
            source = (rng.random(len(image)) < 0.1).astype(np.intp)
            verdict = (rng.random(len(image)) < 0.28).astype(np.intp)
            id_matrix = _hex_ids(chunk)[image]
            f.write(
                csv_rows(
                    [
                        (id_matrix, np.full(len(image), 16)),
                        (source_bytes[source], source_length[source]),
                        (name_bytes[cls], name_length[cls]),
                        (verdict_bytes[verdict], verdict_length[verdict]),
                    ]
                )
            )
            rows += len(image)
    return {"rows": rows, "bytes": (folder / "labels.csv").stat().st_size}


def read_once(folder: Path) -> dict[str, float]:
    """Read the files in this process: wall and CPU seconds, peak resident memory."""
    import warnings

    from ltml.data import read_openimages_labels

    baseline = _memory("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        oi = read_openimages_labels(folder / "labels.csv", folder / "classes.txt")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _memory("VmHWM")
    labels = oi.labels
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_gb": peak / 1e9,
        "baseline_rss_gb": baseline / 1e9,
        "images": len(oi.image_ids),
        "nnz": labels.nnz,
        "positives": int((labels.values == 1).sum()),
        "dropped": oi.dropped_labels,
        "warnings": len(caught),
        "labels_gb": sum(t.numel() * t.element_size() for t in _arrays(labels)) / 1e9,
        "image_ids_gb": oi.image_ids.nbytes / 1e9,
    }


def _memory(field: str) -> float:
    """Resident memory of this process in bytes: ``VmRSS`` (now) or ``VmHWM`` (peak).

    Read from /proc (Linux): unlike ``ru_maxrss``, the peak does not count the memory of the
    parent process that forked this one.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # not Linux: KiB


def _arrays(labels: object) -> list[torch.Tensor]:
    return [labels.indptr, labels.indices, labels.values]  # type: ignore[attr-defined]


def container_memory(images: int, per_image: float = 8.3, seed: int = 0) -> dict[str, float]:
    """Build a VerifiedLabels of ``images`` rows with ``per_image`` verdicts each on average."""
    from ltml import VerifiedLabels

    rng = np.random.default_rng(seed)
    counts = rng.poisson(per_image, size=images).clip(0, 64)
    indptr = np.zeros(images + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    # Class j of a row with k verdicts: in the j-th of k equal stripes: sorted, distinct.
    slot = np.arange(indptr[-1]) - np.repeat(indptr[:-1], counts)
    stripe = TRAINABLE // np.repeat(np.maximum(counts, 1), counts)
    indices = (slot * stripe + rng.integers(0, stripe)).astype(np.int32)
    values = (rng.random(len(indices)) < 0.28).astype(np.int8)
    start = time.perf_counter()
    labels = VerifiedLabels(indptr, indices, values, TRAINABLE)
    checked = time.perf_counter() - start
    size = sum(t.numel() * t.element_size() for t in _arrays(labels))
    return {
        "images": images,
        "nnz": labels.nnz,
        "gb": size / 1e9,
        "dense_int8_gb": images * TRAINABLE / 1e9,
        "construct_s": checked,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=9_000_000)
    p.add_argument("--dir", type=Path, default=Path("/tmp/ltml-openimages-bench"))
    p.add_argument("--read-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.read_only:  # the child process: the reader alone
        print(json.dumps(read_once(args.dir)))
        return
    start = time.perf_counter()
    written = write_labels(args.dir, args.images)
    print(
        f"wrote {written['rows']:,} rows ({written['bytes'] / 1e9:.2f} GB) for "
        f"{args.images:,} images in {time.perf_counter() - start:.0f} s"
    )
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "src")}
    child = [sys.executable, __file__, "--read-only", "--dir", str(args.dir)]
    read = json.loads(subprocess.run(child, check=True, capture_output=True, env=env).stdout)
    print(
        f"read_openimages_labels: {read['wall_s']:.1f} s wall, {read['cpu_s']:.1f} s CPU, "
        f"peak RSS {read['peak_rss_gb']:.2f} GB ({read['baseline_rss_gb']:.2f} GB after imports)\n"
        f"  {read['images']:,} images, {read['nnz']:,} verdicts ({read['positives']:,} positive)\n"
        f"  {read['dropped']:,} rows of non-trainable classes dropped, "
        f"{read['warnings']} warning(s)\n"
        f"  kept: labels {read['labels_gb']:.3f} GB, image ids {read['image_ids_gb']:.3f} GB"
    )
    memory = container_memory(args.images)
    print(
        f"VerifiedLabels of {memory['images']:,} x {TRAINABLE:,} with {memory['nnz']:,} "
        f"verdicts: {memory['gb']:.3f} GB\n"
        f"  (dense int8: {memory['dense_int8_gb']:.1f} GB), "
        f"built and checked in {memory['construct_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
