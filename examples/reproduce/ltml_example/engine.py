"""The training run: device and DDP set-up, the loop, checkpoints that resume exactly, tests."""

from __future__ import annotations

import dataclasses
import os
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

import ltml

from . import report
from .config import ROWS, Config, describe, mixes
from .data import Data, build_data, dataset_len, eval_loader, iterations_per_epoch, train_loader
from .decoupled import run_decoupled
from .model import Collaborative, build_model, parameter_count

# Settings that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {
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
}


@dataclasses.dataclass
class _Runtime:
    device: torch.device
    world: int
    rank: int
    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast(self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None)

    def to(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _runtime(cfg: Config) -> _Runtime:
    """Device, process group (``torchrun`` sets WORLD_SIZE > 1) and autocast dtype."""
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    if cfg.device == "cuda" and not cuda:
        raise RuntimeError("--device cuda: CUDA is not available")
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
        raise ValueError("--amp fp16 needs CUDA; on the CPU use --amp bf16 or off")
    dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return _Runtime(device, world, rank, dtype, cuda and cfg.channels_last)


def _rng_state() -> dict[str, Any]:
    # Only torch's generators drive training (model init, augmentation, loader seeds); Python's
    # `random` is consumed by library imports (sklearn -> rich), so it is neither seeded nor saved.
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _config_record(cfg: Config) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()}


def _lr_factor(cfg: Config, iters: int) -> Any:
    """Linear warm-up from ``lr * warmup_ratio``, then ``x lr_gamma`` at each of ``lr_steps``."""

    def factor(it: int) -> float:
        decay = cfg.lr_gamma ** sum(it // iters >= s for s in cfg.lr_steps)
        if it >= cfg.warmup_iters:
            return decay
        return decay * (cfg.warmup_ratio + (1 - cfg.warmup_ratio) * it / cfg.warmup_iters)

    return factor


def _optimizer(cfg: Config, model: Collaborative) -> torch.optim.SGD:
    """SGD; the loss's compensation parameters get no weight decay (it would pull sigma to 0)."""
    net = [p for n, p in model.named_parameters() if p.requires_grad and "criterion" not in n]
    loss = [p for p in model.criterion.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": net}, {"params": loss, "weight_decay": 0.0}]
    return torch.optim.SGD(
        [g for g in groups if g["params"]],
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


def _unpack(batch: Any, branches: str, rt: _Runtime) -> tuple[Tensor | None, ...]:
    """``(x_u, y_u, x_r, y_r)`` on the device, None for the stream a row does not use."""
    if branches == "u":
        (x_u, y_u), x_r, y_r = batch, None, None
    elif branches == "r":
        x_u, y_u, (x_r, y_r) = None, None, batch
    else:
        (x_u, y_u), (x_r, y_r) = batch
    return tuple(None if t is None else rt.to(t) for t in (x_u, y_u, x_r, y_r))


def _mix(
    streams: tuple[Tensor | None, ...], cfg: Config, generator: torch.Generator
) -> tuple[Tensor | None, ...]:
    """Mix each stream ``(x, y)`` of ``(x_u, y_u, x_r, y_r)`` with a permutation of itself."""
    out: list[Tensor | None] = []
    for x, y in zip(streams[::2], streams[1::2], strict=True):
        if x is None or y is None:
            out += [x, y]
            continue
        mixed = ltml.mix_batch(x, y, cfg.mixup, method=cfg.mix_method, generator=generator)
        out += [mixed.inputs, mixed.targets]
    return tuple(out)


@torch.no_grad()
def score(
    model: Collaborative,
    cfg: Config,
    dataset: Any,
    counts: Tensor,
    rt: _Runtime,
    threshold: Tensor | None = None,
) -> ltml.mAPMeter:
    """Fill a meter with the model's scores (logits) on ``dataset``; threshold 0 unless given."""
    model.eval()
    meter = ltml.mAPMeter(
        len(counts),
        groups=ltml.class_groups(counts),
        scores="logits",
        threshold=threshold,
        top_k=3,
    )
    pin = rt.device.type == "cuda"
    for x, y in eval_loader(cfg, dataset, rt.world, rt.rank, pin):
        with rt.autocast():
            scores = model.predict(rt.to(x), flip=cfg.flip_test)
        meter.update(scores.float(), y)
    return meter


def evaluate(
    model: Collaborative, cfg: Config, dataset: Any, counts: Tensor, rt: _Runtime
) -> ltml.MAPResult:
    """Compute mAP (total / head / medium / tail) and CF1 / OF1 (logit 0, top-3) on ``dataset``."""
    return score(model, cfg, dataset, counts, rt).compute()


def _save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash while saving never leaves a truncated checkpoint


def _load(cfg: Config, path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    saved, now = state["config"], _config_record(cfg)
    changed = sorted(k for k in now if k not in _RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        raise ValueError(
            f"--resume {path}: the checkpoint was trained with other settings: "
            + ", ".join(f"{k}={saved.get(k)!r} (now {now[k]!r})" for k in changed)
        )
    return state


def _resume_path(cfg: Config) -> Path | None:
    if cfg.resume is None:
        return None
    if cfg.resume == "auto":
        path = cfg.out_dir() / "last.pt"
        return path if path.is_file() else None
    path = Path(cfg.resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: checkpoint {path} not found")
    return path


def run(cfg: Config) -> dict[str, Any]:
    """Train ``cfg``'s row, evaluate the last epoch on the test set, write the results."""
    if cfg.stage2 != "none":  # a decoupled row: stage 1 (this function), then stage 2
        return run_decoupled(cfg, run)
    rt = _runtime(cfg)
    log = print if rt.main and not cfg.quiet else (lambda *a, **k: None)
    out = cfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    data: Data = build_data(cfg)
    counts = ltml.class_counts(data.train_labels)
    model = build_model(cfg, data.train_labels).to(rt.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(cfg, model)
    draws, iters = iterations_per_epoch(cfg, data.train_labels, rt.world)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(cfg, iters))
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
    loader, sampler = train_loader(cfg, data, iters, rt.world, rt.rank, rt.device.type == "cuda")
    ddp: nn.Module = model
    if rt.world > 1:
        ddp = DistributedDataParallel(
            model,
            device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
            find_unused_parameters=cfg.branches != "both",  # one branch idles
        )

    start = 0
    resume = _resume_path(cfg)
    if resume is not None:
        state = _load(cfg, resume)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start = state["epoch"]

    per_step = cfg.batch_size * cfg.batch_multiplier * (1 if cfg.branches in ("u", "r") else 2)
    log(describe(cfg))
    log(
        f"  device: {rt.device}, processes: {rt.world}, autocast: {rt.amp_dtype}, "
        f"parameters: {parameter_count(model)}"
    )
    log(
        f"  train: {len(data.train_labels)} images, {len(counts)} classes, counts "
        f"{counts.max().item()} .. {counts.min().item()}; test: {dataset_len(data.test)} images"
    )
    log(
        f"  epoch = {draws} draws per stream (rule '{cfg.epoch_length}') -> {iters} iterations "
        f"of {per_step} images x {rt.world} process(es); {cfg.epochs} epochs = "
        f"{iters * cfg.epochs} iterations"
    )
    if data.split_note:
        log(f"  {data.split_note}")
    if resume is not None:
        log(f"  resumed from {resume} at epoch {start}")

    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        sampler.set_epoch(epoch)
        model.set_epoch(epoch)
        loader.generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # worker seeds
        model.set_train_mode(cfg)
        # lambda, permutations and boxes from (seed, epoch), so a resumed run mixes the same
        # way; the offset keeps this stream apart from the loader's
        mixing = None
        if mixes(cfg, epoch):
            mixing = torch.Generator().manual_seed(2**32 + cfg.seed * 1000 + epoch)
        bar = tqdm(
            loader,
            total=iters,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (cfg.progress and rt.main),
            unit="it",
            leave=False,
        )
        for step, batch in enumerate(bar):
            streams = _unpack(batch, cfg.branches, rt)
            if mixing is not None:
                streams = _mix(streams, cfg, mixing)
            with rt.autocast():
                terms = ddp(*streams)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if step % 10 == 0 or step == iters - 1:
                loss = terms["loss"].item()
                if loss != loss:  # NaN
                    raise FloatingPointError(f"loss is NaN at epoch {epoch + 1}, step {step}")
                speed = bar.format_dict["rate"] or 0.0
                bar.set_postfix(
                    loss=f"{loss:.4f}",
                    lr=f"{scheduler.get_last_lr()[0]:.2g}",
                    img_s=f"{speed * per_step * rt.world:.0f}",
                )
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": terms["loss"].item()}
        if cfg.eval_every_epoch and data.val is not None:
            val = evaluate(model, cfg, data.val, counts, rt)
            record["val"] = report.summary(val)
            log(f"epoch {epoch + 1}: validation {val}")
        history.append(record)
        if rt.main:
            _save(
                out / "last.pt",
                {
                    "config": _config_record(cfg),
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": _rng_state(),
                },
            )
    train_s = time.perf_counter() - t0

    threshold = None
    if cfg.fit_thresholds:  # on the validation split only: the test set stays unseen
        threshold = score(model, cfg, data.val, counts, rt).fit_thresholds()
    result = score(model, cfg, data.test, counts, rt, threshold).compute()
    measured = report.summary(result)
    payload = {
        "row": cfg.row,
        "description": ROWS[cfg.row][0],
        "config": _config_record(cfg),
        "train_images": len(data.train_labels),
        "val_images": 0 if data.val is None else len(data.val),
        "iterations_per_epoch": iters,
        "draws_per_epoch": draws,
        "train_seconds": train_s,
        "history": history,
        "test": measured,
        "test_thresholded": report.thresholded(result),
        "thresholds": "fitted on validation" if cfg.fit_thresholds else "logit 0",
        "test_per_class": result.as_dict(),
        "classes": list(data.classes),
        "train_counts": counts.tolist(),
    }
    if rt.main:
        log(report.row_table(cfg.row, cfg.dataset, measured))
        log(report.thresholded_table(result, fitted=cfg.fit_thresholds))
        report.write_json(out / "results.json", payload)
        if cfg.plot:
            report.plot_per_class(
                out / "per_class_ap.png",
                result.as_dict()["ap"],
                counts.tolist(),
                ltml.class_groups(counts),
                data.classes,
                f"{cfg.dataset}: {ROWS[cfg.row][0]}",
            )
        log(
            f"wrote {out / 'results.json'}, checkpoint {out / 'last.pt'}"
            + (f", plot {out / 'per_class_ap.png'}" if cfg.plot else "")
        )
    return payload
