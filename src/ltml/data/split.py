"""Multi-label stratified splits: iterative stratification (Sechidis, Tsoumakas and Vlahavas, 2011).

A random split of long-tailed multi-label data loses the rare classes: a class with 6 images has a
fair chance of having none in a 10 % test set. Iterative stratification ("On the Stratification of
Multi-Label Data", ECML PKDD 2011) deals the images out label by label, rarest first, each to the
part that still lacks the most positives of that label, so every class's positives are shared out
as the parts' fractions ask. :func:`stratified_split` implements it; :func:`split_deviation`
measures how far any split (this one, a random one, a user's own) is from its targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._label_forms import indptr_from_counts, to_class_csr
from .._validation import as_image_groups, as_positions, check_seed, described, is_real


def stratified_split(
    labels: Any, fractions: Sequence[float], *, seed: int = 0, groups: Any = None
) -> tuple[Tensor, ...]:
    r"""Split images into parts that keep every class's share, by iterative stratification.

    The algorithm of Sechidis, Tsoumakas and Vlahavas (ECML PKDD 2011). Each part :math:`j` wants
    :math:`r_j N` images and :math:`r_j n_k` positives of each class :math:`k`. Repeatedly take
    the class with the fewest positives not yet dealt out (ties broken at random) and deal each of
    its remaining images, in a random order, to the part that lacks the most positives of that
    class; ties go to the part that lacks the most images, then at random. Dealing an image
    updates what every part lacks for each of its classes. Images with no known positive are
    dealt out last, by the number of images each part lacks.

    One addition to the published algorithm: a part that has no positive of the class at hand is
    served before the others, so a class with at least as many positives (still to deal out) as
    there are parts reaches every part, even a small test set of an uneven split.

    **Groups** (``groups=``, e.g. a patient id per image): the images of a group are dealt out
    together, so no group spans two parts (a patient with images in training and test leaks into
    the evaluation). The algorithm runs over groups instead of images, a group holding some
    positives of several classes and some images. The classes come in the same order, rarest
    first; a class's groups not yet dealt out go largest first (by their positives of the class;
    ties at random), each to the part it helps most: a part with no positive of the class first,
    then the part :math:`j` with the largest need :math:`\sum_k h_k (w_{jk} - g_{jk}) / w_{jk}`:
    the group's positives :math:`h_k` of each class it holds, weighted by the share of its target
    :math:`w_{jk}` that the part has not got yet (:math:`g_{jk}` so far), so that a large group
    sent for a rare class does not overfill a frequent one; then the part lacking the most
    images, then at random. Groups
    with no known positive go last, largest first, by the images each part lacks. Shares follow
    the targets less closely than without groups, the more so as groups are large: measure them
    with :func:`split_deviation` (on NIH ChestX-ray14, 30,805 patients of 1 to 184 images, every
    class within 0.4 % of its target share in a 70 / 10 / 20 split).

    Parameters
    ----------
    labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        Label matrix of 0 / 1, with -1 for an unknown label (not counted as a positive), in any
        form :func:`~ltml.data.class_counts` takes.
    fractions : sequence of float
        The parts' shares of the images, e.g. ``(0.8, 0.1, 0.1)``: each positive, summing to 1.
    seed : int
        The split is a pure function of ``(labels, fractions, seed, groups)``.
    groups : sequence, shape (N,), optional
        A group label per image (ints or strings: a 1-D tensor, array, list or pandas Series): the
        images of a group go to one part. Default: every image its own group.

    Returns
    -------
    tuple of Tensor, int64
        One tensor of image indices per part, increasing; together they hold every image once.
        Part sizes follow the fractions closely but not exactly (the classes come first).

    Raises
    ------
    ValueError
        ``fractions`` not positive or not summing to 1; ``labels`` not a label matrix; a negative
        ``seed``; ``groups`` not one label per image, or with a missing value (None, NaN).
    TypeError
        ``groups`` not a sequence of hashable labels.

    Examples
    --------
    >>> import torch
    >>> from ltml.data import stratified_split
    >>> labels = torch.zeros(12, 2, dtype=torch.int64)
    >>> labels[:6, 0] = 1                   # class 0: images 0-5
    >>> labels[[6, 7, 8], 1] = 1            # class 1: images 6-8 (a tail class)
    >>> parts = stratified_split(labels, (0.5, 0.25, 0.25), seed=0)
    >>> [len(p) for p in parts]
    [6, 3, 3]
    >>> [int(labels[p, 1].sum()) for p in parts]  # the tail class reaches every part
    [1, 1, 1]
    >>> patients = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # two images each
    >>> parts = stratified_split(labels, (0.5, 0.25, 0.25), seed=0, groups=patients)
    >>> [p.tolist() for p in parts]  # no patient in two parts
    [[2, 3, 6, 7, 10, 11], [4, 5, 8, 9], [0, 1]]
    """
    share = _check_fractions(fractions)
    rng = np.random.default_rng(check_seed(seed))
    class_ptr, class_images, n = to_class_csr(labels, None)
    if groups is not None:
        group_of = as_image_groups(groups, "groups", n)
        return _grouped_split(class_ptr, class_images, group_of, share, rng)
    num_classes = class_ptr.size - 1
    counts = np.diff(class_ptr)
    # The same positives image by image: the classes of image i are image_classes[image_ptr[i]:].
    by_image = np.argsort(class_images, kind="stable")
    image_classes = np.repeat(np.arange(num_classes), counts)[by_image]
    image_lengths = np.bincount(class_images, minlength=n)
    image_ptr = indptr_from_counts(image_lengths)

    rank = rng.permutation(n)  # the random order in which a class's images are dealt out
    class_tie = rng.random(num_classes)
    part = np.full(n, -1, dtype=np.int64)
    # What each part wants, and what it got: a lack is always ``want - got`` in one subtraction,
    # so that equal lacks compare equal and their ties go to the next key, as in the paper.
    want_class = counts[:, None] * share[None, :]  # (C, P)
    want_images = n * share  # (P,)
    got_class = np.zeros((num_classes, share.size), dtype=np.int64)
    got_images = np.zeros(share.size, dtype=np.int64)
    remaining = counts.copy()

    while (remaining > 0).any():
        fewest = remaining == remaining[remaining > 0].min()
        k = int(np.flatnonzero(fewest)[np.argmin(class_tie[fewest])])
        images = class_images[class_ptr[k] : class_ptr[k + 1]]
        images = images[part[images] < 0]
        images = images[np.argsort(rank[images])]
        lacks = (want_class[k], got_class[k], want_images, got_images)
        parts = _deal(*lacks, got_class[k] == 0, images.size, rng)
        part[images] = parts
        # Every class of the dealt images is now less lacking in the part each image went to.
        starts, lengths = image_ptr[images], image_lengths[images]
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        classes = image_classes[np.repeat(starts, lengths) + offsets]
        got = np.bincount(
            classes * share.size + np.repeat(parts, lengths), minlength=num_classes * share.size
        ).reshape(num_classes, share.size)
        got_class += got
        remaining -= got.sum(axis=1)
        got_images += np.bincount(parts, minlength=share.size)

    rest = np.flatnonzero(part < 0)
    rest = rest[np.argsort(rank[rest])]
    lacks = (want_images, got_images, want_images, got_images)
    part[rest] = _deal(*lacks, np.zeros(share.size, dtype=bool), rest.size, rng)
    return tuple(torch.from_numpy(np.flatnonzero(part == j)) for j in range(share.size))


def _grouped_split(
    class_ptr: np.ndarray,
    class_images: np.ndarray,
    group_of: np.ndarray,
    share: np.ndarray,
    rng: np.random.Generator,
) -> tuple[Tensor, ...]:
    """Split groups of images by iterative stratification (see :func:`stratified_split`).

    One step per group, not a sort per class as :func:`_deal`: a group's need of each part
    depends on every class it holds, which the groups dealt before it change.
    """
    n, g = group_of.size, int(group_of.max(initial=-1)) + 1
    num_classes, p = class_ptr.size - 1, share.size
    counts = np.diff(class_ptr)
    sizes = np.bincount(group_of, minlength=g)
    # What each group holds, (group, class, positives), group-major then class-major.
    classes = np.repeat(np.arange(num_classes), counts)
    pair, held = np.unique(group_of[class_images] * num_classes + classes, return_counts=True)
    pair_group, pair_class = np.divmod(pair, num_classes)
    group_ptr = np.searchsorted(pair_group, np.arange(g + 1))
    by_class = np.argsort(pair_class, kind="stable")
    class_pair_ptr = np.searchsorted(pair_class[by_class], np.arange(num_classes + 1))

    rank = rng.permutation(g)
    class_tie = rng.random(num_classes)
    part = np.full(g, -1, dtype=np.int64)
    want_class = counts[:, None] * share[None, :]
    want_images = n * share
    got_class = np.zeros((num_classes, p), dtype=np.int64)
    got_images = np.zeros(p, dtype=np.int64)
    remaining = counts.copy()

    def give(group: int, j: int) -> None:
        start, stop = group_ptr[group], group_ptr[group + 1]
        got_class[pair_class[start:stop], j] += held[start:stop]
        remaining[pair_class[start:stop]] -= held[start:stop]
        got_images[j] += sizes[group]
        part[group] = j

    while (remaining > 0).any():
        fewest = remaining == remaining[remaining > 0].min()
        k = int(np.flatnonzero(fewest)[np.argmin(class_tie[fewest])])
        rows = by_class[class_pair_ptr[k] : class_pair_ptr[k + 1]]
        rows = rows[part[pair_group[rows]] < 0]
        rows = rows[np.lexsort((rank[pair_group[rows]], -held[rows]))]  # largest first
        tie = rng.random(p)
        for group in pair_group[rows].tolist():
            start, stop = group_ptr[group], group_ptr[group + 1]
            its = pair_class[start:stop]
            relative_lack = (want_class[its] - got_class[its]) / want_class[its]
            need = held[start:stop] @ relative_lack
            lack_images = want_images - got_images
            give(group, int(np.lexsort((tie, lack_images, need, got_class[k] == 0))[-1]))

    rest = np.flatnonzero(part < 0)
    rest = rest[np.lexsort((rank[rest], -sizes[rest]))]
    tie = rng.random(p)
    for group in rest.tolist():
        give(group, int(np.lexsort((tie, want_images - got_images))[-1]))
    image_part = part[group_of]
    return tuple(torch.from_numpy(np.flatnonzero(image_part == j)) for j in range(p))


def _deal(
    want: np.ndarray,
    got: np.ndarray,
    want_images: np.ndarray,
    got_images: np.ndarray,
    empty: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Deal ``n`` images one at a time to the part that lacks most; the parts, in dealing order.

    Each image goes to the part with the largest key (``empty`` and not yet served, its lack of
    the class ``want - got``, its lack of images, a random tie-break), and the part's two lacks
    drop by one. A part's keys for its 1st, 2nd, ... image therefore decrease, so the greedy
    sequence is the ``n`` largest keys of all parts, in order: one sort instead of ``n`` steps.
    """
    p = want.size
    taken = np.tile(np.arange(n), p)  # images the part already got in this deal
    owner = np.repeat(np.arange(p), n)
    first = empty[owner] & (taken == 0)
    lack = want[owner] - (got[owner] + taken)
    lack_images = want_images[owner] - (got_images[owner] + taken)
    keys = (rng.random(p)[owner], lack_images, lack, first)
    order = np.lexsort(keys)[::-1][:n]  # lexsort sorts by the last key first, ascending
    return owner[order]


def split_deviation(
    labels: Any, parts: Sequence[Any], fractions: Sequence[float] | None = None
) -> Tensor:
    """How far each class's share of positives in each part is from the part's target share.

    ``deviation[k, j]`` is the share of class ``k``'s positives that part ``j`` holds, minus
    ``fractions[j]``: 0 is a perfect split; a class absent from a part reads ``-fractions[j]``.

    Parameters
    ----------
    labels : Tensor, ndarray, sparse matrix or VerifiedLabels, shape (N, C)
        Label matrix (0 / 1, -1 = unknown, not counted), in any form of :func:`stratified_split`.
    parts : sequence of index tensors / arrays / lists
        Disjoint image indices, e.g. the output of :func:`stratified_split`.
    fractions : sequence of float, optional
        The target shares (positive, summing to 1). Default: each part's share of the images.

    Returns
    -------
    Tensor, shape (C, P), float64
        The deviations; NaN for a class with no known positive in the parts.

    Examples
    --------
    >>> import torch
    >>> from ltml.data import split_deviation
    >>> labels = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0]])
    >>> split_deviation(labels, [torch.tensor([0, 1]), torch.tensor([2, 3])], (0.5, 0.5))
    tensor([[ 0.1667, -0.1667],
            [ 0.0000,  0.0000]], dtype=torch.float64)
    """
    class_ptr, class_images, n = to_class_csr(labels, None)
    if not isinstance(parts, Sequence) or isinstance(parts, str | bytes):
        raise TypeError(
            f"`parts` must be a sequence of index tensors, arrays or lists, got {described(parts)}"
        )
    indices = [
        as_positions(p, f"parts[{j}]", n, "image indices").numpy().astype(np.int64, copy=False)
        for j, p in enumerate(parts)
    ]
    if not indices:
        raise ValueError("`parts` must hold at least one part, got none")
    part = np.full(n, -1, dtype=np.int64)
    for j, idx in enumerate(indices):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(
                f"`parts[{j}]` must hold image indices in [0, {n}), got {idx.min()} .. {idx.max()}"
            )
        if (part[idx] >= 0).any() or np.unique(idx).size != idx.size:
            raise ValueError(f"`parts` must be disjoint, but part {j} repeats an image")
        part[idx] = j
    sizes = np.array([idx.size for idx in indices], dtype=np.float64)
    if fractions is None and not sizes.sum():
        raise ValueError("`parts` must hold at least one image (or pass `fractions`), got none")
    share = sizes / sizes.sum() if fractions is None else _check_fractions(fractions)
    if share.size != len(indices):
        raise ValueError(
            f"`fractions` must have one entry per part ({len(indices)}), got {share.size}"
        )
    num_classes = class_ptr.size - 1
    owner = part[class_images]
    classes = np.repeat(np.arange(num_classes), np.diff(class_ptr))
    inside = owner >= 0
    hits = np.bincount(
        classes[inside] * share.size + owner[inside], minlength=num_classes * share.size
    ).reshape(num_classes, share.size)
    total = hits.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = hits / total - share[None, :]
    return torch.from_numpy(deviation)


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    if isinstance(fractions, np.ndarray | Tensor) and fractions.ndim == 1:
        values = fractions.tolist()
    elif isinstance(fractions, Sequence) and not isinstance(fractions, str | bytes):
        values = list(fractions)
    else:
        raise TypeError(f"`fractions` must be a sequence of numbers, got {described(fractions)}")
    odd = next((i for i, f in enumerate(values) if not is_real(f)), None)
    if odd is not None:
        raise TypeError(f"`fractions[{odd}]` must be a real number, got {described(values[odd])}")
    share = np.asarray(values, dtype=np.float64)
    if share.ndim != 1 or share.size == 0 or not (share > 0).all() or not np.isfinite(share).all():
        raise ValueError(f"`fractions` must be positive shares, one per part, got {fractions}")
    if abs(share.sum() - 1) > 1e-6:
        raise ValueError(f"`fractions` must sum to 1, got {fractions} (sum {share.sum():g})")
    return share
