"""Where a run executes and what it keeps: device, DDP, autocast; checkpoints that resume exactly.

Both the training loop (:mod:`.engine`) and stage 2 of the decoupled rows (:mod:`.decoupled`)
set a run up with :func:`set_up` and read checkpoints with :func:`load_checkpoint`.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .config import Config
from .errors import MissingFileError, SettingsError

# Settings that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = {
    "epochs",
    "resume",
    "output",
    "eval_every_epoch",
    "fit_thresholds",
    "plot",
    "progress",
    "workers",
    "data_root",
    "train_list",
    "train_csv",
    "test_csv",
    "image_root",
    "download_lists",
    "quiet",
    "threads",
    "group_thresholds",
    # the input pipeline: the same augmentations, the same distribution of images
    "pipeline",
    "cache_images",
    "cache_mb",
}


@dataclasses.dataclass
class Runtime:
    """The device, the process group (world size and rank) and the autocast dtype of a run."""

    device: torch.device
    world: int
    rank: int
    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def main(self) -> bool:
        """Whether this is the process that logs and writes files (rank 0)."""
        return self.rank == 0

    def autocast(self) -> AbstractContextManager[Any]:
        """Autocast in the run's dtype, or a context that does nothing."""
        return torch.autocast(self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None)

    def to(self, x: Tensor) -> Tensor:
        """Move ``x`` to the device, channels-last for images if the run uses it."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def set_up(cfg: Config) -> Runtime:
    """Device, process group (``torchrun`` sets WORLD_SIZE > 1) and autocast dtype."""
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    if cfg.device == "cuda" and not cuda:
        raise SettingsError("--device cuda: CUDA is not available; use --device auto or cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        torch.backends.cudnn.benchmark = True
    else:
        device = torch.device("cpu")
    amp = cfg.amp
    if amp == "auto":
        amp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "off"
    if amp == "fp16" and not cuda:
        raise SettingsError("--amp fp16 needs CUDA; on the CPU use --amp bf16 or off")
    dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return Runtime(device, world, rank, dtype, cuda and cfg.channels_last)


def rng_state() -> dict[str, Any]:
    """Return the state of the generators that drive training, for a checkpoint."""
    # Only torch's generators drive training (model init, augmentation, loader seeds); Python's
    # `random` is consumed by library imports (sklearn -> rich), so it is neither seeded nor saved.
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` through a temporary file."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash while saving never leaves a truncated checkpoint


def load_checkpoint(
    cfg: Config, path: Path, world: int | None = None, flag: str = "--resume"
) -> dict[str, Any]:
    """Load a checkpoint, refusing one trained with other settings than ``cfg`` (listed).

    With ``world`` (resuming a training run), the number of processes must be the checkpoint's
    too: it sets the batch of a step and the iterations of an epoch, as ``batch_size`` does.
    """
    if not path.is_file():
        raise MissingFileError(f"{flag}: checkpoint {path} not found")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    saved, now = dict(state["config"]), cfg.record()
    if world is not None:  # checkpoints without the count (older ones) are taken at their word
        saved["processes"], now["processes"] = state.get("world", world), world
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        raise SettingsError(
            f"{flag} {path}: the checkpoint was trained with other settings: "
            + ", ".join(f"{k}={saved.get(k)!r} (now {now[k]!r})" for k in changed)
            + ". Resume with the checkpoint's settings, or start a new run (another --output)."
        )
    return state


def resume_path(cfg: Config) -> Path | None:
    """Return the checkpoint ``--resume`` names (``auto``: ``<output>/last.pt`` if it exists)."""
    if cfg.resume is None:
        return None
    if cfg.resume == "auto":
        path = cfg.out_dir() / "last.pt"
        return path if path.is_file() else None
    path = Path(cfg.resume)
    if not path.is_file():
        raise MissingFileError(f"--resume: checkpoint {path} not found")
    return path
