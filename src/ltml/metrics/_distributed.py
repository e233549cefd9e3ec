"""The stored rows of every process under DDP, exchanged with ``torch.distributed``.

Every process gets the same blocks, so every process computes the same metrics.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from ._ranking import common_dtype


def blocks_of_every_process(
    scores: list[Tensor], targets: list[Tensor], num_classes: int
) -> tuple[list[Tensor], list[Tensor]]:
    """Return the stored row blocks of every process under DDP, else this process's own.

    DDP: ``torch.distributed`` initialised with more than one process.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return gather_blocks(scores, targets, num_classes)
    return scores, targets


# Every dtype stored scores are ranked in (see ``common_dtype``), by a code processes can exchange.
RANKED_DTYPES = (torch.float32, torch.float64, torch.int64)


def gather_blocks(
    scores: list[Tensor], targets: list[Tensor], num_classes: int
) -> tuple[list[Tensor], list[Tensor]]:
    """Every process's stored rows, one block per process, the same on every process.

    Processes may hold different row counts (none at all included) and different score dtypes:
    they first exchange both, then send their rows in the common (promoted, exact) dtype, padded
    to the longest share because ``all_gather`` needs equal shapes.
    """
    world = dist.get_world_size()
    if scores:
        device = scores[0].device
    elif dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    rows = sum(s.shape[0] for s in scores)
    code = -1
    if rows:
        code = RANKED_DTYPES.index(common_dtype(s.dtype for s in scores))
    info = torch.tensor([rows, code], device=device)
    infos = [torch.zeros_like(info) for _ in range(world)]
    dist.all_gather(infos, info)
    counts = [int(i[0]) for i in infos]
    codes = [int(i[1]) for i in infos if int(i[0]) > 0]
    if not codes:
        return [], []
    dtype = common_dtype(RANKED_DTYPES[c] for c in codes)

    def gather(blocks: list[Tensor], dtype: torch.dtype) -> list[Tensor]:
        padded = torch.zeros((max(counts), num_classes), dtype=dtype, device=device)
        row = 0
        for block in blocks:  # filled block by block: no concatenated copy besides this one
            padded[row : row + block.shape[0]] = block
            row += block.shape[0]
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        return [p[:c] for p, c in zip(parts, counts, strict=True) if c]

    return gather(scores, dtype), gather(targets, torch.int8)
