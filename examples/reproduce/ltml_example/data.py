"""Datasets, transforms and the training loader of the two samplings (uniform + re-balanced).

Epoch length (docs/guides/reproduce.md, "Epoch length"): the two streams of a step must have one
length per epoch. Rule: an epoch is ``--epoch-length`` draws per stream (default ``db``: the
DB-loss class-aware epoch ``max_k n_k * C / 4``, 3,875 on VOC-LT), i.e.
``ceil(draws / (batch * processes))`` iterations; the uniform stream reshuffles each time it
wraps (``ltml.PairedSampler``). Every row, single-stream ones included, runs the same
iterations, so rows differ only in what they learn from.
"""

from __future__ import annotations

import copy
import math
import urllib.request
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset
from torchvision.transforms import v2

import ltml
from ltml.data import (
    COCOMultiLabel,
    TableMultiLabel,
    VOCMultiLabel,
    drop_labels,
    make_demo,
    split_deviation,
    stratified_split,
)

from .config import Config, switch_epoch
from .errors import MissingFileError, data_errors
from .pipeline import (
    CROP_RATIO,
    CROP_SCALE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    JITTER,
    DecodedImages,
    ImageCache,
    cache_side,
    uint8_transform,
)

DB_LOSS_RAW = "https://raw.githubusercontent.com/wutong16/DistributionBalancedLoss/master/appendix"
# dataset -> (where the list goes under VOCdevkit / the COCO root, its path in the DB-loss
# repository)
OFFICIAL_LISTS = {
    "voc-lt": ("longtail2012/img_id.txt", "VOCdevkit/longtail2012/img_id.txt"),
    "coco-lt": ("longtail2017/img_id.pkl", "coco/longtail2017/img_id.pkl"),
}


@dataclass
class Data:
    """The training set (its labels apart, for samplers and losses), validation and test sets."""

    train: Dataset[Any]
    train_labels: Tensor
    val: Subset[Any] | None
    test: Dataset[Any]
    classes: tuple[str, ...]
    split_note: str = ""  # how the parts were held out, printed at the start of a run
    # --pipeline uint8: the training images as read (and cached); None for the float pipeline
    decoded: DecodedImages | None = None


def transforms(cfg: Config, train: bool) -> v2.Compose:
    """DB-loss pipeline (approximated with torchvision): resize to a square, crop, flip, colour.

    Training: a random crop keeping 64-100 % of the area (their crop keeps >= 0.8 of each side),
    horizontal flip, photometric distortion (their brightness is +-32 of 255, additive; contrast
    and saturation 0.5-1.5, hue +-18 degrees). Test: resize to ``image_size`` squared, no crop.
    The demo's digit mosaics are only shifted (up to 1/8 of the side): rescaled, mirrored or
    recoloured digits make a from-scratch network on ~1,100 images learn far less.

    This is the float-first pipeline (``--pipeline float``); ``--pipeline uint8`` trains with
    :func:`ltml_example.pipeline.uint8_transform`, the same augmentations on uint8 images.
    """
    size = (cfg.image_size, cfg.image_size)
    steps: list[Any] = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if not train:
        steps.append(v2.Resize(size))
    elif cfg.dataset == "demo":
        steps += [v2.Resize(size), v2.RandomCrop(size, padding=cfg.image_size // 8)]
    else:
        steps.append(v2.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO))
        steps.append(v2.ColorJitter(**JITTER))
    if train and cfg.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(cfg.hflip))
    steps.append(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return v2.Compose(steps)


def build_data(cfg: Config) -> Data:
    """Build the datasets of ``cfg.dataset``, with a seeded validation split held out if asked."""
    train_tf, test_tf = transforms(cfg, train=True), transforms(cfg, train=False)
    root = Path(cfg.data_root or ".")
    full: Any
    test: Dataset[Any] | None
    if cfg.dataset == "demo":
        full = make_demo("train", seed=cfg.seed, max_count=cfg.demo_max_count, transform=train_tf)
        test = make_demo("test", seed=cfg.seed, num_test=cfg.demo_test_size, transform=test_tf)
    elif cfg.dataset == "voc-lt":
        with data_errors(f"--data-root {root}"):
            test = VOCMultiLabel(root, image_set="test", transform=test_tf, year="2007")
        # the list's place follows the VOCdevkit the library found (root, or root/VOCdevkit)
        image_list = _train_list(cfg, test.root.parent)
        with data_errors(f"--data-root {root}, image list {image_list}"):
            full = VOCMultiLabel(root, image_list=image_list, transform=train_tf)
    elif cfg.dataset == "csv":
        with data_errors(f"--train-csv {cfg.train_csv}"):
            full = _table(cfg, cfg.train_csv, train_tf)
        test = None
        if cfg.test_csv is not None:
            with data_errors(f"--test-csv {cfg.test_csv}"):
                test = _table(cfg, cfg.test_csv, test_tf, full.classes)
    else:
        ann = root / "annotations"
        image_list = _train_list(cfg, root)
        with data_errors(f"--data-root {root}, image list {image_list}"):
            full = COCOMultiLabel(
                root / "train2017", ann / "instances_train2017.json", image_list, transform=train_tf
            )
            test = COCOMultiLabel(
                root / "val2017", ann / "instances_val2017.json", transform=test_tf
            )
    labels = torch.as_tensor(full.labels)
    if cfg.missing_rate > 0:  # simulated partial labels: the training set reads the -1s too
        labels = drop_labels(labels, cfg.missing_rate, scheme=cfg.missing_scheme, seed=cfg.seed)
        full = _Relabelled(full, labels)
    if cfg.dataset == "csv":
        return _stratified(cfg, full, test, test_tf)
    test = cast("Dataset[Any]", test)  # only a table (csv) may come without a test set
    if cfg.val_fraction == 0:
        train, decoded = _train_view(cfg, full, labels, None)
        return Data(train, labels, None, test, full.classes, decoded=decoded)
    holdout = copy.copy(full)  # the same images and labels, seen through the test transform
    holdout.transform = test_tf
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(cfg.seed))
    n_val = max(1, round(cfg.val_fraction * len(labels)))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    train, decoded = _train_view(cfg, full, labels, train_idx)
    return Data(
        train,
        labels[train_idx],
        Subset(holdout, val_idx.tolist()),
        test,
        full.classes,
        decoded=decoded,
    )


def _train_view(
    cfg: Config, full: Any, labels: Tensor, idx: Tensor | None
) -> tuple[Dataset[Any], DecodedImages | None]:
    """Return the training images ``idx`` of ``full`` (all if None) as ``--pipeline`` reads them.

    ``float`` (and the demo, whose images are in memory): ``full`` with its transform.
    ``uint8``: the files decoded to uint8 (:class:`DecodedImages`), from a cache of the
    ``idx`` images with ``--cache-images``. Returns the dataset and the decoded view.
    """
    keep = None if idx is None else idx.tolist()
    if cfg.pipeline == "float" or cfg.dataset == "demo":
        return (full if keep is None else Subset(full, keep)), None
    paths = [full.image_path(i) for i in range(len(labels))]
    cache = None
    if cfg.cache_images:
        wanted = range(len(labels)) if keep is None else keep
        cache = ImageCache(paths, wanted, cache_side(cfg.image_size), cfg.cache_mb * 2**20)
    decoded = DecodedImages(paths, labels, uint8_transform(cfg.image_size, cfg.hflip), cache)
    return (decoded if keep is None else Subset(decoded, keep)), decoded


def _table(
    cfg: Config, path: Any, transform: Any, classes: tuple[str, ...] | None = None
) -> TableMultiLabel:
    """Read one table of ``--dataset csv`` (its flags are checked by the configuration)."""
    return TableMultiLabel(
        path,
        cfg.image_root or ".",
        transform=transform,
        image_column=cfg.image_column,
        tags_column=cfg.tags_column,
        classes=classes,
    )


def _stratified(cfg: Config, full: Any, test: Any, test_tf: v2.Compose) -> Data:
    """Hold out the validation (and test) parts of a table by iterative stratification.

    A random split of a long tail leaves rare classes out of small parts; the stratifier keeps
    each class's share in every part, and the note printed at the start says how closely.
    """
    labels = full.labels
    wanted = {"val": cfg.val_fraction, "test": cfg.test_fraction if test is None else 0.0}
    names = ["train", *(k for k, f in wanted.items() if f > 0)]
    if names == ["train"]:
        view, decoded = _train_view(cfg, full, torch.as_tensor(labels), None)
        return Data(view, labels, None, test, full.classes, decoded=decoded)
    fractions = [1 - sum(wanted.values()), *(wanted[k] for k in names[1:])]
    parts = dict(zip(names, stratified_split(labels, fractions, seed=cfg.seed), strict=True))
    off = 100 * split_deviation(labels, list(parts.values()), fractions).abs()
    note = (
        "stratified split of "
        + ", ".join(f"{k} {len(idx)}" for k, idx in parts.items())
        + f" images: class shares off target by {off.nanmean():.1f} points on average, "
        f"{off.nan_to_num().max():.1f} at most"
    )
    holdout = copy.copy(full)  # the same images and labels, seen through the test transform
    holdout.transform = test_tf
    held = {k: Subset(holdout, idx.tolist()) for k, idx in parts.items() if k != "train"}
    train = parts["train"]
    view, decoded = _train_view(cfg, full, torch.as_tensor(labels), train)
    return Data(
        view,
        labels[train],
        held.get("val"),
        held.get("test", test),
        full.classes,
        note,
        decoded,
    )


class _Relabelled(Dataset[Any]):
    """A dataset whose items carry other labels: ``(x, labels[i])`` (simulated partial labels)."""

    def __init__(self, dataset: Any, labels: Tensor) -> None:
        self.dataset, self.labels, self.classes = dataset, labels, dataset.classes

    @property
    def transform(self) -> Any:
        return self.dataset.transform

    @transform.setter
    def transform(self, value: Any) -> None:
        self.dataset.transform = value

    def image_path(self, i: int) -> Path:
        return Path(self.dataset.image_path(i))

    def __copy__(self) -> _Relabelled:
        return _Relabelled(copy.copy(self.dataset), self.labels)  # its own transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, Tensor]:
        return self.dataset[index][0], self.labels[index].to(torch.float32)


def _train_list(cfg: Config, root: Path) -> Path:
    """Return the official LT list: ``--train-list``, else its place under ``root``.

    ``root``: the ``VOCdevkit`` folder for VOC-LT (the list is ``longtail2012/img_id.txt`` in
    it), the data root for COCO-LT (``longtail2017/img_id.pkl``).
    """
    relative, remote = OFFICIAL_LISTS[cfg.dataset]
    url = f"{DB_LOSS_RAW}/{remote}"
    path = cfg.train_list or root / relative
    if not path.is_file():
        if not cfg.download_lists:
            raise MissingFileError(
                f"training image list {path} not found: get it from the DB-loss repository "
                f"({url}), pass --train-list, or add --download-lists"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"downloading {url} -> {path}")
        try:
            urllib.request.urlretrieve(url, path)
        except OSError as error:  # offline, or the repository moved (URLError is an OSError)
            raise MissingFileError(
                f"--download-lists: fetching {url} failed ({error}); download it elsewhere and "
                f"put it at {path}, or pass --train-list"
            ) from error
    return path


class _OneStream(Sampler[int]):
    """One side of a ``PairedSampler``, for rows that train on a single sampling.

    Taking the stream from the pair keeps the epoch length, the wrap-around reshuffling and the
    DDP sharding identical for every row.
    """

    def __init__(self, paired: ltml.PairedSampler, side: int) -> None:
        self.paired, self.side = paired, side

    def __len__(self) -> int:
        return len(self.paired)

    def set_epoch(self, epoch: int) -> None:
        self.paired.set_epoch(epoch)

    def __iter__(self) -> Any:
        return (pair[self.side] for pair in self.paired)


def rule_draws(cfg: Config, labels: Tensor) -> int:
    """Draws per stream of an epoch by the ``--epoch-length`` rule (db, uniform or a number)."""
    if cfg.epoch_length == "db":
        return ltml.ClassAwareSampler(labels, num_draws="db", num_replicas=1, rank=0).num_draws
    if cfg.epoch_length == "uniform":
        return len(labels)
    return int(cfg.epoch_length)


def iterations_per_epoch(cfg: Config, labels: Tensor, world: int) -> tuple[int, int]:
    """``(draws per stream per epoch, iterations per epoch)``.

    By the epoch-length rule; with ``--iters-per-epoch``, the iterations given and the draws
    they make (a batch per iteration and process).
    """
    if cfg.iters_per_epoch:
        iters = cfg.iters_per_epoch
        return iters * cfg.batch_size * cfg.batch_multiplier * world, iters
    draws = rule_draws(cfg, labels)
    return draws, math.ceil(draws / (cfg.batch_size * world))


def images_per_step(cfg: Config) -> int:
    """Images a process trains on per iteration: one batch per stream the row uses."""
    return cfg.batch_size * cfg.batch_multiplier * (1 if cfg.branches in ("u", "r") else 2)


def epoch_line(cfg: Config, labels: Tensor, world: int) -> str:
    """Say how long an epoch is and why, for the start of a run."""
    _, iters = iterations_per_epoch(cfg, labels, world)
    why = f"rule '{cfg.epoch_length}': {rule_draws(cfg, labels)} draws per stream"
    if cfg.iters_per_epoch:
        why = f"--iters-per-epoch, in place of the {why}"
    made = iters * cfg.batch_size * cfg.batch_multiplier * world
    return (
        f"epoch = {iters} iterations ({why}) of {images_per_step(cfg)} images x {world} "
        f"process(es), {made} draws per stream; {cfg.epochs} epochs = {iters * cfg.epochs} "
        "iterations"
    )


def train_loader(
    cfg: Config, data: Data, iters: int, world: int, rank: int, pin_memory: bool
) -> tuple[DataLoader[Any], _OneStream | ltml.PairedSampler | ltml.DeferredClassAwareSampler]:
    """Loader of one epoch of ``iters`` steps: paired batches, or one stream's batches.

    Returns the loader and the sampler whose ``set_epoch`` must be called every epoch.
    """
    batch = cfg.batch_size * cfg.batch_multiplier
    uniform: DistributedSampler[int] = DistributedSampler(
        data.train, num_replicas=world, rank=rank, seed=cfg.seed
    )
    class_aware: dict[str, Any] = {
        "num_draws": iters * batch * world,
        "mode": cfg.sampler_mode,
        "power": cfg.sampler_power,
        "seed": cfg.seed,
        "num_replicas": world,
        "rank": rank,
    }
    rebalanced: Sampler[int]
    if cfg.sampler_mode == "balanced":  # image probabilities fitted to equal class shares
        rebalanced = ltml.BalancedSampler(
            data.train_labels,
            iters * batch * world,
            power=cfg.sampler_power,
            seed=cfg.seed,
            num_replicas=world,
            rank=rank,
        )
    elif cfg.sampler_mode == "repeat-factor":  # LVIS: each image by its rarest class's factor
        rebalanced = ltml.RepeatFactorSampler(
            data.train_labels,
            cfg.repeat_threshold,
            num_draws=iters * batch * world,
            seed=cfg.seed,
            num_replicas=world,
            rank=rank,
        )
    else:
        rebalanced = ltml.ClassAwareSampler(data.train_labels, **class_aware)
    paired = ltml.PairedSampler(uniform, rebalanced, length="balanced")
    sampler: _OneStream | ltml.PairedSampler | ltml.DeferredClassAwareSampler
    if cfg.deferred == "resample":  # DRS: uniform order, then class-aware draws
        sampler = ltml.DeferredClassAwareSampler(
            data.train_labels, switch_epoch(cfg), **class_aware
        )
        dataset = data.train
    elif cfg.branches in ("u", "r"):
        sampler, dataset = _OneStream(paired, 0 if cfg.branches == "u" else 1), data.train
    else:
        sampler, dataset = paired, ltml.PairedDataset(data.train)
    # batches of indices (the images are on the device) need no worker
    indices_only = data.decoded is not None and data.decoded.indices_only
    loader = DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=0 if indices_only else cfg.workers,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=False,
    )
    return loader, sampler


def dataset_len(dataset: Dataset[Any]) -> int:
    """``len(dataset)``: every dataset here has one, though torch's ``Dataset`` declares none."""
    return len(cast(Sized, dataset))


def eval_loader(
    cfg: Config, dataset: Dataset[Any], world: int, rank: int, pin_memory: bool
) -> DataLoader[Any]:
    """Load this process's share of an evaluation set (unpadded: the meter takes uneven shares)."""
    share = Subset(dataset, list(range(rank, dataset_len(dataset), world)))
    return DataLoader(
        share,
        batch_size=2 * cfg.batch_size,
        num_workers=cfg.workers,
        pin_memory=pin_memory,
        generator=torch.Generator(),  # leaves the global RNG (augmentation) untouched
    )
