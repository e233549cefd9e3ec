"""What a run depends on: :class:`Config`, whose defaults are the benchmark protocol.

The protocol is the DB-loss recipe + the values of a published LTML reproduction
(docs/guides/reproduce.md, "Protocol"). :func:`ltml_example.flags.resolve` builds a
:class:`Config` from the command line, layering the dataset's defaults and the ``--row`` preset
(:mod:`ltml_example.presets`) over the protocol.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ltml

from .presets import ROWS

# The values of the flags that take a choice: the types of their Config fields, and the flags'
# ``choices`` (get_args keeps the order written here).
DatasetName = Literal["demo", "voc-lt", "coco-lt", "csv"]
Arch = Literal["resnet18", "resnet34", "resnet50", "resnet101"]
Weights = Literal["IMAGENET1K_V1", "IMAGENET1K_V2", "none"]
MissingScheme = Literal["random", "per-class", "positives"]
Branches = Literal["u", "r", "both", "mixed"]
Branch = Literal["u", "r"]
ClsLoss = Literal["bce", "weighted", "compensated", "db-focal", "asl", "comic", "hill", "splc"]
Unknown = Literal["ignore", "negative"]
Guard = Literal["none", "tied"]
ScoreSpace = Literal["prob", "logit"]
Detach = Literal["none", "first", "second"]
SamplerMode = Literal["cycle", "random", "balanced", "repeat-factor"]
Deferred = Literal["none", "reweight", "resample"]
MixMethod = Literal["mixup", "cutmix"]
Stage2 = Literal["none", "crt", "ncm", "tau-norm", "lws", "logit-adjust"]
Device = Literal["auto", "cpu", "cuda"]
Amp = Literal["auto", "off", "bf16", "fp16"]
# The classifier that ends each branch (rows csra, ml-decoder): ltml.CSRA / ltml.MLDecoder.
Head = Literal["linear", "csra", "ml-decoder"]
Pipeline = Literal["uint8", "float"]  # training input: ltml_example.pipeline

# The DB recipe's settings meant for ImageNet weights: with ``--weights none`` they are off
# unless their flag is given (they would freeze a random stem and random BatchNorm statistics).
NEEDS_PRETRAINED = ("freeze_stem", "bn_eval")

# The branch a one-branch row trains (``mixed`` trains U on both batches): the branch it
# predicts with, and whose features stage 2 takes.
TRAINED_BRANCH: dict[Branches, Branch] = {"u": "u", "r": "r", "mixed": "u"}


@dataclass(frozen=True)
class Config:
    """Everything a run depends on; printed at start and stored in checkpoints and results."""

    # data
    dataset: DatasetName = "demo"
    data_root: Path | None = None
    train_list: Path | None = None
    download_lists: bool = False
    image_size: int = 224
    hflip: float = 0.5
    val_fraction: float = 0.0
    # your own data (--dataset csv): a table of image paths and labels, see read_label_table
    train_csv: Path | None = None
    test_csv: Path | None = None
    image_root: Path | None = None
    test_fraction: float = 0.0
    image_column: str | None = None
    tags_column: str | None = None
    demo_max_count: int = 800
    demo_test_size: int = 1000
    missing_rate: float = 0.0  # fraction of the training labels hidden (PLT protocol: 0.4)
    missing_scheme: MissingScheme = "random"  # ltml.data.drop_labels
    # model
    arch: Arch = "resnet50"
    weights: Weights = "IMAGENET1K_V1"
    stem_pool: bool = True  # the stem's max-pool (off for 32x32 inputs: 4x more positions)
    freeze_stem: bool = True  # conv1 + layer1 frozen (DB recipe)
    bn_eval: bool = True  # every BatchNorm in eval mode (DB recipe)
    # the head on layer4: pooling + linear, CSRA (authors' defaults: 1 head, lambda 0.1) or
    # ML-Decoder (authors' defaults: min(100, C) fixed queries, width 768, one layer)
    head: Head = "linear"
    csra_heads: int = 1  # 1, 2, 4, 6 or 8: the authors' temperatures (ltml.CSRA_TEMPERATURES)
    csra_lambda: float = 0.1
    # method: which paper row
    row: str = "ltml"
    branches: Branches = "both"
    cls_loss: ClsLoss = "compensated"
    unknown: Unknown = "ignore"  # unknown-label policy of the loss
    rlc_weight: float = 0.2  # comic: weight of the Reflective Label Corrector's loss
    # comic: COMIC's third stage, a balanced classifier trained through the U (head) and R
    # (tail) experts by ltml.HeadTailBalancer; it predicts (needs --branches both)
    comic_balance: bool = False
    loss_args: tuple[str, ...] = ()  # KEY=VALUE hyper-parameters of the db-focal / asl loss
    guard: Guard = "none"  # LogitCompensatedBCE guard
    consistency: bool = True
    consistency_weight: float = 0.1  # lambda of Eq. 1
    consistency_space: ScoreSpace = "prob"
    consistency_detach: Detach = "none"
    flip_test: bool = False
    predict: ScoreSpace = "prob"  # how the two branches are averaged at test time
    # sampling and schedule
    # DB-loss class cycle, i.i.d. "random" draws, or "balanced" (ltml.BalancedSampler)
    sampler_mode: SamplerMode = "cycle"
    sampler_power: float = 0.0
    # repeat-factor: classes in fewer than this fraction of the images are up-sampled (LVIS
    # uses 0.001 over 1,203 classes; 0.1 repeats the demo's and VOC-LT's rarest about 5 times)
    repeat_threshold: float = 0.1
    epoch_length: str = "db"  # db | uniform | an integer number of draws per stream
    iters_per_epoch: int | None = None  # overrides the epoch-length rule
    batch_size: int = 32  # per stream, per process
    batch_multiplier: int = 1  # control: a single-stream row with its batch scaled
    epochs: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_ratio: float = 1 / 3
    lr_steps: tuple[int, ...] = (5, 7)
    lr_gamma: float = 0.1
    grad_clip: float = 35.0
    seed: int = 1
    # machinery
    device: Device = "auto"
    amp: Amp = "auto"
    channels_last: bool = True  # CUDA only
    workers: int = 4
    threads: int | None = None  # torch CPU threads (None: torch's default)
    # training input (ltml_example.pipeline): crop uint8 images first, or convert to float first;
    # decode the training set once into a cache of shrunk copies (on CUDA: on the device)
    pipeline: Pipeline = "uint8"
    cache_images: bool = False
    cache_mb: int = 4096
    output: Path | None = None
    resume: str | None = None
    eval_every_epoch: bool = False
    fit_thresholds: bool = False  # per-class F1 thresholds fitted on the validation split
    # head / medium / tail limits of the reported groups (ltml.class_groups): tail below the
    # first training count, head from the second; (20, 100) is VOC-LT's and COCO-LT's
    group_thresholds: tuple[int, int] = (20, 100)
    plot: bool = True
    progress: bool = True
    quiet: bool = False  # no configuration echo nor results table (the demo prints its own)
    # deferred re-balancing of a uniform single-branch row (rows drw / drs)
    deferred: Deferred = "none"  # none | reweight (DRW) | resample (DRS)
    switch_epoch: int | None = None  # first re-balanced epoch; None: the first lr step
    # input mixup / CutMix of every training stream (Bag of Tricks: mixup, then a fine-tune)
    mixup: float = 0.0  # Beta(alpha, alpha) concentration; 0: off
    mix_method: MixMethod = "mixup"
    mixup_stop: int | None = None  # first unmixed epoch (0-based); None: mix every epoch
    # decoupled stage 2 (rows crt, ncm, tau-norm, lws, logit-adjust, ltml-crt): on the cached
    # features of a stage-1 model, trained first or loaded with --stage1
    stage2: Stage2 = "none"
    stage1: Path | None = None
    stage2_branch: Branch = "u"  # which branch's features, for a two-branch stage 1
    stage2_epochs: int = 10
    stage2_batch_size: int = 512
    stage2_lr: float = 0.2
    stage2_weight_decay: float = 5e-4
    tau: float | None = None  # tau-norm / logit-adjust; None: searched on the validation split
    tau_bias: bool = False  # tau-norm keeps the bias (Bag of Tricks)
    lws_bias: bool = False  # LWS learns a per-class offset too

    def out_dir(self) -> Path:
        """Return the output folder: ``--output`` or ``runs/<dataset>-<row>-seed<seed>``."""
        return self.output or Path("runs") / f"{self.dataset}-{self.row}-seed{self.seed}"

    def record(self) -> dict[str, Any]:
        """Return the configuration as checkpoints and ``results.json`` store it (paths as text)."""
        return {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()
        }


def loss_args(cfg: Config) -> dict[str, float]:
    """``--loss-args`` as keyword arguments: ``KEY=VALUE`` pairs with numeric values."""
    pairs = [arg.partition("=") for arg in cfg.loss_args]
    return {key: float(value) for key, _, value in pairs}


def switch_epoch(cfg: Config) -> int:
    """First re-balanced epoch of a deferred row: ``--switch-epoch``, else the first lr step."""
    if cfg.switch_epoch is not None:
        return cfg.switch_epoch
    return min(cfg.lr_steps) if cfg.lr_steps else cfg.epochs * 4 // 5


def mixes(cfg: Config, epoch: int) -> bool:
    """Whether ``epoch`` trains on mixed batches: ``--mixup`` on and before ``--mixup-stop``."""
    return cfg.mixup > 0 and (cfg.mixup_stop is None or epoch < cfg.mixup_stop)


def groups_of(cfg: Config, counts: Any) -> dict[str, list[int]]:
    """Return the head / medium / tail classes of training ``counts`` (``--group-thresholds``)."""
    return ltml.class_groups(counts, cfg.group_thresholds)


def group_line(cfg: Config, counts: Any) -> str:
    """Say how many classes each group holds, and warn when one holds them all."""
    low, high = cfg.group_thresholds
    members = groups_of(cfg, counts)
    sizes = ", ".join(f"{name} {len(k)}" for name, k in members.items())
    line = f"groups (tail < {low} <= medium < {high} <= head training images): {sizes}"
    everything = [name for name, k in members.items() if len(k) == len(counts) > 1]
    if everything:
        line += (
            f"; every class is {everything[0]}, so the group mAPs only repeat the total: "
            "choose --group-thresholds LOW HIGH that split your counts"
        )
    return line


def describe(cfg: Config, notes: dict[str, str] | None = None) -> str:
    """Format the resolved configuration, one ``name = value`` per line, for the start of a run.

    ``notes``: a remark to print after a field's value (e.g. a setting the device ignores).
    """
    notes = notes or {}
    lines = [f"row: {cfg.row} ({ROWS[cfg.row].description})"]
    for f in dataclasses.fields(cfg):
        if f.name != "row":
            note = f"  ({notes[f.name]})" if f.name in notes else _why(cfg, f.name)
            lines.append(f"  {f.name:<20} = {getattr(cfg, f.name)}{note}")
    return "\n".join(lines)


def _why(cfg: Config, name: str) -> str:
    """Return a note for a value the reader may not expect: the recipe's freezing, no weights."""
    if cfg.weights != "none" or name not in NEEDS_PRETRAINED:
        return ""
    flag = "--" + name.replace("_", "-")
    if getattr(cfg, name):
        return "  (asked for, though --weights none starts from random weights)"
    return f"  (--weights none: the recipe's setting for ImageNet weights is off; {flag} sets it)"
