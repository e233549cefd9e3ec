"""Evaluation sharded across processes under DDP: each process ranks a share of the classes.

Process ``r`` of ``W`` evaluates the classes ``[C r / W, C (r + 1) / W)``. Every process sends it,
with ``all_to_all_single``, those columns of its dense rows (in rounds of a bounded size) and its
known entries of those classes; each then computes its classes' AP, thresholds or counts, and
only these per-class results are gathered, so every process gets the same result. Scores travel
in one dtype that ranks every process's scores exactly (see ``common_dtype``). The top-k rule
needs full rows: the k-th largest score of each dense row is taken by its owner and sent along.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ._entries import Entries, merge_entries
from ._ranking import CHUNK_ELEMENTS, common_dtype, kth_largest, ranked
from ._share import Share

# Every dtype stored scores are ranked in (see ``common_dtype``), by a code processes can exchange.
RANKED_DTYPES = (torch.float32, torch.float64, torch.int64)
ROUND_ELEMENTS = 1 << 21  # dense elements one process sends per round (8 MB of float32)


def is_distributed() -> bool:
    """Whether ``torch.distributed`` is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def class_bounds(num_classes: int, world: int) -> list[int]:
    """First class of each process's share, and ``num_classes`` last (``world + 1`` values)."""
    return [num_classes * r // world for r in range(world + 1)]


def class_share(
    scores: list[Tensor],
    targets: list[Tensor],
    entries: list[Entries],
    num_classes: int,
    top_k: int | None,
    device: torch.device | None,
) -> tuple[Share, int]:
    """Return this process's :class:`Share` and its first class: all classes unless DDP."""
    if not is_distributed():
        share = Share(num_classes, device or torch.device("cpu"), scores, targets)
        share.entries = merge_entries(entries)
        return share, 0
    return exchanged_share(scores, targets, merge_entries(entries), num_classes, top_k, device)


def gather_classes(values: Tensor, num_classes: int) -> Tensor:
    """``(k, C)`` from each process's ``(k, width)`` float64 results of its class share."""
    if not is_distributed():
        return values
    world = dist.get_world_size()
    bounds = class_bounds(num_classes, world)
    widths = [b - a for a, b in itertools.pairwise(bounds)]
    padded = values.new_zeros((values.shape[0], max(widths)))
    padded[:, : values.shape[1]] = values
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:, :w] for p, w in zip(parts, widths, strict=True)], dim=1)


def exchange(send: Tensor, in_splits: list[int], out_splits: list[int]) -> list[Tensor]:
    """``all_to_all_single`` of a flat buffer; what each process sent here, by process."""
    recv = send.new_empty(sum(out_splits))
    dist.all_to_all_single(recv, send, out_splits, in_splits)
    return list(torch.split(recv, out_splits))


def exchanged_share(
    scores: list[Tensor],
    targets: list[Tensor],
    entries: Entries | None,
    num_classes: int,
    top_k: int | None,
    device: torch.device | None,
) -> tuple[Share, int]:
    """Return this process's class share of every process's stored labels."""
    world, rank = dist.get_world_size(), dist.get_rank()
    if device is None:
        cuda = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    bounds = class_bounds(num_classes, world)
    first, width = bounds[rank], bounds[rank + 1] - bounds[rank]

    # Who holds what: dense rows, dtype code, and the entries for each process.
    rows = sum(s.shape[0] for s in scores)
    dtypes = [s.dtype for s in scores] + ([] if entries is None else [entries.scores.dtype])
    code = RANKED_DTYPES.index(common_dtype(dtypes)) if dtypes else -1
    to = [0] * world
    if entries is not None:
        cuts = torch.tensor(bounds, dtype=torch.int32, device=entries.classes.device)
        to = torch.diff(torch.searchsorted(entries.classes, cuts)).tolist()
    info = torch.tensor([rows, code, *to], device=device)
    infos = [torch.zeros_like(info) for _ in range(world)]
    dist.all_gather(infos, info)
    table = torch.stack(infos).tolist()
    share = Share(width, device)
    codes = [t[1] for t in table if t[1] >= 0]
    if not codes:
        return share, first
    dtype = common_dtype(RANKED_DTYPES[c] for c in codes)

    send_dense(share, scores, targets, table, bounds, dtype, top_k)
    if any(sum(t[2:]) for t in table):  # the same decision on every process
        out_splits = [t[2 + rank] for t in table]
        share.entries = send_entries(entries, to, out_splits, first, dtype, top_k, device)
    return share, first


def send_dense(
    share: Share,
    scores: list[Tensor],
    targets: list[Tensor],
    table: list[list[int]],
    bounds: list[int],
    dtype: torch.dtype,
    top_k: int | None,
) -> None:
    """Send every process its columns of the dense rows, in rounds; keep what this one gets.

    ``table[p][0]`` is process p's number of dense rows. What this process receives goes into
    one buffer per kind (scores, targets, k-th scores) allocated at once, and the blocks are
    views of it; a round sends at most ``ROUND_ELEMENTS`` elements of each process, so the
    send buffers stay small at any size.
    """
    num_classes, width, device = bounds[-1], share.width, share.device
    rows = sum(s.shape[0] for s in scores)
    total = sum(t[0] for t in table)
    kth = [kth_of_rows(s, top_k) for s in scores] if top_k is not None else []
    kinds: list[tuple[list[Tensor], Tensor, int, list[Tensor]]] = [
        (scores, torch.empty(total * width, dtype=dtype, device=device), 1, share.scores),
        (targets, torch.empty(total * width, dtype=torch.int8, device=device), 1, share.targets),
    ]
    if top_k is not None:
        share.kth = []
        kinds.append((kth, torch.empty(total, dtype=dtype, device=device), 0, share.kth))
    filled = 0  # rows received so far
    step = max(1, ROUND_ELEMENTS // num_classes)
    for lo in range(0, max(t[0] for t in table), step):
        n = max(min(lo + step, rows) - lo, 0)
        n_from = [max(min(lo + step, t[0]) - lo, 0) for t in table]
        for blocks, into, by_class, kept in kinds:
            # Process r gets this round's rows, its columns (all of a k-th score column).
            parts = [(a, b) if by_class else (0, 1) for a, b in itertools.pairwise(bounds)]
            in_splits = [n * (b - a) for a, b in parts]
            cols = width if by_class else 1
            send = torch.empty(sum(in_splits), dtype=into.dtype, device=device)
            for (a, b), piece in zip(parts, torch.split(send, in_splits), strict=True):
                fill_rows(piece.view(n, b - a), blocks, lo, a, b)
            recv = into[filled * cols : (filled + sum(n_from)) * cols]
            out_splits = [m * cols for m in n_from]
            dist.all_to_all_single(recv, send, out_splits, in_splits)
            if width:
                got = torch.split(recv, out_splits)
                kept += [g.view(m, cols) for g, m in zip(got, n_from, strict=True) if m]
        filled += sum(n_from)


def fill_rows(out: Tensor, blocks: Sequence[Tensor], lo: int, first: int, stop: int) -> None:
    """Copy rows ``[lo, lo + len(out))``, columns ``[first, stop)`` of row blocks into ``out``."""
    start = 0
    for block in blocks:
        a, b = max(lo - start, 0), min(lo + out.shape[0] - start, block.shape[0])
        if a < b:
            out[start + a - lo : start + b - lo] = block[a:b, first:stop]
        start += block.shape[0]


def send_entries(
    entries: Entries | None,
    in_splits: list[int],
    out_splits: list[int],
    first: int,
    dtype: torch.dtype,
    top_k: int | None,
    device: torch.device,
) -> Entries | None:
    """Send every process the known entries of its classes (class-sorted, so contiguous runs)."""
    mine = entries or Entries(
        classes=torch.empty(0, dtype=torch.int32, device=device),
        scores=torch.empty(0, dtype=dtype, device=device),
        labels=torch.empty(0, dtype=torch.int8, device=device),
        top=None if top_k is None else torch.empty(0, dtype=torch.bool, device=device),
    )
    classes = exchange(mine.classes, in_splits, out_splits)
    scores = exchange(mine.scores.to(dtype), in_splits, out_splits)
    labels = exchange(mine.labels, in_splits, out_splits)
    top: list[Tensor | None] = [None] * len(out_splits)
    if top_k is not None:
        assert mine.top is not None
        top = [t.bool() for t in exchange(mine.top.to(torch.uint8), in_splits, out_splits)]
    received = [
        Entries(c - first, s, y, t) for c, s, y, t in zip(classes, scores, labels, top, strict=True)
    ]
    return merge_entries(received, dtype)


def kth_of_rows(scores: Tensor, top_k: int) -> Tensor:
    """Return the ``(R, 1)`` k-th largest score of each row of a block (ranking dtype)."""
    s = ranked(scores)
    step = max(1, CHUNK_ELEMENTS // max(s.shape[1], 1))
    parts = [kth_largest(s[i : i + step], top_k) for i in range(0, s.shape[0], step)]
    return torch.cat(parts) if parts else s.new_empty((0, 1))
