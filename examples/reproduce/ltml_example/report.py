"""What a run leaves behind: the results tables, ``results.json`` and the per-class AP plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .presets import PAPER, ROWS

COLUMNS = ("total", "head", "medium", "tail")


def summary(result: Any) -> dict[str, float]:
    """``{total, head, medium, tail}`` mAP in % from an ``ltml.MAPResult``."""
    values = {"total": result.map, **result.groups}
    return {k: 100 * values.get(k, math.nan) for k in COLUMNS}


def thresholded(result: Any) -> dict[str, dict[str, float]]:
    """CF1 / OF1 in %, ``{metric: {total, head, medium, tail}}``, at the threshold and top-3."""
    out = {}
    for prefix, metrics in (("", result.thresholded), ("top3_", result.top_k)):
        for name in ("CF1", "OF1", "CP", "CR", "OP", "OR"):
            values = {"total": getattr(metrics, name)}
            values |= {g: getattr(s, name) for g, s in metrics.groups.items()}
            out[prefix + name] = {k: 100 * values.get(k, math.nan) for k in COLUMNS}
    return out


def thresholded_table(result: Any, fitted: bool) -> str:
    """Format CF1 / OF1 (total / head / medium / tail) beside the mAP."""
    values = thresholded(result)
    where = "per-class thresholds fitted on validation" if fitted else "logit >= 0"
    rows = [(name, values[name], None) for name in ("CF1", "OF1", "top3_CF1", "top3_OF1")]
    return f"thresholded metrics ({where}), %\n" + table(rows)


def table(rows: Sequence[tuple[str, dict[str, float], dict[str, float] | None]]) -> str:
    """Format a text table of ``(label, mean, spread or None)`` rows, mAP % per column."""
    width = max(len(label) for label, _, _ in rows)
    spread_any = any(s is not None for _, _, s in rows)
    cell = 14 if spread_any else 7
    lines = [f"{'':<{width}}  " + "  ".join(f"{c:>{cell}}" for c in COLUMNS)]
    for label, mean, spread in rows:
        cells = []
        for c in COLUMNS:
            text = f"{mean[c]:.2f}"
            if spread is not None:
                text += f" ± {spread[c]:.2f}"
            cells.append(f"{text:>{cell}}")
        lines.append(f"{label:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def row_table(row: str, dataset: str, measured: dict[str, float]) -> str:
    """Format the measured row next to the paper's number for the same row, if published."""
    rows: list[tuple[str, dict[str, float], None]] = [(f"{row}: measured", measured, None)]
    if dataset in PAPER.get(row, {}):
        rows.append((f"{row}: paper", dict(zip(COLUMNS, PAPER[row][dataset], strict=True)), None))
    return f"{ROWS[row].description} ({dataset}), mAP %\n" + table(rows)


def _json_ready(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    return x


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write the results, NaN (a group or class with no value) as null."""
    text = json.dumps(_json_ready(payload), indent=2, default=str, allow_nan=False)
    path.write_text(text + "\n")


def per_class_figure(
    ap: Sequence[float | None],
    counts: Sequence[int],
    groups: dict[str, list[int]],
    classes: Sequence[str],
    title: str,
) -> Any:
    """Bar plot of per-class AP coloured by group, classes sorted by training count (a line).

    Returns the matplotlib figure. Its layout is constrained, and its height grows with the
    longest class name, so that the rotated names and the axis labels all fit inside it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    order = sorted(range(len(counts)), key=lambda k: -counts[k])
    palette = {"head": "tab:blue", "medium": "tab:orange", "tail": "tab:red"}
    group_of = {k: name for name, members in groups.items() for k in members}
    colour = [palette.get(group_of.get(k, ""), "tab:gray") for k in order]
    longest = max((len(c) for c in classes), default=0)
    size = (max(6.0, 0.35 * len(order) + 2), 3.5 + 0.09 * longest)
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    ax.bar(range(len(order)), [100 * (ap[k] or 0.0) for k in order], color=colour)
    ax.set_ylabel("test AP %")
    ax.set_ylim(0, 100)
    ax.set_xticks(range(len(order)), [classes[k] for k in order], rotation=90)
    shown = [g for g in palette if groups.get(g)]
    ax.legend([Patch(color=palette[g]) for g in shown], shown, loc="upper right", fontsize="small")
    twin = ax.twinx()
    twin.plot(range(len(order)), [counts[k] for k in order], "k.-")
    twin.set_yscale("log")
    twin.set_ylabel("training images (log)")
    ax.set_title(title)
    return fig


def plot_per_class(
    path: Path,
    ap: Sequence[float | None],
    counts: Sequence[int],
    groups: dict[str, list[int]],
    classes: Sequence[str],
    title: str,
) -> None:
    """Write :func:`per_class_figure` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = per_class_figure(ap, counts, groups, classes, title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
