"""The long-tail report of a label table, from the command line.

    python -m ltml.data.describe labels.csv
    python -m ltml.data.describe labels.tsv --figure profile.png --thresholds 10 50
    python -m ltml.data.describe nih.tsv.gz --ignore-columns patient --shares 0.02 0.1
    python -m ltml.data.describe findings.csv --tags-column "Finding Labels" --no-label "No Finding"

Reads the table as :func:`~ltml.data.read_label_table` (tags or one column per class, gzip or
not; no image is opened) and prints :func:`~ltml.data.describe_labels`. Warnings go to stderr;
the report's own (one group holding every class) are in its text.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings
from pathlib import Path

from .report import describe_labels
from .table import read_label_table

# Escapes a user may type for a delimiter that a shell does not pass as one character.
_ESCAPES = {"\\t": "\t", "tab": "\t", "TAB": "\t"}


def main(argv: list[str] | None = None, prog: str = "python -m ltml.data.describe") -> int:
    """Run the command; return its exit status."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="How long-tailed are the labels of a CSV / TSV table?",
    )
    p.add_argument("table", type=Path, help="CSV or TSV file (or .csv.gz), one row per image")
    p.add_argument("--image-column", help="column of image paths [default: the first]")
    p.add_argument(
        "--tags-column", help="column of tags, e.g. 'cat|dog' [default: 'tags' if present]"
    )
    p.add_argument("--tag-separator", default="|", help="what joins tags [default: |]")
    p.add_argument(
        "--delimiter", help="field delimiter, one character or '\\t' [default: by suffix / header]"
    )
    p.add_argument(
        "--classes",
        "--columns",
        nargs="+",
        metavar="NAME",
        help="the label columns to read (columns form) or the classes in order (tags form)",
    )
    p.add_argument(
        "--ignore-columns",
        nargs="+",
        default=(),
        metavar="NAME",
        help="columns that are not classes, e.g. a patient id (columns form)",
    )
    p.add_argument(
        "--unknown", metavar="MARKER", help="tags form: a cell meaning 'tags unknown', e.g. NA"
    )
    p.add_argument(
        "--no-label", metavar="TAG", help="tags form: a tag meaning 'no class', e.g. 'No Finding'"
    )
    limits = p.add_mutually_exclusive_group()
    limits.add_argument(
        "--thresholds",
        type=int,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="group limits in images: tail < LOW <= medium < HIGH <= head [default: 20 100]",
    )
    limits.add_argument(
        "--shares",
        type=float,
        nargs=2,
        metavar=("A", "B"),
        help="group limits as shares of the images, e.g. 0.02 0.1",
    )
    limits.add_argument(
        "--quantiles",
        type=float,
        nargs=2,
        metavar=("A", "B"),
        help="group limits as quantiles of the class counts, e.g. 0.333 0.667",
    )
    p.add_argument("--few", type=int, default=5, help="list classes under this count [5]")
    p.add_argument("--pairs", type=int, default=10, help="co-occurring pairs to list [10]")
    p.add_argument("--max-classes", type=int, default=40, help="rows of the per-class table [40]")
    p.add_argument("--figure", type=Path, help="write the class profile here (needs matplotlib)")
    args = p.parse_args(argv)
    if args.delimiter in _ESCAPES:  # a shell passes '\t' as two characters
        args.delimiter = _ESCAPES[args.delimiter]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = read_label_table(
                args.table,
                image_column=args.image_column,
                tags_column=args.tags_column,
                tag_separator=args.tag_separator,
                classes=args.classes,
                delimiter=args.delimiter,
                unknown=args.unknown,
                no_label=args.no_label,
                ignore_columns=args.ignore_columns,
                sparse=None,  # a large table stays sparse: describe_labels reads either form
            )
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the report's notes are in its text
            report = describe_labels(
                table.labels,
                table.classes,
                thresholds=None if args.thresholds is None else tuple(args.thresholds),
                shares=None if args.shares is None else tuple(args.shares),
                quantiles=None if args.quantiles is None else tuple(args.quantiles),
                few=args.few,
                top_pairs=args.pairs,
            )
    except (OSError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        text = report.format(args.max_classes, title=str(args.table))
    except (ValueError, TypeError) as err:
        print(f"error: {err} (--max-classes)", file=sys.stderr)
        return 1
    print(text)
    if args.figure is not None:
        if importlib.util.find_spec("matplotlib") is None:
            print("no figure: matplotlib is not installed (pip install matplotlib)")
        else:
            try:
                report.plot(args.figure)
            except (OSError, ValueError) as err:
                print(f"error: no figure written: {err} (--figure)", file=sys.stderr)
                return 1
            print(f"\nwrote the class profile to {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
