"""Every row x seeds on the same footing: the leaderboard table, its JSON and its figure.

Runs each row of ``--rows`` (default: every ``--row`` preset of train.py) for each seed, in
``--jobs`` processes (default: one per CPU core, one on a CUDA machine), one torch thread each,
and writes ``leaderboard.md``, ``leaderboard.json`` and ``leaderboard.png`` into ``--output``.
Every run is selected at its last epoch; the test set selects nothing. Decoupled rows load one
stage-1 model per seed. Finished runs are read back, not run again; failed or diverged runs are
listed as failed.

    python examples/reproduce/leaderboard.py                            # every row, seeds 0 1 2
    python examples/reproduce/leaderboard.py --rows erm ltml --seeds 0  # a small one
    python examples/reproduce/leaderboard.py --missing-rate 0.4         # 40 % labels hidden
    python examples/reproduce/leaderboard.py --dataset voc-lt --data-root data/voc --seeds 0
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ltml_example.decoupled import KEEPS_AP
from ltml_example.errors import told_in_one_paragraph
from ltml_example.presets import PAPER, ROWS
from ltml_example.report import COLUMNS, write_json
from ltml_example.sweep import Run, default_jobs, execute, mean_std, plan, progress_line

METRICS = (*COLUMNS, "CF1", "OF1")
SELECTION = (
    "the last epoch's model; the test set never chooses an epoch, a model or a threshold "
    "(stage-2 rows choose τ on a validation split held out of training)"
)


def machine() -> str:
    """Describe the machine: system, CPU cores, GPU if any, torch version."""
    cores = default_jobs() if not torch.cuda.is_available() else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {cores} CPU cores{gpu}, torch {torch.__version__}"


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def measured(payload: dict[str, Any]) -> dict[str, float]:
    """Test mAP % per group, and CF1 / OF1 % (all classes) of one run's ``results.json``."""
    values = {c: _number(payload["test"][c]) for c in COLUMNS}
    for name in ("CF1", "OF1"):
        value = payload.get("test_thresholded", {}).get(name)
        # one-stage runs store each metric per group, stage-2 runs the total only
        values[name] = _number(value["total"] if isinstance(value, dict) else value)
    return values


def describe(name: str) -> str:
    """Return a row's description; ``<row>-stage1`` is the stage-1 model of decoupled rows."""
    if name in ROWS:
        return ROWS[name].description
    return f"stage 1 of the decoupled rows ({name.removesuffix('-stage1')}, 90 % of train)"


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """One entry per row: mean ± std over its finished seeds, sorted by total mAP, failed last."""
    lines = []
    for name in dict.fromkeys(r.name for r in runs):
        mine = [r for r in runs if r.name == name]
        ok = [r for r in mine if r.status == "ok"]
        mean, spread = (
            mean_std([measured(r.payload or {}) for r in ok], METRICS) if ok else ({}, None)
        )
        timed = [r.seconds for r in ok if r.seconds is not None]
        lines.append(
            {
                "row": name,
                "description": describe(name),
                "stage": mine[0].stage,
                "seeds": [r.seed for r in mine],
                "failed_seeds": [r.seed for r in mine if r.status != "ok"],
                "mean": mean,
                "std": spread,
                "seconds_per_run": sum(timed) / len(timed) if timed else None,
                "paper": {
                    dataset: dict(zip(COLUMNS, values, strict=True))
                    for dataset, values in PAPER.get(name, {}).items()
                },
            }
        )
    return sorted(lines, key=lambda line: (not line["mean"], -line["mean"].get("total", 0.0)))


def _cell(line: dict[str, Any], metric: str) -> str:
    value = line["mean"].get(metric, math.nan)
    if math.isnan(value):
        return "—"
    if line["std"] is None:
        return f"{value:.2f}"
    return f"{value:.2f} ± {line['std'][metric]:.2f}"


def table(lines: list[dict[str, Any]]) -> str:
    """Format the Markdown table (best total mAP first), then each row's stage, time and paper."""
    head = ["row", *COLUMNS, "CF1", "OF1"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    legend = [
        "",
        "Rows, best first (stage; seconds per run; seeds finished; published total mAP):",
        "",
    ]
    for line in lines:
        mark = " †" if line["row"] in KEEPS_AP else ""
        out.append(
            "| " + " | ".join([f"`{line['row']}`{mark}", *(_cell(line, m) for m in METRICS)]) + " |"
        )
        failed = line["failed_seeds"]
        seeds = f"{len(line['seeds']) - len(failed)} / {len(line['seeds'])} seeds"
        if failed:
            seeds += " (failed: " + ", ".join(map(str, failed)) + ")"
        took = line["seconds_per_run"]
        paper = [line["paper"].get(d, {}).get("total") for d in ("voc-lt", "coco-lt")]
        facts = [
            f"stage {line['stage']}",
            "— s" if took is None else f"{took:.0f} s",
            seeds,
            "paper VOC-LT / COCO-LT " + " / ".join("—" if p is None else f"{p:.2f}" for p in paper),
        ]
        legend.append(f"- `{line['row']}`{mark}: {line['description']} ({'; '.join(facts)})")
    return "\n".join(out + legend)


def header(info: dict[str, Any], runs: list[Run]) -> str:
    """Say what the table is: command, dataset, seeds, selection, machine, time, caveats."""
    controls = [row for row in info["rows"] if ROWS[row].description.startswith("control")]
    keeps = [row for row in info["rows"] if row in KEEPS_AP]
    failed = [f"`{r.name}` seed {r.seed}: {r.error}" for r in runs if r.status != "ok"]
    resumed = sum(r.resumed for r in runs)
    cfg = runs[0].config
    data: str = cfg.dataset  # grows into a description
    if cfg.missing_rate:
        data += (
            f", {100 * cfg.missing_rate:g} % of the training labels hidden ({cfg.missing_scheme})"
        )
    compute = sum(r.seconds or 0.0 for r in runs)
    lines = [
        f"Generated {info['date']} by `{info['command']}`.",
        "",
        f"- **dataset**: {data}; test mAP % (total / head / medium / tail), CF1 / OF1 % at "
        "logit 0 (all classes)",
        f"- **seeds**: {' '.join(map(str, info['seeds']))}; mean ± sample std over the seeds "
        "that finished",
        f"- **selection**: {SELECTION}",
        f"- **machine**: {info['machine']}, {info['jobs']} runs in parallel",
        f"- **wall time**: {info['wall_seconds'] / 60:.1f} min for this invocation "
        f"({len(runs) - resumed} runs run, {resumed} read back); {compute / 60:.1f} min of runs "
        "in all",
        "- **cannot change mAP** (†): "
        + (
            ", ".join(f"`{r}`" for r in keeps)
            + " (increasing per-class maps of their stage-1 scores: their mAP is the stage-1 "
            "row's, only CF1 / OF1 move)"
            if keeps
            else "none of these rows"
        ),
        "- **controls**: " + (", ".join(f"`{r}`" for r in controls) or "none of these rows"),
        "- **stage**: 2 = a classifier re-fitted on the frozen features of the stage-1 model "
        "of the same seed (trained once, shared by the stage-2 rows; the stage-2 rows' "
        "seconds leave it out)",
        "- **VOC-LT / COCO-LT**: published total mAP of the same row, where there is one",
        "- **failed runs**: " + ("; ".join(failed) if failed else "none"),
    ]
    return "\n".join(lines)


def figure(path: Path, lines: list[dict[str, Any]], title: str) -> None:
    """Plot mAP per group per row, mean ± std as error bars, best total on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"total": "black", "head": "tab:blue", "medium": "tab:orange", "tail": "tab:red"}
    height = 0.2
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.55 * len(lines)))
    for k, column in enumerate(COLUMNS):
        positions = [i + (k - 1.5) * height for i in range(len(lines))]
        means = [line["mean"].get(column, math.nan) for line in lines]
        spread = [line["std"][column] if line["std"] else 0.0 for line in lines]
        ax.barh(
            positions, means, height, xerr=spread, color=colours[column], label=column, capsize=2
        )
    labels = [
        line["row"]
        + (" †" if line["row"] in KEEPS_AP else "")
        + (" (failed)" if len(line["failed_seeds"]) == len(line["seeds"]) else "")
        for line in lines
    ]
    ax.set_yticks(range(len(lines)), labels)
    ax.invert_yaxis()  # best first
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"test mAP %, {title} († cannot change mAP)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Other flags are passed to examples/reproduce/train.py (see its --help).",
    )
    parser.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--output", type=Path, default=Path("runs") / "leaderboard")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="runs in parallel")
    parser.add_argument(
        "--retry-failed", action="store_true", help="run again the runs recorded as failed"
    )
    args, train_flags = parser.parse_known_args(argv)
    argv = sys.argv[1:] if argv is None else argv

    t0 = time.perf_counter()
    runs = []
    for r in execute(
        plan(args.rows, args.seeds, train_flags, args.output),
        args.jobs,
        resume=True,
        retry_failed=args.retry_failed,
    ):
        runs.append(r)
        print(progress_line(r), flush=True)
    info = {
        "command": shlex.join(["python", "examples/reproduce/leaderboard.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rows": args.rows,
        "seeds": args.seeds,
        "flags": train_flags,
        "selection": SELECTION,
        "machine": machine(),
        "jobs": args.jobs,
        "wall_seconds": time.perf_counter() - t0,
    }
    lines = summarise(runs)
    text = header(info, runs) + "\n\n" + table(lines) + "\n"
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "leaderboard.md").write_text(text)
    records = [
        {
            "row": r.name,
            "seed": r.seed,
            "stage": r.stage,
            "status": r.status,
            "error": r.error,
            "seconds": r.seconds,
            "read_back": r.resumed,
            "stage1": None if r.needs is None else r.needs.name,
            "results": str(r.config.out_dir() / "results.json"),
            "measured": measured(r.payload) if r.payload and r.status == "ok" else None,
        }
        for r in runs
    ]
    write_json(args.output / "leaderboard.json", {**info, "table": lines, "runs": records})
    dataset = runs[0].config.dataset
    seeds = " ".join(map(str, args.seeds))
    figure(args.output / "leaderboard.png", lines, f"{dataset}, mean ± std over seeds {seeds}")
    print("\n" + text)
    print(f"wrote {args.output / 'leaderboard.md'}, leaderboard.json, leaderboard.png")


if __name__ == "__main__":
    with told_in_one_paragraph("leaderboard.py"):
        main(sys.argv[1:])
