"""Flags, the paper's table rows as presets, and their resolution into one :class:`Config`.

Resolution order (later wins): the benchmark protocol (the DB-loss recipe + the values of a
published LTML reproduction; docs/guides/reproduce.md, "Protocol") < the dataset's defaults (the
demo trains a small network from scratch) < the ``--row`` preset < every flag given on the
command line.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

# The values of the flags that take a choice: the types of their Config fields, and the flags'
# ``choices`` (get_args keeps the order written here).
DatasetName = Literal["demo", "voc-lt", "coco-lt", "csv"]
Arch = Literal["resnet18", "resnet34", "resnet50", "resnet101"]
Weights = Literal["IMAGENET1K_V1", "IMAGENET1K_V2", "none"]
MissingScheme = Literal["random", "per-class", "positives"]
Branches = Literal["u", "r", "both", "mixed"]
Branch = Literal["u", "r"]
ClsLoss = Literal["bce", "weighted", "compensated", "db-focal", "asl", "comic"]
Unknown = Literal["ignore", "negative"]
Guard = Literal["none", "tied"]
ScoreSpace = Literal["prob", "logit"]
Detach = Literal["none", "first", "second"]
SamplerMode = Literal["cycle", "random"]
Deferred = Literal["none", "reweight", "resample"]
MixMethod = Literal["mixup", "cutmix"]
Stage2 = Literal["none", "crt", "ncm", "tau-norm", "lws", "logit-adjust"]
Device = Literal["auto", "cpu", "cuda"]
Amp = Literal["auto", "off", "bf16", "fp16"]

DATASETS, ARCHS, WEIGHTS = get_args(DatasetName), get_args(Arch), get_args(Weights)

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
    # method: which paper row
    row: str = "ltml"
    branches: Branches = "both"
    cls_loss: ClsLoss = "compensated"
    unknown: Unknown = "ignore"  # unknown-label policy of the loss
    rlc_weight: float = 0.2  # comic: weight of the Reflective Label Corrector's loss
    loss_args: tuple[str, ...] = ()  # KEY=VALUE hyper-parameters of the db-focal / asl loss
    guard: Guard = "none"  # LogitCompensatedBCE guard
    consistency: bool = True
    consistency_weight: float = 0.1  # lambda of Eq. 1
    consistency_space: ScoreSpace = "prob"
    consistency_detach: Detach = "none"
    flip_test: bool = False
    predict: ScoreSpace = "prob"  # how the two branches are averaged at test time
    # sampling and schedule
    sampler_mode: SamplerMode = "cycle"  # DB-loss class cycle, or i.i.d. "random" draws
    sampler_power: float = 0.0
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
    output: Path | None = None
    resume: str | None = None
    eval_every_epoch: bool = False
    fit_thresholds: bool = False  # per-class F1 thresholds fitted on the validation split
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


# Published mAP %, total / head / medium / tail: Guo & Wang (CVPR 2021) Table 3, and the
# ERM / DB-Focal rows of Wu et al. (ECCV 2020); the table of docs/guides/reproduce.md. RS and
# the two controls have no published number.
PAPER: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "u-only": {"voc-lt": (77.15, 73.14, 83.49, 75.41), "coco-lt": (53.15, 51.61, 57.17, 49.21)},
    "r-only": {"voc-lt": (78.36, 71.72, 83.58, 79.41), "coco-lt": (52.76, 48.67, 56.87, 50.94)},
    "both": {"voc-lt": (79.42, 73.98, 84.67, 79.56), "coco-lt": (54.71, 51.85, 58.62, 52.06)},
    "consistency": {
        "voc-lt": (81.22, 75.42, 85.50, 82.37),
        "coco-lt": (56.62, 54.30, 60.27, 53.86),
    },
    "ltml": {"voc-lt": (81.44, 75.68, 85.53, 82.69), "coco-lt": (56.90, 54.13, 60.59, 54.47)},
    "ltml-flip": {
        "voc-lt": (81.79, 76.04, 85.92, 83.01),
        "coco-lt": (57.28, 54.54, 61.10, 54.64),
    },
    "erm": {"voc-lt": (70.86, 68.91, 80.20, 65.31), "coco-lt": (41.27, 48.48, 49.06, 24.25)},
    "db-focal": {
        "voc-lt": (78.94, 73.22, 84.18, 79.30),
        "coco-lt": (53.55, 51.13, 57.05, 51.06),
    },
}

# The paper's ablation rows, its baselines and two controls, each a set of flags.
_LTML_BASE = {"branches": "both", "cls_loss": "weighted", "consistency": False, "flip_test": False}
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "u-only": ("uniform branch only", {**_LTML_BASE, "branches": "u"}),
    "r-only": ("re-balanced branch only", {**_LTML_BASE, "branches": "r"}),
    "both": ("both branches", _LTML_BASE),
    "consistency": ("both + logit consistency", {**_LTML_BASE, "consistency": True}),
    "ltml": (
        "+ logit compensation (full LTML)",
        {**_LTML_BASE, "consistency": True, "cls_loss": "compensated"},
    ),
    "ltml-flip": (
        "full LTML + flip test",
        {**_LTML_BASE, "consistency": True, "cls_loss": "compensated", "flip_test": True},
    ),
    "erm": ("ERM (uniform, BCE)", {**_LTML_BASE, "branches": "u", "cls_loss": "bce"}),
    "rs": ("RS (class-aware, BCE)", {**_LTML_BASE, "branches": "r", "cls_loss": "bce"}),
    "db-focal": (
        "DB-Focal (class-aware)",
        {**_LTML_BASE, "branches": "r", "cls_loss": "db-focal"},
    ),
    "u-only-2x": (
        "control: uniform only, batch x2",
        {**_LTML_BASE, "branches": "u", "batch_multiplier": 2},
    ),
    "mixed": (
        "control: one branch, mixed U+R batch",
        {**_LTML_BASE, "branches": "mixed", "cls_loss": "compensated"},
    ),
    "asl": ("ASL (uniform)", {**_LTML_BASE, "branches": "u", "cls_loss": "asl"}),
    "comic": (
        "COMIC without the head-tail balance stage (RLC + MFM, uniform)",
        {**_LTML_BASE, "branches": "u", "cls_loss": "comic"},
    ),
}

# Deferred re-balancing (Cao et al. 2019; Zhang et al. 2021): ERM until the switch epoch.
_ERM = ROWS["erm"][1]
ROWS["drw"] = ("DRW (uniform, BCE re-weighted late)", {**_ERM, "deferred": "reweight"})
ROWS["drs"] = ("DRS (uniform, class-aware late)", {**_ERM, "deferred": "resample"})

# Input mixup (Zhang et al. 2018) with lambda uniform (alpha 1), and the Bag of Tricks' best
# long-tail recipe (Zhang et al. 2021) in multi-label form: mixup, class-aware sampling from the
# first lr step (DRS) still mixed, and the last of the 8 epochs a fine-tune without mixup. The
# stop is an absolute epoch, so that resuming with more --epochs keeps the schedule of the start.
ROWS["mixup"] = ("ERM + input mixup (alpha 1)", {**_ERM, "mixup": 1.0})
ROWS["bot"] = (
    "Bag of Tricks: mixup, DRS with mixup, last epoch unmixed",
    {**_ERM, "deferred": "resample", "mixup": 1.0, "mixup_stop": 7},
)

# Decoupled rows (Kang et al. 2020): stage 2 on the frozen features of a stage-1 row, with 10 %
# of the training images held out (for both stages) to choose tau.
STAGE1_ROW = {"crt": "erm", "ncm": "erm", "tau-norm": "erm", "lws": "erm", "logit-adjust": "erm"}
STAGE1_ROW["ltml-crt"] = "ltml"
_DECOUPLED = {
    "crt": "cRT: ERM features, classifier re-trained class-aware",
    "ncm": "NCM: ERM features, nearest class mean",
    "tau-norm": "tau-norm: ERM classifier, each weight row divided by its norm to the power tau",
    "lws": "LWS: ERM classifier, learnt per-class scale",
    "logit-adjust": "logit adjustment: ERM logits - tau log-odds prior",
    "ltml-crt": "cRT on LTML's uniform-branch features",
}
for _row, _text in _DECOUPLED.items():
    _method = "crt" if _row == "ltml-crt" else _row
    ROWS[_row] = (
        _text,
        {**ROWS[STAGE1_ROW[_row]][1], "stage2": _method, "val_fraction": 0.1},
    )
# For a sigmoid head a positive scale never changes a decision at logit 0: tau-norm without its
# bias makes tau irrelevant to decisions, LWS without an offset changes none. The rows use the
# forms that can move thresholded metrics (flags --no-tau-bias / --no-lws-bias for the originals).
ROWS["tau-norm"][1]["tau_bias"] = True
ROWS["lws"][1]["lws_bias"] = True

# The demo trains a small ResNet from scratch on 32x32 mosaics, 1-2 min a row on 2 CPU cores:
# no pretrained weights, so nothing is frozen and BatchNorm trains.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "demo": {
        "arch": "resnet18",
        "weights": "none",
        "image_size": 32,
        "hflip": 0.0,  # a mirrored digit is another glyph
        "guard": "tied",  # the paper's free compensation collapses here (see ../README.md)
        "freeze_stem": False,
        "bn_eval": False,
        "epochs": 8,
        "batch_size": 32,
        "lr": 0.05,
        "warmup_iters": 20,
        "lr_steps": (6,),
        "workers": 0,
        "seed": 0,
        # stage 2 on ~1,000 images: batch 128 (8 steps an epoch) with the recipe's lr scaled
        "stage2_batch_size": 128,
        "stage2_lr": 0.05,
    },
    "voc-lt": {},
    "coco-lt": {},
    "csv": {},
}


def _int_or_rule(text: str) -> str:
    if text in ("db", "uniform") or text.isdigit():
        return text
    raise argparse.ArgumentTypeError(f"expected 'db', 'uniform' or a number of draws, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line flags; every default is None so that presets can be layered."""
    d = Config()
    p = argparse.ArgumentParser(
        description="Train and evaluate LTML (Guo & Wang, CVPR 2021), its ablation rows and "
        "baselines on VOC-LT, COCO-LT, the embedded demo dataset or your own table (csv). "
        "[protocol: X] is the protocol's default (docs/guides/reproduce.md); --dataset demo and "
        "the --row presets change some (see config.py).",
        argument_default=None,
    )

    def add(group: Any, flag: str, help: str, **kw: Any) -> None:
        name = flag.lstrip("-").replace("-", "_")
        default = getattr(d, name)
        help = f"{help} [protocol: {default}]"
        group.add_argument(flag, help=help, default=None, **kw)

    g = p.add_argument_group("data")
    add(g, "--dataset", "dataset", choices=DATASETS)
    add(
        g,
        "--data-root",
        "folder holding VOCdevkit/ (VOC) or train2017/ val2017/ annotations/ (COCO)",
        type=Path,
    )
    add(
        g,
        "--train-list",
        "official LT image list [default: <data-root>/VOCdevkit/longtail2012/"
        "img_id.txt or <data-root>/longtail2017/img_id.pkl]",
        type=Path,
    )
    add(
        g,
        "--download-lists",
        "fetch missing LT lists from the DB-loss repository",
        action=argparse.BooleanOptionalAction,
    )
    add(g, "--image-size", "input side in pixels", type=int)
    add(g, "--hflip", "horizontal flip probability in training", type=float)
    add(
        g,
        "--val-fraction",
        "hold out this fraction of the training images for validation (csv: stratified)",
        type=float,
    )
    add(g, "--train-csv", "csv: table of training images and labels (CSV / TSV)", type=Path)
    add(g, "--test-csv", "csv: table of test images (or split one off: --test-fraction)", type=Path)
    add(g, "--image-root", "csv: folder the tables' image paths are relative to", type=Path)
    add(
        g,
        "--test-fraction",
        "csv: hold out this fraction of --train-csv as the test set (stratified)",
        type=float,
    )
    add(g, "--image-column", "csv: column of image paths [default: the first]")
    add(g, "--tags-column", "csv: column of 'cat|dog' tags [default: 'tags' if present]")
    add(g, "--demo-max-count", "demo: images of the most frequent digit", type=int)
    add(g, "--demo-test-size", "demo: test images", type=int)
    add(
        g,
        "--missing-rate",
        "hide this fraction of the training labels (-1, seeded; test labels stay complete)",
        type=float,
    )
    add(
        g,
        "--missing-scheme",
        "which labels are hidden (ltml.data.drop_labels)",
        choices=get_args(MissingScheme),
    )

    g = p.add_argument_group("model")
    add(g, "--arch", "torchvision ResNet", choices=ARCHS)
    add(g, "--weights", "ImageNet weights (V1 = the published numbers)", choices=WEIGHTS)
    add(
        g,
        "--stem-pool",
        "keep the stem's max-pool (drop it for small images)",
        action=argparse.BooleanOptionalAction,
    )
    add(
        g,
        "--freeze-stem",
        "freeze conv1 + layer1 (DB recipe)",
        action=argparse.BooleanOptionalAction,
    )
    add(g, "--bn-eval", "BatchNorm in eval mode (DB recipe)", action=argparse.BooleanOptionalAction)

    g = p.add_argument_group("method (a --row preset sets these; flags override)")
    add(g, "--row", "paper table row / baseline / control preset", choices=tuple(ROWS))
    add(
        g,
        "--branches",
        "branches trained: U on uniform, R on re-balanced, both, or one "
        "branch on a mixed U+R batch",
        choices=get_args(Branches),
    )
    add(
        g,
        "--cls-loss",
        "classification loss: BCE, omega-weighted BCE, + learnable logit "
        "compensation (Eq. 2), DB-Focal, ASL, COMIC's MFM + RLC",
        choices=get_args(ClsLoss),
    )
    add(
        g,
        "--unknown",
        "unknown (-1) training labels: ignored by the loss, or counted as negatives",
        choices=get_args(Unknown),
    )
    add(g, "--rlc-weight", "comic: weight of the label corrector's loss", type=float)
    add(
        g,
        "--loss-args",
        "hyper-parameters of the db-focal / asl loss, e.g. gamma=0 neg_scale=1",
        nargs="+",
        metavar="KEY=VALUE",
    )
    add(g, "--guard", "LogitCompensatedBCE guard", choices=get_args(Guard))
    add(g, "--consistency", "cross-branch consistency term", action=argparse.BooleanOptionalAction)
    add(g, "--consistency-weight", "lambda of Eq. 1", type=float)
    add(g, "--consistency-space", "compare probabilities or logits", choices=get_args(ScoreSpace))
    add(
        g,
        "--consistency-detach",
        "stop the gradient through one side",
        choices=get_args(Detach),
    )
    add(
        g,
        "--flip-test",
        "average with the horizontally flipped view at test time",
        action=argparse.BooleanOptionalAction,
    )
    add(
        g,
        "--predict",
        "average the branches' probabilities or logits",
        choices=get_args(ScoreSpace),
    )

    g = p.add_argument_group("sampling and schedule")
    add(
        g,
        "--sampler-mode",
        "class-aware sampler: DB-loss class cycle or i.i.d. draws",
        choices=get_args(SamplerMode),
    )
    add(g, "--sampler-power", "class probability ~ n_k ** power (mode random)", type=float)
    add(
        g,
        "--epoch-length",
        "draws per stream per epoch: db = max_k n_k * C / 4, uniform = N, or a number",
        type=_int_or_rule,
    )
    add(g, "--iters-per-epoch", "override the iterations per epoch", type=int)
    add(g, "--batch-size", "images per stream per step and process", type=int)
    add(g, "--batch-multiplier", "scale the batch of single-stream rows", type=int)
    add(g, "--epochs", "epochs", type=int)
    add(g, "--lr", "SGD learning rate", type=float)
    add(g, "--momentum", "SGD momentum", type=float)
    add(g, "--weight-decay", "SGD weight decay", type=float)
    add(g, "--warmup-iters", "linear warm-up iterations", type=int)
    add(g, "--warmup-ratio", "warm-up starts at lr * ratio", type=float)
    add(g, "--lr-steps", "epochs at which lr *= lr-gamma", type=int, nargs="*")
    add(g, "--lr-gamma", "lr decay factor", type=float)
    add(g, "--grad-clip", "gradient norm clip (0 = off)", type=float)
    add(g, "--seed", "seed of model init, samplers and augmentation", type=int)

    g = p.add_argument_group("deferred re-balancing (rows drw, drs)")
    add(
        g,
        "--deferred",
        "switch a uniform BCE row to class-balanced weights (reweight) or class-aware "
        "sampling (resample) at --switch-epoch",
        choices=get_args(Deferred),
    )
    add(g, "--switch-epoch", "first re-balanced epoch (0-based) [the first --lr-steps]", type=int)

    g = p.add_argument_group("mixup (any one-stage row)")
    add(g, "--mixup", "mix every training stream with lambda ~ Beta(a, a); 0 = off", type=float)
    add(g, "--mix-method", "blend whole images or paste a box", choices=get_args(MixMethod))
    add(
        g,
        "--mixup-stop",
        "first epoch (0-based) trained without mixing [never]",
        type=int,
    )

    g = p.add_argument_group(
        "decoupled stage 2 (rows crt, ncm, tau-norm, lws, logit-adjust, ltml-crt)"
    )
    add(
        g,
        "--stage2",
        "what stage 2 fits on the frozen stage-1 features",
        choices=get_args(Stage2),
    )
    add(g, "--stage1", "stage-1 checkpoint (last.pt) to load instead of training it", type=Path)
    add(
        g,
        "--stage2-branch",
        "features of this branch of a two-branch stage 1",
        choices=get_args(Branch),
    )
    add(g, "--stage2-epochs", "cRT / LWS epochs", type=int)
    add(g, "--stage2-batch-size", "cRT / LWS batch", type=int)
    add(g, "--stage2-lr", "cRT / LWS learning rate (cosine to 0)", type=float)
    add(g, "--stage2-weight-decay", "cRT / LWS weight decay", type=float)
    add(g, "--tau", "tau of tau-norm / logit-adjust [searched on the validation split]", type=float)
    add(g, "--tau-bias", "tau-norm keeps the bias", action=argparse.BooleanOptionalAction)
    add(g, "--lws-bias", "LWS learns a per-class offset", action=argparse.BooleanOptionalAction)

    g = p.add_argument_group("machinery")
    add(g, "--device", "auto = CUDA when available", choices=get_args(Device))
    add(
        g,
        "--amp",
        "autocast: auto = bf16 (or fp16 + GradScaler) on CUDA, off on CPU",
        choices=get_args(Amp),
    )
    add(
        g,
        "--channels-last",
        "channels_last memory format (CUDA)",
        action=argparse.BooleanOptionalAction,
    )
    add(g, "--workers", "data loader worker processes", type=int)
    add(g, "--threads", "CPU threads of torch (1 is fastest on a busy machine)", type=int)
    add(g, "--output", "output folder [default: runs/<dataset>-<row>-seed<seed>]", type=Path)
    add(g, "--resume", "checkpoint to resume from, or 'auto' = <output>/last.pt")
    add(
        g,
        "--eval-every-epoch",
        "evaluate on the validation split after each epoch",
        action=argparse.BooleanOptionalAction,
    )
    add(
        g,
        "--fit-thresholds",
        "fit per-class F1 thresholds on the validation split and report the test's CF1 / OF1 "
        "with them (default: logit 0)",
        action=argparse.BooleanOptionalAction,
    )
    add(g, "--plot", "write the per-class AP plot", action=argparse.BooleanOptionalAction)
    add(g, "--progress", "progress bar", action=argparse.BooleanOptionalAction)
    add(
        g,
        "--quiet",
        "print no configuration nor results table",
        action=argparse.BooleanOptionalAction,
    )
    return p


def resolve(argv: list[str] | None = None, **overrides: Any) -> Config:
    """Parse ``argv`` and layer protocol < dataset defaults < row preset < flags < overrides."""
    parser = build_parser()
    args = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    args.update(overrides)
    dataset = args.get("dataset", Config.dataset)
    row = args.get("row", Config.row)
    values: dict[str, Any] = {**DATASET_DEFAULTS[dataset], **ROWS[row][1], **args}
    if "lr_steps" in values:
        values["lr_steps"] = tuple(values["lr_steps"])
    cfg = Config(**values)
    _check(cfg, parser)
    return cfg


def loss_args(cfg: Config) -> dict[str, float]:
    """``--loss-args`` as keyword arguments: ``KEY=VALUE`` pairs with numeric values."""
    pairs = [arg.partition("=") for arg in cfg.loss_args]
    return {key: float(value) for key, _, value in pairs}


def _check(cfg: Config, parser: argparse.ArgumentParser) -> None:
    """Reject inconsistent settings with a message that names the flag."""
    if cfg.loss_args:
        if cfg.cls_loss not in ("db-focal", "asl") or cfg.deferred != "none":
            parser.error("--loss-args applies to --cls-loss db-focal or asl")
        for arg in cfg.loss_args:
            key, eq, value = arg.partition("=")
            try:
                float(value)
            except ValueError:
                parser.error(f"--loss-args takes KEY=VALUE pairs of numbers, got {arg!r}")
            if not (key.isidentifier() and eq):
                parser.error(f"--loss-args takes KEY=VALUE pairs of numbers, got {arg!r}")
    if cfg.dataset == "csv":
        _check_csv(cfg, parser)
    elif cfg.test_fraction:
        parser.error("--test-fraction applies to --dataset csv")
    if cfg.dataset in ("voc-lt", "coco-lt"):
        if cfg.data_root is None:
            parser.error(f"--data-root is required for --dataset {cfg.dataset}")
        if not cfg.data_root.is_dir():
            parser.error(f"--data-root {cfg.data_root} is not a directory")
    if cfg.consistency and cfg.branches != "both":
        parser.error(
            f"--consistency needs --branches both (got {cfg.branches}); add --no-consistency"
        )
    if cfg.batch_multiplier != 1 and cfg.branches not in ("u", "r"):
        parser.error("--batch-multiplier applies to single-stream rows (--branches u or r)")
    if cfg.eval_every_epoch and cfg.val_fraction <= 0:
        parser.error("--eval-every-epoch evaluates on a validation split: set --val-fraction")
    if not 0 <= cfg.missing_rate < 1:
        parser.error(f"--missing-rate must be in [0, 1), got {cfg.missing_rate}")
    if cfg.fit_thresholds and cfg.val_fraction <= 0:
        parser.error("--fit-thresholds fits on a validation split: set --val-fraction")
    if not 0 <= cfg.val_fraction < 1:
        parser.error(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.stage2 in ("tau-norm", "logit-adjust") and cfg.tau is None and cfg.val_fraction <= 0:
        parser.error(
            f"--stage2 {cfg.stage2} searches tau on a validation split: set --val-fraction or --tau"
        )
    if cfg.stage1 is not None and cfg.stage2 == "none":
        parser.error("--stage1 loads the stage-1 model of a decoupled row: set --stage2")
    if cfg.deferred != "none" and (cfg.branches != "u" or cfg.cls_loss != "bce"):
        parser.error("--deferred switches a uniform BCE row: it needs --branches u --cls-loss bce")
    if cfg.mixup < 0:
        parser.error(f"--mixup must be >= 0 (0 = off), got {cfg.mixup}")
    if cfg.mixup > 0 and cfg.cls_loss in ("db-focal", "comic"):
        parser.error(
            f"--mixup makes soft targets, which --cls-loss {cfg.cls_loss} rejects: its "
            "definition needs 0 / 1 labels"
        )
    if cfg.mixup_stop is not None and cfg.mixup == 0:
        parser.error("--mixup-stop ends mixing: set --mixup")
    if cfg.mixup_stop is not None and cfg.mixup_stop < 0:
        parser.error(f"--mixup-stop must be an epoch >= 0, got {cfg.mixup_stop}")
    for name in ("batch_size", "batch_multiplier", "epochs", "image_size"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")


def switch_epoch(cfg: Config) -> int:
    """First re-balanced epoch of a deferred row: ``--switch-epoch``, else the first lr step."""
    if cfg.switch_epoch is not None:
        return cfg.switch_epoch
    return min(cfg.lr_steps) if cfg.lr_steps else cfg.epochs * 4 // 5


def mixes(cfg: Config, epoch: int) -> bool:
    """Whether ``epoch`` trains on mixed batches: ``--mixup`` on and before ``--mixup-stop``."""
    return cfg.mixup > 0 and (cfg.mixup_stop is None or epoch < cfg.mixup_stop)


def _check_csv(cfg: Config, parser: argparse.ArgumentParser) -> None:
    for flag, path in (("--train-csv", cfg.train_csv), ("--image-root", cfg.image_root)):
        if path is None:
            parser.error(f"{flag} is required for --dataset csv")
    if (cfg.test_csv is None) == (cfg.test_fraction == 0):
        parser.error("--dataset csv needs a test set: --test-csv or --test-fraction (not both)")
    if not 0 <= cfg.test_fraction < 1 or cfg.val_fraction + cfg.test_fraction >= 1:
        parser.error(
            f"--val-fraction + --test-fraction must be below 1, got {cfg.val_fraction} + "
            f"{cfg.test_fraction}"
        )


def describe(cfg: Config) -> str:
    """Format the resolved configuration, one ``name = value`` per line, for the start of a run."""
    lines = [f"row: {cfg.row} ({ROWS[cfg.row][0]})"]
    for f in dataclasses.fields(cfg):
        if f.name != "row":
            lines.append(f"  {f.name:<20} = {getattr(cfg, f.name)}")
    return "\n".join(lines)
