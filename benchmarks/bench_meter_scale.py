"""The meter at web scale: memory and time of ``mAPMeter`` on OpenImages-size and DDP evaluations.

Two cases, each in fresh processes so that peak memory is their own (peak resident memory is
read from ``/proc/self/status`` after resetting it with ``/proc/self/clear_refs``):

- ``openimages``: 125,000 images x 9,605 classes, about 0.1 % of the labels known (OpenImages'
  test split: about 2.3 verified positives and 7.3 verified negatives per image, Zipf class
  profile), float32 logits fed in batches of 500 to the default ``mAPMeter(C)``. Reported: the
  peak memory growth over the whole run (updates and ``compute()``, batches included), the bytes
  the meter keeps, and the time of ``compute()`` on one thread; the AP of 300 classes is checked
  against scikit-learn on their known entries.
- ``ddp``: 40,000 x 2,000 float32 scores (320 MB), every label known, split evenly over 1, 2 and
  4 gloo processes; each reports how much its memory grows during ``compute()`` and its time.

    python benchmarks/bench_meter_scale.py                  # both cases
    python benchmarks/bench_meter_scale.py --case ddp --worlds 1 2 4
    PYTHONPATH=<older checkout>/src python benchmarks/bench_meter_scale.py --case ddp  # before
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def rss_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def reset_peak() -> int:
    """Reset the peak resident memory to the current one; return the current one (KiB)."""
    Path("/proc/self/clear_refs").write_text("5")
    return rss_kib("VmRSS")


def openimages_batches(n: int, c: int, known_per_image: float, batch: int, seed: int = 0):
    """Yield ``(scores, targets)`` batches: logits with signal, labels mostly -1 (int8)."""
    rng = np.random.default_rng(seed)
    weight = 1.0 / np.arange(1, c + 1) ** 0.8  # Zipf-like: which classes get verified
    weight /= weight.sum()
    for lo in range(0, n, batch):
        b = min(batch, n - lo)
        targets = np.full((b, c), -1, dtype=np.int8)
        k = rng.poisson(known_per_image, b)
        rows = np.repeat(np.arange(b), k)
        cols = rng.choice(c, size=rows.size, p=weight)
        targets[rows, cols] = (rng.random(rows.size) < 0.24).astype(np.int8)  # ~2.3 of 9.6
        scores = rng.standard_normal((b, c), dtype=np.float32)
        np.add(scores, 2.0, out=scores, where=targets == 1)
        yield torch.from_numpy(scores), torch.from_numpy(targets)


def run_openimages(args: argparse.Namespace) -> dict[str, object]:
    import ltml

    torch.set_num_threads(1)
    n, c = args.images, args.classes
    meter = ltml.mAPMeter(c)
    base = reset_peak()
    checked = np.random.default_rng(1).choice(c, 300, replace=False)
    # The oracle's copy of 300 columns: one array each, filled as the batches go by.
    s_all = np.empty((n, checked.size), dtype=np.float32)
    y_all = np.empty((n, checked.size), dtype=np.int8)
    t0 = time.perf_counter()
    row = 0
    for scores, targets in openimages_batches(n, c, args.known_per_image, 500):
        meter.update(scores, targets)
        s_all[row : row + len(scores)] = scores[:, checked].numpy()
        y_all[row : row + len(scores)] = targets[:, checked].numpy()
        row += len(scores)
    update_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = meter.compute()
    compute_s = time.perf_counter() - t0
    peak = rss_kib("VmHWM") - base
    stored = meter._known.nbytes + sum(s.numel() * (s.element_size() + 1) for s in meter._scores)
    check_mib = (s_all.nbytes + y_all.nbytes) / 2**20  # the oracle's copy, not the meter's
    from sklearn.metrics import average_precision_score

    diff = 0.0
    for j, k in enumerate(checked):
        known = y_all[:, j] >= 0
        if (y_all[known, j] == 1).any():
            ref = average_precision_score(y_all[known, j], s_all[known, j])
            diff = max(diff, abs(ref - float(result.ap[k])))
    return {
        "case": "openimages",
        "size": f"{n} x {c}",
        "known": meter._known.count / (n * c),
        "dense_batches": len(meter._scores),
        "stored_mib": stored / 2**20,
        "peak_growth_mib": peak / 1024 - check_mib,
        "update_s": update_s,
        "compute_s": compute_s,
        "map": result.map,
        "max_diff_vs_sklearn_300_classes": diff,
    }


def ddp_worker(rank: int, world: int, port: int, args: argparse.Namespace) -> dict[str, object]:
    import torch.distributed as dist

    import ltml

    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    n, c = args.rows, args.columns
    lo, hi = n * rank // world, n * (rank + 1) // world
    meter = ltml.mAPMeter(c)
    for a in range(lo, hi, 1000):  # the same rows whatever the number of processes
        b = min(a + 1000, hi)
        rng = np.random.default_rng(a)
        targets = torch.from_numpy((rng.random((b - a, c)) < 0.05).astype(np.int8))
        scores = torch.from_numpy(rng.standard_normal((b - a, c), dtype=np.float32)) + targets
        meter.update(scores, targets)
    del scores, targets
    if world > 1:
        dist.barrier()
    base = reset_peak()
    t0 = time.perf_counter()
    result = meter.compute()
    seconds = time.perf_counter() - t0
    growth = (rss_kib("VmHWM") - base) / 1024
    if world > 1:
        dist.destroy_process_group()
    held = sum(s.numel() * s.element_size() for s in meter._scores) / 2**20
    return {"rank": rank, "held_mib": held, "growth_mib": growth, "s": seconds, "map": result.map}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["openimages", "ddp", "both"], default="both")
    parser.add_argument("--images", type=int, default=125_000)
    parser.add_argument("--classes", type=int, default=9_605)
    parser.add_argument("--known-per-image", type=float, default=9.6)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--columns", type=int, default=2_000)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--_worker", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_openimages", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._openimages:
        print(json.dumps(run_openimages(args)))
        return
    if args._worker:
        print(json.dumps(ddp_worker(*args._worker, args)))
        return
    passed = sys.argv[1:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if args.case in ("openimages", "both"):
        out = subprocess.run(
            [sys.executable, __file__, "--_openimages", *passed],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"openimages {r['size']} ({100 * r['known']:.3f} % known, "
            f"{r['dense_batches']} dense batches): kept {r['stored_mib']:.1f} MiB, "
            f"peak growth {r['peak_growth_mib']:.0f} MiB, updates {r['update_s']:.1f} s, "
            f"compute() {r['compute_s']:.2f} s (1 thread), mAP {100 * r['map']:.2f}, "
            f"max |AP - sklearn| over 300 classes {r['max_diff_vs_sklearn_300_classes']:.1e}"
        )
    if args.case in ("ddp", "both"):
        for world in args.worlds:
            port = free_port()
            procs = [
                subprocess.Popen(
                    [sys.executable, __file__, *passed, "--_worker", str(r), str(world), str(port)],
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for r in range(world)
            ]
            rows = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            maps = {r["map"] for r in rows}
            assert len(maps) == 1 or all(math.isnan(m) for m in maps), maps
            print(
                f"ddp {args.rows} x {args.columns}, {world} process(es): "
                + ", ".join(
                    f"rank {r['rank']} holds {r['held_mib']:.0f} MiB, grows "
                    f"{r['growth_mib']:.0f} MiB in {r['s']:.2f} s"
                    for r in rows
                )
                + f"; mAP {100 * rows[0]['map']:.3f}"
            )


if __name__ == "__main__":
    main()
