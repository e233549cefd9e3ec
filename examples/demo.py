"""The main job: full LTML against the uniform baseline on the embedded demo dataset (CPU, minutes).

The demo dataset (``ltml.data.make_demo``) is a long-tailed multi-label set of 32x32 mosaics of
real handwritten digits (800 images of the most frequent digit, 4 of the rarest); its test set is
balanced. Each row trains a ResNet-18 from scratch with ``examples/train.py``'s code and reports
the last epoch's test mAP (total / head / medium / tail).

    python examples/demo.py                             # LTML vs uniform-only, one seed
    python examples/demo.py --ablation --seeds 0 1 2    # every row, baseline and control
    python examples/demo.py --rows erm ltml --epochs 6  # any train.py flag is passed on
    python examples/demo.py --decoupled --seeds 0 1 2   # cRT, NCM, tau-norm, LWS, ..., DRW, DRS

Decoupled rows share their stage-1 model: it is trained once per seed (``<row>-stage1-seed<s>``)
before the stage-2 rows, which load it with ``--stage1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ltml_example import Config, resolve, run
from ltml_example.config import ROWS, STAGE1_ROW
from ltml_example.decoupled import stage1_config
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
DECOUPLED_ROWS = ("crt", "ncm", "tau-norm", "lws", "logit-adjust", "ltml-crt", "drw", "drs")


def _timed_run(cfg: Config) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    payload = run(cfg)
    return payload, time.perf_counter() - t0


def _stage1_first(
    runs: list[tuple[str, int]], configs: list[Config], output: Path
) -> list[tuple[list[tuple[str, int]], list[Config]]]:
    """Split the runs in two phases: stage 1 and one-stage rows, then the stage-2 rows.

    A stage-1 model is trained once per stage-1 row and seed; its stage-2 rows load it.
    """
    first: dict[tuple[str, int], Config] = {}
    later: list[tuple[tuple[str, int], Config]] = []
    now: list[tuple[tuple[str, int], Config]] = []
    for (row, seed), cfg in zip(runs, configs, strict=True):
        if cfg.stage2 == "none" or cfg.stage1 is not None:
            now.append(((row, seed), cfg))
            continue
        key = (STAGE1_ROW[row], seed)
        if key not in first:
            first[key] = stage1_config(cfg, output / f"{key[0]}-stage1-seed{seed}")
        later.append(
            ((row, seed), dataclasses.replace(cfg, stage1=first[key].out_dir() / "last.pt"))
        )
    now = [((f"{r}-stage1", s), c) for (r, s), c in first.items()] + now
    return [([k for k, _ in p], [c for _, c in p]) for p in (now, later) if p]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Other flags are passed to examples/train.py (see its --help).",
    )
    parser.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(MAIN_ROWS))
    parser.add_argument("--ablation", action="store_true", help="run every row of ABLATION_ROWS")
    parser.add_argument("--decoupled", action="store_true", help="run every row of DECOUPLED_ROWS")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--output", type=Path, default=Path("runs") / "demo")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs in parallel (each uses 1 thread unless --threads is given)",
    )
    args, train_flags = parser.parse_known_args(argv)
    rows = (
        ABLATION_ROWS if args.ablation else DECOUPLED_ROWS if args.decoupled else tuple(args.rows)
    )

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
    results: dict[str, list[dict[str, float]]] = {}
    seconds: dict[str, list[float]] = {}
    parallel = args.jobs > 1
    with (
        ProcessPoolExecutor(args.jobs, get_context("spawn")) if parallel else nullcontext() as pool
    ):
        for phase_runs, phase_configs in _stage1_first(runs, configs, args.output):
            outcomes = (pool.map if pool else map)(_timed_run, phase_configs)
            for (row, seed), (payload, took) in zip(phase_runs, outcomes, strict=True):
                measured = payload["test"]
                results.setdefault(row, []).append(measured)
                seconds.setdefault(row, []).append(took)
                cells = "  ".join(f"{c} {measured[c]:.2f}" for c in COLUMNS)
                print(f"{row:<12} seed {seed}: {cells}  ({took:.0f} s)", flush=True)
                if "stage1_test_thresholded" in payload:  # a stage-2 row: what it can move
                    after, before = payload["test_thresholded"], payload["stage1_test_thresholded"]
                    print(
                        f"{'':<12} CF1 {before['CF1']:.2f} -> {after['CF1']:.2f}, OF1 "
                        f"{before['OF1']:.2f} -> {after['OF1']:.2f}; mAP of stage 1 "
                        f"{payload['stage1_test']['total']:.2f}, per-class AP unchanged: "
                        f"{payload['per_class_ap_unchanged']}",
                        flush=True,
                    )

    lines = []
    for row in results:
        mean = {c: statistics.fmean(r[c] for r in results[row]) for c in COLUMNS}
        spread = None
        if len(args.seeds) > 1:
            spread = {c: statistics.stdev(r[c] for r in results[row]) for c in COLUMNS}
        text = ROWS[row][0] if row in ROWS else f"stage 1 of the decoupled rows ({row[:-7]})"
        lines.append((f"{row:<12} {text}", mean, spread))
    n = len(args.seeds)
    seeds = f"mean ± std over {n} seeds" if n > 1 else f"seed {args.seeds[0]}"
    per_run = statistics.fmean(s for v in seconds.values() for s in v)
    print(f"\ndemo test mAP %, last epoch, {seeds}; {per_run:.0f} s per run")
    print(table(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
