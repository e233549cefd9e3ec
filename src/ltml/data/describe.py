"""The long-tail report of a label table, from the command line.

    python -m ltml.data.describe labels.csv
    python -m ltml.data.describe labels.tsv --figure profile.png --thresholds 10 50

Reads the table as :func:`~ltml.data.read_label_table` (tags or one column per class; no image is
opened) and prints :func:`~ltml.data.describe_labels`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from .report import describe_labels
from .table import read_label_table


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status."""
    p = argparse.ArgumentParser(
        prog="python -m ltml.data.describe",
        description="How long-tailed are the labels of a CSV / TSV table?",
    )
    p.add_argument("table", type=Path, help="CSV or TSV file, one row per image")
    p.add_argument("--image-column", help="column of image paths [default: the first]")
    p.add_argument(
        "--tags-column", help="column of tags, e.g. 'cat|dog' [default: 'tags' if present]"
    )
    p.add_argument("--tag-separator", default="|", help="what joins tags [default: |]")
    p.add_argument("--delimiter", help="field delimiter [default: by suffix / header]")
    p.add_argument(
        "--thresholds",
        type=int,
        nargs=2,
        default=(20, 100),
        metavar=("LOW", "HIGH"),
        help="tail < LOW <= medium < HIGH <= head [default: 20 100]",
    )
    p.add_argument("--few", type=int, default=5, help="list classes under this count [5]")
    p.add_argument("--pairs", type=int, default=10, help="co-occurring pairs to list [10]")
    p.add_argument("--max-classes", type=int, default=40, help="rows of the per-class table [40]")
    p.add_argument("--figure", type=Path, help="write the class profile here (needs matplotlib)")
    args = p.parse_args(argv)
    try:
        table = read_label_table(
            args.table,
            image_column=args.image_column,
            tags_column=args.tags_column,
            tag_separator=args.tag_separator,
            delimiter=args.delimiter,
            sparse=None,  # a large table stays sparse: describe_labels reads either form
        )
        report = describe_labels(
            table.labels,
            table.classes,
            thresholds=tuple(args.thresholds),
            few=args.few,
            top_pairs=args.pairs,
        )
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.format(args.max_classes, title=str(args.table)))
    if args.figure is not None:
        if importlib.util.find_spec("matplotlib") is None:
            print("no figure: matplotlib is not installed (pip install matplotlib)")
        else:
            report.plot(args.figure)
            print(f"\nwrote the class profile to {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
