"""How long-tailed is a label matrix? One call, numbers and a figure.

:func:`describe_labels` gathers what decides how to train on a multi-label long tail: the
head / medium / tail groups of the benchmarks (Wu et al., ECCV 2020), the imbalance ratio, the
classes too rare to split or evaluate, and the most frequent co-occurring pairs: a rare class that
mostly appears with a frequent one keeps that co-label bias under any class-aware sampler, since
re-sampling an image re-samples all its labels (Wu et al., 2020; Guo & Wang, CVPR 2021).
``python -m ltml.data.describe labels.csv`` prints the same report for a table.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._label_forms import image_positives, pair_counts, read_labels, shape_of, unknown_counts
from .._validation import as_class_names, as_path, check_int
from ..stats import GROUP_NAMES, class_groups, group_limits

_PALETTE = {"head": "tab:blue", "medium": "tab:orange", "tail": "tab:red"}


@dataclass(frozen=True)
class LabelReport:
    """The long-tail report of a label matrix, from :func:`describe_labels`.

    ``str(report)`` (or :meth:`format`) is the text for a terminal; :meth:`plot` draws the class
    profile. Counts are of known positives (-1 = unknown is not counted); shares are of the
    images where the class is known.
    """

    num_images: int
    classes: tuple[str, ...]
    counts: list[int]
    """Positive images per class."""
    mean_labels_per_image: float
    max_labels_per_image: int
    images_without_label: int
    """Images with no known positive and at least one known label (entirely unknown rows are
    :attr:`images_unknown`)."""
    unknown_share: float
    """Fraction of the ``N x C`` entries that are -1."""
    thresholds: tuple[int, int]
    """The head / medium / tail limits ``(low, high)`` in images, however they were given."""
    groups: dict[str, list[int]]
    """``{"head", "medium", "tail"}``: class indices, by ``thresholds``."""
    imbalance_ratio: float
    """Largest count over the smallest non-zero count (NaN when no class has a positive)."""
    empty_classes: list[int]
    """Classes with no positive."""
    few: int
    few_classes: list[int]
    """Classes with 1 to ``few - 1`` positives."""
    top_pairs: list[tuple[int, int, int]]
    """``(a, b, images with both)``, most frequent first, ``count[a] >= count[b]``."""
    tail_companions: list[tuple[int, int, int]]
    """``(tail class, the class it most often appears with, images with both)``."""
    unknown_per_class: list[float] = field(default_factory=list)
    """Per class, the fraction of the images whose label is -1."""
    images_unknown: int = 0
    """Images whose every label is -1 (e.g. a tags row marked unknown): left out of the
    per-image figures."""
    images_with_unknown: int = 0
    """Images with at least one label -1 (including :attr:`images_unknown`)."""
    limits: str = ""
    """How the group limits were set when not in images: ``"shares (0.02, 0.1) of 1,000
    images"``, ``"quantiles ..."``; empty for limits in images."""
    notes: tuple[str, ...] = ()
    """Warnings about the data, shown at the top of the text (e.g. every class in one group)."""

    @property
    def num_classes(self) -> int:
        """Number of classes ``C``."""
        return len(self.classes)

    def format(self, max_classes: int = 40, title: str = "") -> str:
        """Return the report as text, at most ``max_classes`` rows of the per-class table."""
        check_int(max_classes, "max_classes", low=0)
        if not isinstance(title, str):
            raise TypeError(f"`title` must be a str, got {type(title).__name__}")
        c, counts = self.num_classes, self.counts
        group_of = {k: g for g, members in self.groups.items() for k in members}
        low, high = self.thresholds
        sizes = {g: len(self.groups[g]) for g in GROUP_NAMES}
        head = f"{title}{': ' if title else ''}{self.num_images:,} images, {c:,} classes"
        unknown = f"unknown (-1)        {100 * self.unknown_share:.1f} % of the labels"
        if self.images_with_unknown:
            partly = self.images_with_unknown - self.images_unknown
            unknown += f"; images: {self.images_unknown:,} entirely unknown, {partly:,} partly"
        lines = [
            head,
            "=" * len(head),
            *(
                line
                for note in self.notes
                for line in textwrap.wrap(
                    f"warning: {note}", 98, subsequent_indent="         ", break_on_hyphens=False
                )
            ),
            f"labels per image    mean {self.mean_labels_per_image:.2f}, max "
            f"{self.max_labels_per_image}; {self.images_without_label:,} image(s) with none",
            unknown,
            f"positives / class   {max(counts):,} .. {min(counts):,}; imbalance ratio "
            f"{self.imbalance_ratio:.1f} (largest / smallest non-zero)",
            f"groups              head {sizes['head']} (>= {high:,}), medium {sizes['medium']} "
            f"({low:,}-{high - 1:,}), tail {sizes['tail']} (< {low:,})",
            *([f"group limits        {self.limits}"] if self.limits else []),
            f"no positive         {self._names(self.empty_classes)}",
            f"{f'under {self.few} positives':<20}{self._names(self.few_classes)}",
            "",
            "per class, most frequent first (share: of the images where the class is known)",
        ]
        width = max(5, *(len(n) for n in self.classes))
        order = sorted(range(c), key=lambda k: (-counts[k], k))
        shown = order
        if c > max_classes:
            shown = [*order[: max_classes // 2], -1, *order[c - max_classes // 2 :]]
        with_unknown = any(self.unknown_per_class)
        extra = f"  {'unknown':>7}" if with_unknown else ""
        lines.append(
            f"  {'rank':>5}  {'class':<{width}}  {'images':>9}  {'share':>7}{extra}  group"
        )
        for rank, k in ((order.index(k) if k >= 0 else -1, k) for k in shown):
            if k < 0:
                lines.append(f"  {'...':>5}  ({c - 2 * (max_classes // 2)} more)")
                continue
            unknown_k = self.unknown_per_class[k] if self.unknown_per_class else 0.0
            known = self.num_images * (1 - unknown_k)
            share = 100 * counts[k] / known if known >= 0.5 else math.nan
            extra = f"  {100 * unknown_k:>6.2f}%" if with_unknown else ""
            lines.append(
                f"  {rank + 1:>5}  {self.classes[k]:<{width}}  {counts[k]:>9,}  {share:>6.2f}%"
                f"{extra}  {group_of[k]}"
            )
        if self.top_pairs:
            lines += ["", "most frequent co-occurring pairs (share: of the rarer class's images)"]
            for a, b, both in self.top_pairs:
                pair = f"{self.classes[a]} + {self.classes[b]}"
                share = 100 * both / max(counts[b], 1)
                lines.append(f"  {pair:<{2 * width + 3}}  {both:>9,}  {share:>5.1f}%")
        if self.tail_companions:
            lines += [
                "",
                "tail classes and their most frequent companion (share: of the tail's images)",
            ]
            for a, b, both in self.tail_companions:
                pair = f"{self.classes[a]} + {self.classes[b]}"
                share = 100 * both / max(counts[a], 1)
                lines.append(f"  {pair:<{2 * width + 3}}  {both:>9,}  {share:>5.1f}%")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def _names(self, indices: list[int], limit: int = 8) -> str:
        if not indices:
            return "none"
        names = ", ".join(self.classes[k] for k in indices[:limit])
        return f"{len(indices)}: {names}" + (", ..." if len(indices) > limit else "")

    def plot(self, path: str | Path | None = None) -> Any:
        """Draw the class profile: positives per class on a log axis, sorted, groups coloured.

        Needs matplotlib (``pip install matplotlib``). Returns the figure; saves it when ``path``
        is given (and closes it).
        """
        if path is not None:
            path = as_path(path, "path")
            if not path.parent.is_dir():
                raise FileNotFoundError(f"`path`: folder {path.parent} of {path} not found")
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("LabelReport.plot needs matplotlib: pip install matplotlib") from None
        group_of = {k: g for g, members in self.groups.items() for k in members}
        order = sorted(range(self.num_classes), key=lambda k: (-self.counts[k], k))
        fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 0.25 * self.num_classes + 2)), 4))
        heights = [max(self.counts[k], 0.5) for k in order]  # an empty class shows as a stub
        ax.bar(range(len(order)), heights, color=[_PALETTE[group_of[k]] for k in order], width=1)
        ax.set_yscale("log")
        for threshold in self.thresholds:
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=0.8)
        if self.num_classes <= 60:
            ax.set_xticks(range(len(order)), [self.classes[k] for k in order], rotation=90)
        else:
            ax.set_xlabel("classes, most frequent first")
        ax.set_ylabel("positive images (log)")
        sizes = ", ".join(f"{g} {len(self.groups[g])}" for g in GROUP_NAMES)
        ax.set_title(
            f"{self.num_images:,} images, {self.num_classes} classes ({sizes}); "
            f"imbalance {self.imbalance_ratio:.0f}"
        )
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
            plt.close(fig)
        return fig


def describe_labels(
    labels: Any,
    classes: Any = None,
    *,
    thresholds: tuple[int, int] | None = None,
    few: int = 5,
    top_pairs: int = 10,
    shares: tuple[float, float] | None = None,
    quantiles: tuple[float, float] | None = None,
) -> LabelReport:
    """Report how long-tailed a multi-label matrix is.

    Parameters
    ----------
    labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        Label matrix of 0 / 1, with -1 for an unknown label, in any form
        :func:`~ltml.data.class_counts` takes (memory follows the stored entries).
    classes : sequence of str, optional
        Class names (default ``"0"``, ``"1"``, ...).
    thresholds : (int, int), optional
        Head / medium / tail limits in images, as :func:`~ltml.data.class_groups`. Default
        ``(20, 100)``, the benchmarks' limits, when neither ``shares`` nor ``quantiles`` is
        given.
    few : int
        Classes with fewer positives than this (and at least one) are listed as rare: they can
        miss a part of a split and give a noisy AP.
    top_pairs : int
        How many co-occurring pairs to list.
    shares : (float, float), optional
        The limits as shares of the ``N`` images (``(0.02, 0.1)``: tail under 2 % of the
        images, head from 10 %), see :func:`~ltml.stats.group_limits`.
    quantiles : (float, float), optional
        The limits as quantiles of the class counts (``(1/3, 2/3)``: thirds of the classes).

    Returns
    -------
    LabelReport
        Print it for a terminal; ``plot()`` draws the class profile.

    Warns
    -----
    UserWarning
        Every class falls in one group (of two classes or more): the limits do not fit the
        data's size; the warning names limits that would (also in the report's text).

    Examples
    --------
    >>> import torch
    >>> from ltml.data import describe_labels
    >>> labels = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, -1], [0, 0, 1]])
    >>> report = describe_labels(labels, ["person", "dog", "kite"], thresholds=(2, 3))
    >>> report.counts, report.groups, report.imbalance_ratio
    ([3, 2, 1], {'head': [0], 'medium': [1], 'tail': [2]}, 3.0)
    >>> report.top_pairs  # person and dog share 2 images
    [(0, 1, 2)]
    >>> print(report.format().splitlines()[0])
    4 images, 3 classes
    >>> report.unknown_per_class  # kite is unknown on one image in four
    [0.0, 0.0, 0.25]
    >>> describe_labels(labels, quantiles=(0.4, 0.7)).thresholds
    (2, 3)
    """
    form = read_labels(labels, "labels")
    (n, c), (image_ptr, image_classes) = shape_of(form), image_positives(form)
    names = tuple(str(k) for k in range(c)) if classes is None else as_class_names(classes)
    if len(names) != c:
        raise ValueError(f"`classes` must name the {c} columns of `labels`, got {len(names)}")
    check_int(few, "few", low=1)
    check_int(top_pairs, "top_pairs", low=0)
    counts = np.bincount(image_classes, minlength=c).astype(np.int64)
    unknown_per_class, unknown_in_row = unknown_counts(form)
    entirely_unknown = unknown_in_row == c if c else np.zeros(n, dtype=bool)
    per_image = np.diff(image_ptr)[~entirely_unknown]
    nonzero = counts[counts > 0]
    limits = group_limits(
        counts.tolist(), thresholds, shares=shares, quantiles=quantiles, num_images=n
    )
    groups = class_groups(counts.tolist(), limits)
    pairs = pair_counts(image_ptr, image_classes, c)
    np.fill_diagonal(pairs, 0)
    how = _how_limits(limits, shares, quantiles, n)
    default = thresholds is None and shares is None and quantiles is None
    notes = _one_group_notes(groups, limits, how, default, n)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return LabelReport(
        num_images=n,
        classes=names,
        counts=counts.tolist(),
        mean_labels_per_image=float(per_image.mean()) if per_image.size else math.nan,
        max_labels_per_image=int(per_image.max()) if per_image.size else 0,
        images_without_label=int((per_image == 0).sum()),
        unknown_share=float(unknown_per_class.sum() / max(n * c, 1)),
        thresholds=limits,
        groups=groups,
        imbalance_ratio=float(nonzero.max() / nonzero.min()) if nonzero.size else math.nan,
        empty_classes=np.flatnonzero(counts == 0).tolist(),
        few=few,
        few_classes=np.flatnonzero((counts > 0) & (counts < few)).tolist(),
        top_pairs=_top_pairs(pairs, counts, top_pairs),
        tail_companions=_companions(pairs, groups["tail"]),
        unknown_per_class=(unknown_per_class / max(n, 1)).tolist(),
        images_unknown=int(entirely_unknown.sum()),
        images_with_unknown=int((unknown_in_row > 0).sum()),
        limits=how,
        notes=notes,
    )


def _how_limits(
    limits: tuple[int, int],
    shares: tuple[float, float] | None,
    quantiles: tuple[float, float] | None,
    n: int,
) -> str:
    if shares is not None:
        return f"shares ({shares[0]:g}, {shares[1]:g}) of {n:,} images"
    if quantiles is not None:
        return f"quantiles ({quantiles[0]:.3g}, {quantiles[1]:.3g}) of the class counts"
    return ""


def _one_group_notes(
    groups: dict[str, list[int]], limits: tuple[int, int], how: str, default: bool, n: int
) -> tuple[str, ...]:
    """Warn when one group holds every class (of two or more), naming limits that fit."""
    sizes = {g: len(members) for g, members in groups.items()}
    c = sum(sizes.values())
    full = [g for g, size in sizes.items() if size == c]
    if c < 2 or not full:
        return ()
    low, high = limits
    where = {"head": f">= {high:,}", "medium": f"{low:,} to {high - 1:,}", "tail": f"< {low:,}"}
    note = (
        f"all {c} classes are {full[0]} ({where[full[0]]} positives) with the group limits "
        f"{how or limits}, so the groups say nothing"
    )
    if default:
        low, high = _round_up_share(0.02 * n), _round_up_share(0.1 * n)
        note += (
            "; the default limits, the benchmarks', suit about a thousand images (VOC-LT: "
            f"1,142); for {n:,} images pass shares=(0.02, 0.1) (here {low:,} and {high:,} "
            "images) or quantiles=(1/3, 2/3) (command line: --shares / --quantiles)"
        )
    else:
        note += "; pass other limits, e.g. quantiles=(1/3, 2/3) (thirds of the classes)"
    return (note,)


def _round_up_share(x: float) -> int:
    return math.ceil(round(x, 9))


def _top_pairs(pairs: np.ndarray, counts: np.ndarray, k: int) -> list[tuple[int, int, int]]:
    """Return the ``k`` pairs sharing the most images, the more frequent class first."""
    upper = np.triu(pairs, 1).reshape(-1)
    # The k largest, ties by index: among the pairs that share an image, without a full sort.
    top = np.flatnonzero(upper)
    shared = upper[top]
    if 0 < k < top.size:
        keep = shared >= np.partition(shared, -k)[-k]
        top, shared = top[keep], shared[keep]
    top = top[np.argsort(-shared, kind="stable")][:k]
    found = []
    for index in top:
        a, b = divmod(int(index), pairs.shape[0])
        if (counts[b], -b) > (counts[a], -a):
            a, b = b, a
        found.append((a, b, int(upper[index])))
    return found


def _companions(pairs: np.ndarray, tail: list[int]) -> list[tuple[int, int, int]]:
    """Return each tail class (with a companion) and the class it shares most images with."""
    best = pairs.argmax(axis=1)
    return [(k, int(best[k]), int(pairs[k, best[k]])) for k in tail if pairs[k, best[k]] > 0]
