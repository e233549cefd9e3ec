"""The command line of train.py, and its resolution into one :class:`~ltml_example.config.Config`.

Resolution order (later wins): the benchmark protocol (:class:`Config`'s defaults) < the dataset's
defaults (the demo trains a small network from scratch) < the ``--row`` preset < every flag given
on the command line. Every flag's default is None, so that a flag given wins and one not given
leaves the layers below it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

from .config import (
    NEEDS_PRETRAINED,
    Amp,
    Arch,
    Branch,
    Branches,
    ClsLoss,
    Config,
    DatasetName,
    Deferred,
    Detach,
    Device,
    Guard,
    Head,
    MissingScheme,
    MixMethod,
    Pipeline,
    SamplerMode,
    ScoreSpace,
    Stage2,
    Unknown,
    Weights,
)
from .presets import DATASET_DEFAULTS, ROWS


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
        "the --row presets change some (see presets.py).",
        argument_default=None,
    )

    def add(group: Any, flag: str, help: str, **kw: Any) -> None:
        name = flag.lstrip("-").replace("-", "_")
        default = getattr(d, name)
        help = f"{help} [protocol: {default}]"
        group.add_argument(flag, help=help, default=None, **kw)

    g = p.add_argument_group("data")
    add(g, "--dataset", "dataset", choices=get_args(DatasetName))
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
    add(g, "--arch", "torchvision ResNet", choices=get_args(Arch))
    add(g, "--weights", "ImageNet weights (V1 = the published numbers)", choices=get_args(Weights))
    add(
        g,
        "--stem-pool",
        "keep the stem's max-pool (drop it for small images)",
        action=argparse.BooleanOptionalAction,
    )
    add(
        g,
        "--freeze-stem",
        "freeze conv1 + layer1 (DB recipe; off with --weights none unless given)",
        action=argparse.BooleanOptionalAction,
    )
    add(
        g,
        "--bn-eval",
        "BatchNorm in eval mode (DB recipe; off with --weights none unless given)",
        action=argparse.BooleanOptionalAction,
    )
    add(g, "--head", "classifier on layer4 (rows csra, ml-decoder)", choices=get_args(Head))
    add(g, "--csra-heads", "CSRA heads (their temperatures)", type=int, choices=(1, 2, 4, 6, 8))
    add(g, "--csra-lambda", "CSRA weight of the attended score", type=float)

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
        "compensation (Eq. 2), DB-Focal, ASL, COMIC's MFM + RLC, Hill, SPLC",
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
        "--comic-balance",
        "comic: add COMIC's head-tail balance stage, a third classifier that predicts",
        action=argparse.BooleanOptionalAction,
    )
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
        "re-balanced stream: DB-loss class cycle, i.i.d. class-aware draws, fitted balanced, "
        "or repeat-factor (LVIS)",
        choices=get_args(SamplerMode),
    )
    add(
        g,
        "--sampler-power",
        "class probability (random) or target share (balanced) ~ n_k ** power",
        type=float,
    )
    add(
        g,
        "--repeat-threshold",
        "repeat-factor: classes in fewer than this fraction of the images are repeated",
        type=float,
    )
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
    add(
        g,
        "--pipeline",
        "training input: uint8 = decode to uint8, crop and resize, then float (faster); "
        "float = float32 at full size first. Same augmentations [uint8]",
        choices=get_args(Pipeline),
    )
    add(
        g,
        "--cache-images",
        "decode the training images once into memory, shrunk to a shorter side of "
        "image-size * 256 / 224 (on CUDA: on the device, batches augmented there); "
        "needs --pipeline uint8",
        action=argparse.BooleanOptionalAction,
    )
    add(g, "--cache-mb", "memory budget of --cache-images, MiB [4096]", type=int)
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
    add(
        g,
        "--group-thresholds",
        "head / medium / tail limits of the reported group mAPs: tail below LOW training "
        "images, head from HIGH (ltml.class_groups); scale them with your training set",
        type=int,
        nargs=2,
        metavar=("LOW", "HIGH"),
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
    values: dict[str, Any] = {**DATASET_DEFAULTS[dataset], **ROWS[row].settings, **args}
    if values.get("weights", Config.weights) == "none":
        # The DB recipe's frozen stem and eval-mode BatchNorm keep ImageNet features and
        # statistics; without pretrained weights they would freeze random ones: off unless asked.
        for name in NEEDS_PRETRAINED:
            if name not in args:
                values[name] = False
    for name in ("lr_steps", "group_thresholds"):
        if name in values:
            values[name] = tuple(values[name])
    cfg = Config(**values)
    _check(cfg, parser)
    return cfg


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
    if cfg.stage2 != "none" and cfg.head != "linear":
        parser.error(f"--stage2 {cfg.stage2} re-balances a linear classifier: use --head linear")
    if cfg.stage1 is not None and cfg.stage2 == "none":
        parser.error("--stage1 loads the stage-1 model of a decoupled row: set --stage2")
    if cfg.deferred != "none" and (cfg.branches != "u" or cfg.cls_loss != "bce"):
        parser.error("--deferred switches a uniform BCE row: it needs --branches u --cls-loss bce")
    if cfg.deferred == "resample" and cfg.sampler_mode in ("balanced", "repeat-factor"):
        parser.error(
            f"--deferred resample draws class-aware: not --sampler-mode {cfg.sampler_mode}"
        )
    if not 0 < cfg.repeat_threshold <= 1:
        parser.error(f"--repeat-threshold must be in (0, 1], got {cfg.repeat_threshold}")
    if cfg.comic_balance and (cfg.cls_loss != "comic" or cfg.branches != "both"):
        parser.error("--comic-balance needs --cls-loss comic --branches both (its two experts)")
    if cfg.mixup < 0:
        parser.error(f"--mixup must be >= 0 (0 = off), got {cfg.mixup}")
    if cfg.mixup > 0 and cfg.cls_loss in ("db-focal", "comic", "splc"):
        parser.error(
            f"--mixup makes soft targets, which --cls-loss {cfg.cls_loss} rejects: its "
            "definition needs 0 / 1 labels"
        )
    if cfg.mixup_stop is not None and cfg.mixup == 0:
        parser.error("--mixup-stop ends mixing: set --mixup")
    if cfg.mixup_stop is not None and cfg.mixup_stop < 0:
        parser.error(f"--mixup-stop must be an epoch >= 0, got {cfg.mixup_stop}")
    low, high = cfg.group_thresholds
    if not 0 <= low <= high:
        parser.error(f"--group-thresholds needs 0 <= LOW <= HIGH, got {low} {high}")
    if cfg.cache_images and cfg.pipeline != "uint8":
        parser.error("--cache-images keeps uint8 copies: it needs --pipeline uint8")
    if cfg.cache_mb < 1:
        parser.error(f"--cache-mb must be positive, got {cfg.cache_mb}")
    for name in ("batch_size", "batch_multiplier", "epochs", "image_size"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")


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
