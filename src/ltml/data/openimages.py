r"""OpenImages (V6 / V7) image-level labels: partial labels at web scale.

OpenImages labels an image by *verifying* classes: a human says a class is present
(``Confidence`` 1) or absent (0); every class nobody verified is unknown. The training set has
about 9M images and 9,605 trainable classes, so the labels are kept as
:class:`~ltml.VerifiedLabels` (the verdicts only; every other entry unknown), and the label files,
tens of millions of rows, are read with numpy in blocks, without a Python object per row.

The official files:

- ``oidv6-train-annotations-human-imagelabels.csv`` (V7: ``oidv7-...``), with the header
  ``ImageID,Source,LabelName,Confidence``;
- ``oidv6-classes-trainable.txt``: one LabelName (``/m/...``) per line, fixing the columns;
- ``oidv6-class-descriptions.csv``: ``LabelName,DisplayName`` rows (the V6 and V7 files start
  with that header row, older versions have none: both are read);
- optionally the machine-generated image-level labels: the same header, ``Confidence`` a score.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._sparse import index_ids, is_member, merge_ids, merge_verdicts, row_offsets, unique
from .._validation import as_path, check_callable, check_probability
from ..labels import VerifiedLabels
from ._fastcsv import where
from ._images import check_images_exist, load_image
from ._openimages_files import ClassLookup, LabelRows, display_names, read_classes, read_label_rows
from .image_list import PathLike


class OpenImagesLabels(NamedTuple):
    """The labels of OpenImages files, as :func:`read_openimages_labels` returns them."""

    image_ids: np.ndarray
    """``(N,)`` ImageIDs (str), sorted: the row order of ``labels``."""
    labels: VerifiedLabels
    """``(N, C)`` verdicts: 1 / 0, every other entry unknown."""
    classes: tuple[str, ...]
    """Display names with ``class_descriptions``, else the LabelNames: the column order."""
    label_names: tuple[str, ...]
    """The LabelNames (``/m/...``), column order."""
    dropped_labels: int
    """Rows of the label files whose class is not in ``classes``, left out."""


def read_openimages_labels(
    labels_csv: PathLike,
    classes: PathLike | Sequence[str],
    *,
    class_descriptions: PathLike | None = None,
    machine_labels_csv: PathLike | None = None,
    machine_threshold: float = 0.5,
) -> OpenImagesLabels:
    r"""Read OpenImages image-level labels into :class:`~ltml.VerifiedLabels`, without an image.

    Rules, in this order:

    1. **Rows**: every image with at least one label of a class of ``classes`` (human, or
       machine at or above the threshold), sorted by ImageID (byte order; the official files
       are sorted so: file order).
    2. **Unlisted classes**: a row of a file whose class is not in ``classes`` is left out and
       counted in ``dropped_labels``.
    3. **Repeats**: the same verdict twice (e.g. from two sources) is one label.
    4. **Conflicts**: an (image, class) pair verified present *and* absent by humans is unknown;
       one ``UserWarning`` gives how many pairs.
    5. **Machine labels** (optional): one with ``Confidence >= machine_threshold`` is a present
       verdict, a lower one is left out. Human verdicts win: a machine label of a pair that
       humans verified, or on which they conflict, is ignored.

    Reading a file of the training set's size (9M images, 20M rows) takes about 18 s of CPU
    time and 1.7 GB at the peak (``benchmarks/bench_openimages.py``).

    Parameters
    ----------
    labels_csv : str or PathLike
        Human-verified labels: the header ``ImageID,Source,LabelName,Confidence`` (other columns
        and another order are fine), ``Confidence`` 1 (present) or 0 (absent).
    classes : str, PathLike or sequence of str
        The LabelNames, in column order: the trainable-classes file (one per line) or a
        sequence, e.g. ``["/m/01g317", "/m/0bt9lr"]``.
    class_descriptions : str or PathLike, optional
        The ``LabelName,DisplayName`` file: ``classes`` become display names.
    machine_labels_csv : str or PathLike, optional
        Machine-generated labels: the same header, ``Confidence`` in [0, 1].
    machine_threshold : float
        Lowest ``Confidence`` of a machine label kept as a present verdict.

    Returns
    -------
    OpenImagesLabels
        ``(image_ids, labels, classes, label_names, dropped_labels)``.

    Raises
    ------
    FileNotFoundError
        A missing file.
    ValueError
        Naming the file and line: an empty file, a header without ``ImageID``, ``LabelName`` or
        ``Confidence``, a row of another number of fields, a quoted field, an empty or odd
        ImageID (not printable ASCII, or with spaces, ``/`` or ``\``), an empty LabelName, a
        human ``Confidence`` other than 0 / 1, a machine ``Confidence`` outside [0, 1], a line of
        the classes file that is not a LabelName; also a repeated class, a class without a
        description, no label of any class.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ltml.data import read_openimages_labels
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = pathlib.Path(tmp.name)
    >>> _ = (d / "labels.csv").write_text(
    ...     "ImageID,Source,LabelName,Confidence\n"
    ...     "0001a,verification,/m/cat,1\n"
    ...     "0001a,verification,/m/dog,0\n"
    ...     "0002b,crowdsource-verification,/m/dog,1\n"
    ...     "0002b,verification,/m/car,1\n"  # not a listed class: dropped
    ... )
    >>> _ = (d / "classes.txt").write_text("/m/cat\n/m/dog\n")
    >>> _ = (d / "descriptions.csv").write_text(
    ...     "LabelName,DisplayName\n/m/cat,Cat\n/m/dog,Dog\n/m/car,Car\n"
    ... )
    >>> oi = read_openimages_labels(
    ...     d / "labels.csv", d / "classes.txt", class_descriptions=d / "descriptions.csv"
    ... )
    >>> oi.image_ids.tolist(), oi.classes, oi.dropped_labels
    (['0001a', '0002b'], ('Cat', 'Dog'), 1)
    >>> oi.labels.to_dense().tolist()
    [[1, 0], [-1, 1]]
    >>> tmp.cleanup()
    """
    table, conflicts = _read(
        labels_csv, classes, class_descriptions, machine_labels_csv, machine_threshold
    )
    _warn_conflicts(conflicts, labels_csv)
    return table


class OpenImagesMultiLabel(Dataset[tuple[Any, Tensor]]):
    r"""OpenImages images with their verified image-level labels: 1 / 0 / -1 (unknown).

    The label files are read at construction by the rules of :func:`read_openimages_labels`
    (no image is opened; every image is checked to exist), so :attr:`labels` is ready for
    samplers and losses before any training step.

    Parameters
    ----------
    images_dir : str or PathLike
        Folder of the images, ``<ImageID>.jpg``.
    labels_csv, classes, class_descriptions, machine_labels_csv, machine_threshold
        As in :func:`read_openimages_labels`.
    transform : callable, optional
        Applied to the image in ``__getitem__``.
    loader : callable, optional
        ``loader(path)`` returns the image. Default: PIL, converted to RGB.

    Attributes
    ----------
    labels : VerifiedLabels, shape (N, C)
        The verdicts, row order of :attr:`image_ids`, column order of :attr:`classes`.
    image_ids : ndarray of str, shape (N,)
        The ImageIDs, sorted.
    classes : tuple of str
        Display names with ``class_descriptions``, else the LabelNames.
    label_names : tuple of str
        The LabelNames (``/m/...``), column order.
    dropped_labels : int
        Rows of the label files whose class is not in ``classes``.
    images_dir : Path
        The image folder.

    Raises
    ------
    FileNotFoundError
        A missing file, image folder or image.
    ValueError
        As :func:`read_openimages_labels`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from ltml.data import OpenImagesMultiLabel
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = pathlib.Path(tmp.name)
    >>> for image_id in ("0001a", "0002b"):
    ...     Image.new("RGB", (8, 8)).save(d / f"{image_id}.jpg")
    >>> _ = (d / "labels.csv").write_text(
    ...     "ImageID,Source,LabelName,Confidence\n"
    ...     "0001a,verification,/m/cat,1\n"
    ...     "0002b,verification,/m/dog,0\n"
    ... )
    >>> ds = OpenImagesMultiLabel(d, d / "labels.csv", ["/m/cat", "/m/dog"])
    >>> ds.labels
    VerifiedLabels(shape=(2, 2), nnz=2, positives=1, known=50.000%)
    >>> image, target = ds[1]  # the row of 1 / 0 / -1, as a float tensor
    >>> image.size, target
    ((8, 8), tensor([-1.,  0.]))
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        images_dir: PathLike,
        labels_csv: PathLike,
        classes: PathLike | Sequence[str],
        *,
        class_descriptions: PathLike | None = None,
        transform: Callable[[Any], Any] | None = None,
        machine_labels_csv: PathLike | None = None,
        machine_threshold: float = 0.5,
        loader: Callable[[Path], Any] | None = None,
    ) -> None:
        check_callable(transform, "transform", optional=True)
        check_callable(loader, "loader", optional=True)
        self.images_dir = as_path(images_dir, "images_dir")
        table, conflicts = _read(
            labels_csv, classes, class_descriptions, machine_labels_csv, machine_threshold
        )
        _warn_conflicts(conflicts, labels_csv)
        self.image_ids, self.labels, self.classes, self.label_names, self.dropped_labels = table
        names = [f"{i}.jpg" for i in self.image_ids.tolist()]
        check_images_exist(self.images_dir, names, "images_dir", f"{labels_csv} (`labels_csv`)")
        self.transform, self.loader = transform, loader

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int) -> tuple[Any, Tensor]:
        path = self.images_dir / f"{self.image_ids[i]}.jpg"
        return load_image(path, self.transform, self.loader), self.labels.row(i).float()


def _read(
    labels_csv: PathLike,
    classes: PathLike | Sequence[str],
    class_descriptions: PathLike | None,
    machine_labels_csv: PathLike | None,
    machine_threshold: float,
) -> tuple[OpenImagesLabels, int]:
    """Read the files; also return how many pairs humans verified both ways."""
    threshold = check_probability(machine_threshold, "machine_threshold")
    label_names = read_classes(classes)
    names = label_names
    if class_descriptions is not None:
        names = display_names(class_descriptions, label_names)
    lookup = ClassLookup(label_names)
    human = read_label_rows(labels_csv, "labels_csv", lookup, None)
    machine = None
    if machine_labels_csv is not None:
        machine = read_label_rows(machine_labels_csv, "machine_labels_csv", lookup, threshold)
    ids, labels, conflicts = _combine(human, machine, len(label_names))
    dropped = human.dropped + (machine.dropped if machine else 0)
    return OpenImagesLabels(ids, labels, names, label_names, dropped), conflicts


def _warn_conflicts(conflicts: int, labels_csv: PathLike) -> None:
    if conflicts:
        warnings.warn(
            f"{conflicts} (image, class) pair(s) of {os.fspath(labels_csv)} are verified both "
            "present and absent: they are unknown",
            UserWarning,
            stacklevel=3,  # the caller of the public function
        )


def _combine(
    human: LabelRows, machine: LabelRows | None, num_classes: int
) -> tuple[np.ndarray, VerifiedLabels, int]:
    """Apply the rules: one row per image, repeats merged, conflicts unknown, humans first."""
    ids, image = index_ids(human.ids)
    if machine is not None:
        machine_ids, machine_image = index_ids(machine.ids)
        ids, to_merged, machine_to_merged = merge_ids(ids, machine_ids)
        image = to_merged[image]
    if not len(ids):
        raise ValueError(
            f"{where('labels_csv', human.path)}: no label of a class of `classes` "
            f"({human.dropped} label(s) of other classes)"
        )
    keys, values, conflicts = merge_verdicts(image * num_classes + human.cls, human.verdicts)
    if machine is not None:
        found = unique(machine_to_merged[machine_image] * num_classes + machine.cls)
        humans = np.sort(np.concatenate([keys, conflicts]), kind="stable")
        found = found[~is_member(humans, found)]  # human verdicts win
        keys = np.concatenate([keys, found])
        values = np.concatenate([values, np.ones(len(found), dtype=np.int8)])
        order = np.argsort(keys, kind="stable")  # two sorted runs: a linear merge
        keys, values = keys[order], values[order]
    indptr = torch.from_numpy(row_offsets(keys // num_classes, len(ids)))
    cols = torch.from_numpy((keys % num_classes).astype(np.int32))
    labels = VerifiedLabels(indptr, cols, torch.from_numpy(values), num_classes)
    return ids.astype(str), labels, len(conflicts)
