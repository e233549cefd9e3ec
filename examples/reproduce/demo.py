"""The main job: full LTML against the uniform baseline on the embedded demo dataset (CPU, minutes).

The demo dataset (``ltml.data.make_demo``) is a long-tailed multi-label set of 32x32 mosaics of
real handwritten digits (800 images of the most frequent digit, 4 of the rarest); its test set is
balanced. Each row trains a ResNet-18 from scratch with ``examples/reproduce/train.py``'s code and
reports the last epoch's test mAP (total / head / medium / tail).

    python examples/reproduce/demo.py                            # LTML vs uniform-only, one seed
    python examples/reproduce/demo.py --ablation --seeds 0 1 2   # every row, baseline, control
    python examples/reproduce/demo.py --rows erm ltml --epochs 6 # any train.py flag is passed on
    python examples/reproduce/demo.py --decoupled --seeds 0 1 2  # cRT, NCM, tau-norm, ..., DRS

Runs go in parallel processes, one per CPU core (``--jobs``; one at a time on a CUDA machine),
each on one torch thread: the results are those of running them one after the other, and are
printed in the same order. Decoupled rows share their stage-1 model: it is trained once per seed
(``<row>-stage1-seed<s>``) before the stage-2 rows, which load it with ``--stage1``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from ltml_example.errors import UsageError, told_in_one_paragraph
from ltml_example.presets import ROWS
from ltml_example.report import COLUMNS, table
from ltml_example.sweep import default_jobs, execute, mean_std, plan, progress_line

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Other flags are passed to examples/reproduce/train.py (see its --help).",
    )
    parser.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(MAIN_ROWS))
    parser.add_argument("--ablation", action="store_true", help="run every row of ABLATION_ROWS")
    parser.add_argument("--decoupled", action="store_true", help="run every row of DECOUPLED_ROWS")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--output", type=Path, default=Path("runs") / "demo")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="runs in parallel, each on 1 thread unless --threads is given [default: one per "
        "CPU core, at most one per run; 1 on a CUDA machine]",
    )
    args, train_flags = parser.parse_known_args(argv)
    rows = (
        ABLATION_ROWS if args.ablation else DECOUPLED_ROWS if args.decoupled else tuple(args.rows)
    )

    phases = plan(rows, args.seeds, train_flags, args.output)
    jobs = args.jobs or min(default_jobs(), max(len(phase) for phase in phases))
    results: dict[str, list[dict[str, float]]] = {}
    seconds: list[float] = []
    t0 = time.perf_counter()
    for r in execute(phases, jobs):
        if r.status != "ok":
            failure = UsageError if r.usage_error else RuntimeError
            raise failure(f"{r.name} seed {r.seed} failed: {r.error}")
        payload = r.payload or {}
        results.setdefault(r.name, []).append(payload["test"])
        seconds.append(r.seconds or 0.0)
        print(progress_line(r), flush=True)
        if "stage1_test_thresholded" in payload:  # a stage-2 row: the metrics it can move
            after, before = payload["test_thresholded"], payload["stage1_test_thresholded"]
            print(
                f"{'':<12} CF1 {before['CF1']:.2f} -> {after['CF1']:.2f}, OF1 "
                f"{before['OF1']:.2f} -> {after['OF1']:.2f}; mAP of stage 1 "
                f"{payload['stage1_test']['total']:.2f}, per-class AP unchanged: "
                f"{payload['per_class_ap_unchanged']}",
                flush=True,
            )

    lines = []
    for row, values in results.items():
        mean, spread = mean_std(values, COLUMNS)
        text = (
            ROWS[row].description if row in ROWS else f"stage 1 of the decoupled rows ({row[:-7]})"
        )
        lines.append((f"{row:<12} {text}", mean, spread))
    n = len(args.seeds)
    seeds = f"mean ± std over {n} seeds" if n > 1 else f"seed {args.seeds[0]}"
    per_run = statistics.fmean(seconds)
    wall = time.perf_counter() - t0
    print(
        f"\ndemo test mAP %, last epoch, {seeds}; {per_run:.0f} s per run, {wall:.0f} s in all "
        f"({jobs} at a time)"
    )
    print(table(lines))


if __name__ == "__main__":
    with told_in_one_paragraph("demo.py"):
        main(sys.argv[1:])
