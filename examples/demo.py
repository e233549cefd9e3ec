"""The main job: full LTML against the uniform baseline on the embedded demo dataset (CPU, minutes).

The demo dataset (``ltml.data.make_demo``) is a long-tailed multi-label set of 32x32 mosaics of
real handwritten digits (800 images of the most frequent digit, 4 of the rarest); its test set is
balanced. Each row trains a ResNet-18 from scratch with ``examples/train.py``'s code and reports
the last epoch's test mAP (total / head / medium / tail).

    python examples/demo.py                             # LTML vs uniform-only, one seed
    python examples/demo.py --ablation --seeds 0 1 2    # every row, baseline and control
    python examples/demo.py --rows erm ltml --epochs 6  # any train.py flag is passed on
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path

from ltml_example import Config, resolve, run
from ltml_example.config import ROWS
from ltml_example.report import COLUMNS, table

MAIN_ROWS = ("u-only", "ltml")
ABLATION_ROWS = (
    "erm",
    "rs",
    "db-focal",
    "u-only",
    "r-only",
    "both",
    "consistency",
    "ltml",
    "ltml-flip",
    "u-only-2x",
    "mixed",
)


def _timed_run(cfg: Config) -> tuple[dict[str, float], float]:
    t0 = time.perf_counter()
    measured = run(cfg)["test"]
    return measured, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Other flags are passed to examples/train.py (see its --help).",
    )
    parser.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(MAIN_ROWS))
    parser.add_argument("--ablation", action="store_true", help="run every row of ABLATION_ROWS")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--output", type=Path, default=Path("runs") / "demo")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs in parallel (each uses 1 thread unless --threads is given)",
    )
    args, train_flags = parser.parse_known_args(argv)
    rows = ABLATION_ROWS if args.ablation else tuple(args.rows)

    runs = [(row, seed) for seed in args.seeds for row in rows]
    # one thread per run: parallel runs already fill the cores, and oversubscribed OpenMP
    # threads slow every run down
    threads = [] if "--threads" in train_flags else ["--threads", "1"]
    configs = [
        resolve(
            ["--dataset", "demo", *threads, *train_flags],
            row=row,
            seed=seed,
            output=args.output / f"{row}-seed{seed}",
            quiet=True,
            progress=False,
        )
        for row, seed in runs
    ]
    results: dict[str, list[dict[str, float]]] = {row: [] for row in rows}
    seconds: dict[str, list[float]] = {row: [] for row in rows}
    parallel = args.jobs > 1
    with (
        ProcessPoolExecutor(args.jobs, get_context("spawn")) if parallel else nullcontext() as pool
    ):
        outcomes = pool.map(_timed_run, configs) if pool else map(_timed_run, configs)
        for (row, seed), (measured, took) in zip(runs, outcomes, strict=True):
            results[row].append(measured)
            seconds[row].append(took)
            cells = "  ".join(f"{c} {measured[c]:.2f}" for c in COLUMNS)
            print(f"{row:<12} seed {seed}: {cells}  ({took:.0f} s)", flush=True)

    lines = []
    for row in rows:
        mean = {c: statistics.fmean(r[c] for r in results[row]) for c in COLUMNS}
        spread = None
        if len(args.seeds) > 1:
            spread = {c: statistics.stdev(r[c] for r in results[row]) for c in COLUMNS}
        lines.append((f"{row:<12} {ROWS[row][0]}", mean, spread))
    n = len(args.seeds)
    seeds = f"mean ± std over {n} seeds" if n > 1 else f"seed {args.seeds[0]}"
    per_run = statistics.fmean(s for v in seconds.values() for s in v)
    print(f"\ndemo test mAP %, last epoch, {seeds}; {per_run:.0f} s per run")
    print(table(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
