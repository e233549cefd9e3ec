"""Time per-class average precision: ltml against its floor, scikit-learn and torchmetrics.

Each (method, size) runs in a fresh subprocess on the same seeded data, so that its peak memory
is its own. Times are the best of ``--repeats`` runs (one run for the slow scikit-learn loop at the
largest size); the AP of every method is compared with scikit-learn's. ``floor`` is a plain numpy
sort of every column of the scores (the faster of ``np.sort(scores, axis=0)`` and a transposed
copy sorted along rows): AP needs at least that. ``thresholded`` times
``thresholded_metrics`` at threshold 0, and with the top-3 rule (not an AP: no diff).

    python benchmarks/bench_metrics.py                 # the three sizes of the README table
    python benchmarks/bench_metrics.py --sizes 5000x20  # one size
    python benchmarks/bench_metrics.py --threads 1      # one torch thread (a busy machine)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

IMPLEMENTATIONS = ("floor", "ltml", "ltml_meter", "thresholded", "top3", "torchmetrics", "sklearn")
NOT_AP = ("floor", "thresholded", "top3")


def make_data(n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Long-tailed positive rates (50% down to ~0.2%), logits that carry some signal."""
    rng = np.random.default_rng(seed)
    rate = 0.5 * (np.arange(1, c + 1) ** -1.0)
    targets = (rng.random((n, c)) < rate).astype(np.int64)
    targets[rng.integers(0, n, c), np.arange(c)] = 1  # every class has a positive
    scores = (rng.standard_normal((n, c)) + 1.5 * targets).astype(np.float32)
    return scores, targets


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run_one(method: str, n: int, c: int, repeats: int) -> dict[str, object]:
    scores, targets = make_data(n, c)
    ts, ty = torch.from_numpy(scores), torch.from_numpy(targets)
    if method == "floor":

        def fn() -> np.ndarray:
            np.sort(scores, axis=0)
            return np.empty(0)

        def fn_transposed() -> np.ndarray:
            np.sort(np.ascontiguousarray(scores.T), axis=1)
            return np.empty(0)

        fn_transposed()
        if _best(fn_transposed, repeats) < _best(fn, repeats):
            fn = fn_transposed

    elif method in ("thresholded", "top3"):
        from ltml import thresholded_metrics

        top_k = 3 if method == "top3" else None

        def fn() -> np.ndarray:
            thresholded_metrics(ts, ty, threshold=0.0, top_k=top_k)
            return np.empty(0)

    elif method == "ltml":
        from ltml import average_precision

        def fn() -> np.ndarray:
            return average_precision(ts, ty).numpy()

    elif method == "ltml_meter":
        from ltml import mAPMeter

        meter = mAPMeter(c)
        for i in range(0, n, 256):  # stored batch by batch, as in an evaluation loop
            meter.update(ts[i : i + 256], ty[i : i + 256])

        def fn() -> np.ndarray:
            return meter.compute().ap.numpy()

    elif method == "torchmetrics":
        from torchmetrics.classification import MultilabelAveragePrecision

        def fn() -> np.ndarray:
            metric = MultilabelAveragePrecision(num_labels=c, average=None, thresholds=None)
            metric.update(ts, ty)
            return metric.compute().double().numpy()

    else:
        from sklearn.metrics import average_precision_score

        def fn() -> np.ndarray:
            return np.array(
                [average_precision_score(targets[:, k], scores[:, k]) for k in range(c)]
            )

    fn()  # warm-up: imports, thread pools, first-touch allocations
    base = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    best = _best(fn, repeats)
    values = fn()
    peak = _rss_kib("VmHWM") - base
    return {"seconds": best, "peak_mib": peak / 1024, "values": values.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["5000x20", "50000x80", "200000x1000"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--one", nargs=3, metavar=("IMPLEMENTATION", "N", "C"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        method, n, c = args.one[0], int(args.one[1]), int(args.one[2])
        print(json.dumps(run_one(method, n, c, args.repeats)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}")
    header = f"{'N x C':>13} | {'method':>12} | {'time':>10} | {'peak MiB':>9} | {'max |diff|':>10}"
    print(header + " | / floor | vs sklearn | vs torchmetrics")
    print("-" * (len(header) + 42))
    for size in args.sizes:
        n, c = map(int, size.split("x"))
        results = {}
        for method in IMPLEMENTATIONS:
            slow = method in ("sklearn", "torchmetrics") and n * c > 10**7
            repeats = 1 if slow else args.repeats
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    method,
                    str(n),
                    str(c),
                    "--repeats",
                    str(repeats),
                    *(["--threads", str(args.threads)] if args.threads else []),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            results[method] = json.loads(out.stdout.strip().splitlines()[-1])
        reference = np.array(results["sklearn"]["values"])
        for method, r in results.items():
            diff = (
                "-"
                if method in NOT_AP
                else f"{np.abs(np.array(r['values']) - reference).max():.1e}"
            )
            floor = r["seconds"] / results["floor"]["seconds"]
            vs_sk = results["sklearn"]["seconds"] / r["seconds"]
            vs_tm = results["torchmetrics"]["seconds"] / r["seconds"]
            print(
                f"{size:>13} | {method:>12} | {1e3 * r['seconds']:8.1f}ms | {r['peak_mib']:9.1f} "
                f"| {diff:>10} | {floor:6.2f}x | {vs_sk:9.1f}x | {vs_tm:9.1f}x"
            )


if __name__ == "__main__":
    main()
