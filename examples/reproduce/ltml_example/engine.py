"""The training run: the loop, a checkpoint after every epoch, evaluation on the test set."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

import ltml

from . import report
from .config import Config, describe, group_line, groups_of, mixes
from .data import (
    Data,
    build_data,
    dataset_len,
    epoch_line,
    eval_loader,
    images_per_step,
    iterations_per_epoch,
    train_loader,
)
from .decoupled import run_decoupled
from .model import Collaborative, build_model, parameter_count
from .pipeline import augment_batch
from .presets import ROWS
from .runtime import (
    Runtime,
    load_checkpoint,
    resume_path,
    rng_state,
    save_checkpoint,
    set_rng_state,
    set_up,
)


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


def _unpack(batch: Any, branches: str, rt: Runtime) -> tuple[Tensor | None, ...]:
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
    rt: Runtime,
    classes: Sequence[str],
    threshold: Tensor | None = None,
) -> ltml.mAPMeter:
    """Fill a meter with the model's scores (logits) on ``dataset``; threshold 0 unless given.

    ``classes``: the class names, which the meter's warnings then use.
    """
    model.eval()
    meter = ltml.mAPMeter(
        len(counts),
        groups=groups_of(cfg, counts),
        scores="logits",
        threshold=threshold,
        top_k=3,
        class_names=classes,
    )
    pin = rt.device.type == "cuda"
    for x, y in eval_loader(cfg, dataset, rt.world, rt.rank, pin):
        with rt.autocast():
            scores = model.predict(rt.to(x), flip=cfg.flip_test)
        meter.update(scores.float(), y)
    return meter


def evaluate(
    model: Collaborative,
    cfg: Config,
    dataset: Any,
    counts: Tensor,
    rt: Runtime,
    classes: Sequence[str],
) -> ltml.MAPResult:
    """Compute mAP (total / head / medium / tail) and CF1 / OF1 (logit 0, top-3) on ``dataset``."""
    return score(model, cfg, dataset, counts, rt, classes).compute()


def run(cfg: Config) -> dict[str, Any]:
    """Train ``cfg``'s row, evaluate the last epoch on the test set, write the results."""
    if cfg.stage2 != "none":  # a decoupled row: stage 1 (this function), then stage 2
        return run_decoupled(cfg, run)
    rt = set_up(cfg)
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
    # --cache-images on CUDA: the decoded copies on the device, batches augmented there
    decoded = data.decoded
    on_device = decoded is not None and rt.device.type == "cuda" and decoded.on_device(rt.device)
    loader, sampler = train_loader(cfg, data, iters, rt.world, rt.rank, rt.device.type == "cuda")
    ddp: nn.Module = model
    if rt.world > 1:
        ddp = DistributedDataParallel(
            model,
            device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
            find_unused_parameters=cfg.branches != "both",  # one branch idles
        )

    start, trained_s = 0, 0.0
    history: list[dict[str, Any]] = []  # one record per epoch, kept across resumptions
    resume = resume_path(cfg)
    if resume is not None:
        state = load_checkpoint(cfg, resume, world=rt.world)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start = state["epoch"]
        history = list(state.get("history", []))
        trained_s = state.get("train_seconds", 0.0)

    per_step = images_per_step(cfg)
    notes = {}
    if cfg.channels_last and not rt.channels_last:
        notes["channels_last"] = f"CUDA only: not applied on {rt.device.type}"
    log(describe(cfg, notes))
    log(
        f"  device: {rt.device}, processes: {rt.world}, autocast: {rt.amp_dtype}, "
        f"channels_last: {rt.channels_last}, parameters: {parameter_count(model)}"
    )
    log(
        f"  train: {len(data.train_labels)} images, {len(counts)} classes, counts "
        f"{counts.max().item()} .. {counts.min().item()}; test: {dataset_len(data.test)} images"
    )
    log(f"  {epoch_line(cfg, data.train_labels, rt.world)}")
    log(f"  {group_line(cfg, counts)}")
    if data.split_note:
        log(f"  {data.split_note}")
    if decoded is not None and decoded.cache is not None:
        where = "on the device" if on_device else "in host memory"
        log(f"  {decoded.cache.describe()}, {where}")
    if resume is not None:
        log(f"  resumed from {resume} at epoch {start}")

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
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
            if on_device and decoded is not None:  # the loader gave image indices
                batch = augment_batch(batch, decoded)
            streams = _unpack(batch, cfg.branches, rt)
            if mixing is not None:
                streams = _mix(streams, cfg, mixing)
            with rt.autocast():
                loss = ddp(*streams)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if step % 10 == 0 or step == iters - 1:
                value = loss.item()
                if value != value:  # NaN
                    raise FloatingPointError(f"loss is NaN at epoch {epoch + 1}, step {step}")
                speed = bar.format_dict["rate"] or 0.0
                bar.set_postfix(
                    loss=f"{value:.4f}",
                    lr=f"{scheduler.get_last_lr()[0]:.2g}",
                    img_s=f"{speed * per_step * rt.world:.0f}",
                )
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": loss.item()}
        if cfg.eval_every_epoch and data.val is not None:
            val = evaluate(model, cfg, data.val, counts, rt, data.classes)
            record["val"] = report.summary(val)
            log(f"epoch {epoch + 1}: validation {val}")
        history.append(record)
        trained_s += time.perf_counter() - t0  # with the epochs run before a resumption
        if rt.main:
            save_checkpoint(
                out / "last.pt",
                {
                    "config": cfg.record(),
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rng_state(),
                    "world": rt.world,
                    "history": history,
                    "train_seconds": trained_s,
                },
            )

    threshold = None
    if cfg.fit_thresholds:  # on the validation split only: the test set stays unseen
        threshold = score(model, cfg, data.val, counts, rt, data.classes).fit_thresholds()
    result = score(model, cfg, data.test, counts, rt, data.classes, threshold).compute()
    measured = report.summary(result)
    payload = {
        "row": cfg.row,
        "description": ROWS[cfg.row].description,
        "config": cfg.record(),
        "train_images": len(data.train_labels),
        "val_images": 0 if data.val is None else len(data.val),
        "iterations_per_epoch": iters,
        "draws_per_epoch": draws,
        "train_seconds": trained_s,
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
                groups_of(cfg, counts),
                data.classes,
                f"{cfg.dataset}: {ROWS[cfg.row].description}",
            )
        log(
            f"wrote {out / 'results.json'}, checkpoint {out / 'last.pt'}"
            + (f", plot {out / 'per_class_ap.png'}" if cfg.plot else "")
        )
    return payload
