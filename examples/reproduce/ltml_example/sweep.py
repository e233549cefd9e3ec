"""Many runs at once: rows x seeds, stage-1 models shared, a process pool, mean ± std.

``demo.py`` and ``leaderboard.py`` both plan their runs with :func:`plan`, run them with
:func:`execute` and aggregate seeds with :func:`mean_std`. A stage-1 model is trained once per
stage-1 row and seed, before the stage-2 rows that load it. With ``resume``, a run whose
``results.json`` holds the same configuration is read back instead of run again, and a run
recorded as failed with the same configuration stays failed (``retry_failed`` runs it again).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from . import report
from .config import Config
from .decoupled import stage1_config
from .engine import run
from .errors import UsageError
from .flags import resolve
from .presets import STAGE1_ROW


@dataclasses.dataclass
class Run:
    """One run of a sweep: its name (a row, or ``<row>-stage1``), seed, configuration, outcome."""

    name: str
    seed: int
    config: Config
    needs: Run | None = None  # the stage-1 run a stage-2 run loads
    status: str = "pending"  # ok | failed
    payload: dict[str, Any] | None = None
    seconds: float | None = None
    error: str | None = None
    usage_error: bool = False  # failed on a mistake in its settings or files (errors.UsageError)
    resumed: bool = False

    @property
    def stage(self) -> int:
        """2 for a decoupled row (stage 2 on a stage-1 model's features), else 1."""
        return 1 if self.config.stage2 == "none" else 2


def default_jobs() -> int:
    """One run per CPU core; one at a time on a CUDA machine (the runs would share the GPU)."""
    if torch.cuda.is_available():
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan(
    rows: Sequence[str], seeds: Sequence[int], flags: Sequence[str], output: Path
) -> list[list[Run]]:
    """Resolve every ``(row, seed)`` on the demo, one torch thread each, into two phases.

    Phase 1: the stage-1 models (``<row>-stage1-seed<s>``, one per stage-1 row and seed) and the
    one-stage rows; phase 2: the stage-2 rows, each loading its stage-1 model with ``--stage1``.
    ``flags`` are train.py flags (``--dataset`` among them overrides the demo).
    """
    # one thread per run: parallel runs already fill the cores, and oversubscribed OpenMP
    # threads slow every run down
    threads = [] if "--threads" in flags else ["--threads", "1"]
    first: dict[tuple[str, int], Run] = {}
    now: list[Run] = []
    later: list[Run] = []
    for seed in seeds:
        for row in rows:
            cfg = resolve(
                ["--dataset", "demo", *threads, *flags],
                row=row,
                seed=seed,
                output=output / f"{row}-seed{seed}",
                quiet=True,
                progress=False,
            )
            if cfg.stage2 == "none" or cfg.stage1 is not None:
                now.append(Run(row, seed, cfg))
                continue
            key = (STAGE1_ROW[row], seed)
            if key not in first:
                stage1 = stage1_config(cfg, output / f"{key[0]}-stage1-seed{seed}")
                first[key] = Run(f"{key[0]}-stage1", seed, stage1)
            needs = first[key]
            loads = dataclasses.replace(cfg, stage1=needs.config.out_dir() / "last.pt")
            later.append(Run(row, seed, loads, needs=needs))
    return [p for p in ([*first.values(), *now], later) if p]


Outcome = tuple[dict[str, Any] | None, float, str | None, bool]


def attempt(cfg: Config) -> Outcome:
    """Run ``cfg``; return its results, seconds, the error that stopped it (or None), usage.

    ``usage``: whether the error is a mistake in the settings or files (its message says it all).
    """
    t0 = time.perf_counter()
    try:
        payload = run(cfg)
    except UsageError as error:
        return None, time.perf_counter() - t0, str(error), True
    except Exception as error:  # recorded as a failed run, never dropped
        last = traceback.extract_tb(error.__traceback__)[-1]
        where = f" ({Path(last.filename).name}:{last.lineno})"
        return None, time.perf_counter() - t0, f"{type(error).__name__}: {error}{where}", False
    total = payload["test"]["total"]
    if total is None or math.isnan(total):
        return payload, time.perf_counter() - t0, "diverged: test mAP is NaN", False
    return payload, time.perf_counter() - t0, None, False


def _record(cfg: Config) -> Any:
    """Return the configuration as ``results.json`` stores it (JSON: tuples as lists)."""
    return json.loads(json.dumps(cfg.record(), default=str))


def _read_back(r: Run, retry_failed: bool) -> bool:
    """Fill ``r`` from an earlier invocation's files if they hold the same configuration."""
    out = r.config.out_dir()
    results, outcome = out / "results.json", out / "outcome.json"
    saved = json.loads(outcome.read_text()) if outcome.is_file() else {}
    same = saved.get("config") == _record(r.config)
    if same and saved.get("status") == "failed":
        if retry_failed:
            return False
        r.status, r.error, r.seconds = "failed", saved["error"], saved["seconds"]
        r.usage_error = saved.get("usage_error", False)
    elif results.is_file() and json.loads(results.read_text())["config"] == _record(r.config):
        r.status, r.payload = "ok", json.loads(results.read_text())
        r.seconds = saved.get("seconds") if same else None
    else:
        return False
    r.resumed = True
    return True


def _finish(
    r: Run, payload: dict[str, Any] | None, seconds: float, error: str | None, usage: bool
) -> None:
    r.payload, r.seconds, r.error, r.usage_error = payload, seconds, error, usage
    r.status = "failed" if error else "ok"
    outcome = {"status": r.status, "seconds": seconds, "error": error, "usage_error": usage}
    r.config.out_dir().mkdir(parents=True, exist_ok=True)
    report.write_json(r.config.out_dir() / "outcome.json", {**outcome, "config": _record(r.config)})


def execute(
    phases: list[list[Run]], jobs: int, resume: bool = False, retry_failed: bool = False
) -> Iterator[Run]:
    """Run the phases in order, ``jobs`` processes at a time; yield each run once it is done.

    Runs are yielded in plan order. A stage-2 run whose stage-1 model failed fails without
    running. Each run leaves ``outcome.json`` (status, seconds, error) beside its results.
    """
    pool = ProcessPoolExecutor(jobs, get_context("spawn")) if jobs > 1 else nullcontext()
    with pool as executor:
        for phase in phases:
            todo = []
            for r in phase:
                if resume and _read_back(r, retry_failed):
                    continue
                if r.needs is not None and r.needs.status != "ok":
                    _finish(r, None, 0.0, f"its stage-1 model {r.needs.name} failed", False)
                    continue
                todo.append(r)
            outcomes = (executor.map if executor else map)(attempt, [r.config for r in todo])
            done = iter(zip(todo, outcomes, strict=True))
            for r in phase:
                if r.status == "pending":
                    _, outcome = next(done)
                    _finish(r, *outcome)
                yield r


def mean_std(
    values: Sequence[dict[str, float]], columns: Sequence[str]
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Mean and sample std over seeds of each column; no spread for a single seed."""
    mean = {c: statistics.fmean(v[c] for v in values) for c in columns}
    if len(values) < 2:
        return mean, None
    return mean, {c: statistics.stdev(v[c] for v in values) for c in columns}


def progress_line(r: Run) -> str:
    """One line per finished run: its mAP per group and seconds, or why it failed."""
    if r.status != "ok":
        return f"{r.name:<12} seed {r.seed}: FAILED {r.error}"
    measured = r.payload["test"]  # type: ignore[index]
    # a group with no class is NaN in memory, null once read back from results.json
    cells = "  ".join(
        f"{c} {math.nan if measured[c] is None else measured[c]:.2f}" for c in report.COLUMNS
    )
    took = "read back" if r.resumed else f"{r.seconds:.0f} s"
    return f"{r.name:<12} seed {r.seed}: {cells}  ({took})"
