"""The ``--row`` presets (the paper's rows, baselines, controls), dataset defaults, paper numbers.

Plain data: each preset is the settings it gives :class:`~ltml_example.config.Config`'s fields,
written out in full; :func:`ltml_example.flags.resolve` layers them (the protocol < the dataset's
defaults < the row < the flags given).
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Row(NamedTuple):
    """A ``--row`` preset: what it trains, in words, and the settings it gives."""

    description: str
    settings: dict[str, Any]


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

# The paper's ablation rows (one branch, both, + consistency, + compensation, + flip test), its
# baselines, two controls, and the rows of the other methods, each a set of settings.
_LTML_BASE = {"branches": "both", "cls_loss": "weighted", "consistency": False, "flip_test": False}
_ERM = {**_LTML_BASE, "branches": "u", "cls_loss": "bce"}
# Decoupled rows (Kang et al. 2020): stage 2 on the frozen features of a stage-1 row, with 10 %
# of the training images held out (for both stages) to choose tau.
_ERM_STAGE1 = {**_ERM, "val_fraction": 0.1}
_LTML_STAGE1 = {**_LTML_BASE, "consistency": True, "cls_loss": "compensated", "val_fraction": 0.1}
ROWS: dict[str, Row] = {
    "u-only": Row("uniform branch only", {**_LTML_BASE, "branches": "u"}),
    "r-only": Row("re-balanced branch only", {**_LTML_BASE, "branches": "r"}),
    "both": Row("both branches", _LTML_BASE),
    "consistency": Row("both + logit consistency", {**_LTML_BASE, "consistency": True}),
    "ltml": Row(
        "+ logit compensation (full LTML)",
        {**_LTML_BASE, "consistency": True, "cls_loss": "compensated"},
    ),
    "ltml-flip": Row(
        "full LTML + flip test",
        {**_LTML_BASE, "consistency": True, "cls_loss": "compensated", "flip_test": True},
    ),
    "erm": Row("ERM (uniform, BCE)", _ERM),
    "rs": Row("RS (class-aware, BCE)", {**_LTML_BASE, "branches": "r", "cls_loss": "bce"}),
    "balanced": Row(
        "balanced sampling (image probabilities fitted to equal class shares, BCE)",
        {**_LTML_BASE, "branches": "r", "cls_loss": "bce", "sampler_mode": "balanced"},
    ),
    "db-focal": Row(
        "DB-Focal (class-aware)", {**_LTML_BASE, "branches": "r", "cls_loss": "db-focal"}
    ),
    "u-only-2x": Row(
        "control: uniform only, batch x2", {**_LTML_BASE, "branches": "u", "batch_multiplier": 2}
    ),
    "mixed": Row(
        "control: one branch, mixed U+R batch",
        {**_LTML_BASE, "branches": "mixed", "cls_loss": "compensated"},
    ),
    "asl": Row("ASL (uniform)", {**_LTML_BASE, "branches": "u", "cls_loss": "asl"}),
    "comic-2stage": Row(
        "COMIC without the head-tail balance stage (RLC + MFM, uniform)",
        {**_LTML_BASE, "branches": "u", "cls_loss": "comic"},
    ),
    # --- the field since 2021: repeat-factor sampling, Hill / SPLC, COMIC's three stages ---
    "rfs": Row(
        "repeat-factor sampling (LVIS, t = 0.1), BCE",
        {**_LTML_BASE, "branches": "r", "cls_loss": "bce", "sampler_mode": "repeat-factor"},
    ),
    # Hill and SPLC are made for missing labels read as negatives: their rows say so
    "hill": Row(
        "Hill loss (uniform; unknown labels as negatives)",
        {**_LTML_BASE, "branches": "u", "cls_loss": "hill", "unknown": "negative"},
    ),
    "splc": Row(
        "SPLC (uniform; unknown labels as negatives)",
        {**_LTML_BASE, "branches": "u", "cls_loss": "splc", "unknown": "negative"},
    ),
    "comic": Row(
        "COMIC, all three stages: RLC + MFM on the U (head) and R (tail) experts, the "
        "head-tail balanced classifier predicts",
        {**_LTML_BASE, "cls_loss": "comic", "comic_balance": True},
    ),
    # Deferred re-balancing (Cao et al. 2019; Zhang et al. 2021): ERM until the switch epoch.
    "drw": Row("DRW (uniform, BCE re-weighted late)", {**_ERM, "deferred": "reweight"}),
    "drs": Row("DRS (uniform, class-aware late)", {**_ERM, "deferred": "resample"}),
    # Input mixup (Zhang et al. 2018) with lambda uniform (alpha 1), and the Bag of Tricks' best
    # long-tail recipe (Zhang et al. 2021) in multi-label form: mixup, class-aware sampling from
    # the first lr step (DRS) still mixed, and the last of the 8 epochs a fine-tune without
    # mixup. The stop is an absolute epoch, so that resuming with more --epochs keeps the
    # schedule of the start.
    "mixup": Row("ERM + input mixup (alpha 1)", {**_ERM, "mixup": 1.0}),
    "bot": Row(
        "Bag of Tricks: mixup, DRS with mixup, last epoch unmixed",
        {**_ERM, "deferred": "resample", "mixup": 1.0, "mixup_stop": 7},
    ),
    # For a sigmoid head a positive scale never changes a decision at logit 0: tau-norm without
    # its bias makes tau irrelevant to decisions, LWS without an offset changes none. The rows
    # use the forms that can move thresholded metrics (--no-tau-bias / --no-lws-bias for the
    # originals).
    "crt": Row(
        "cRT: ERM features, classifier re-trained class-aware", {**_ERM_STAGE1, "stage2": "crt"}
    ),
    "ncm": Row("NCM: ERM features, nearest class mean", {**_ERM_STAGE1, "stage2": "ncm"}),
    "tau-norm": Row(
        "tau-norm: ERM classifier, each weight row divided by its norm to the power tau",
        {**_ERM_STAGE1, "stage2": "tau-norm", "tau_bias": True},
    ),
    "lws": Row(
        "LWS: ERM classifier, learnt per-class scale",
        {**_ERM_STAGE1, "stage2": "lws", "lws_bias": True},
    ),
    "logit-adjust": Row(
        "logit adjustment: ERM logits - tau log-odds prior",
        {**_ERM_STAGE1, "stage2": "logit-adjust"},
    ),
    "ltml-crt": Row("cRT on LTML's uniform-branch features", {**_LTML_STAGE1, "stage2": "crt"}),
}
# Attention heads (issue 25): ERM with the head on layer4 swapped, CSRA (Zhu & Wu 2021) or
# ML-Decoder (Ridnik et al. 2023), each with its authors' defaults.
ROWS |= {
    "csra": Row("CSRA head (uniform, BCE)", {**_ERM, "head": "csra"}),
    "ml-decoder": Row("ML-Decoder head (uniform, BCE)", {**_ERM, "head": "ml-decoder"}),
}
# The stage-1 row of each decoupled row: the row its stage 1 trains.
STAGE1_ROW = {
    "crt": "erm",
    "ncm": "erm",
    "tau-norm": "erm",
    "lws": "erm",
    "logit-adjust": "erm",
    "ltml-crt": "ltml",
}

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
