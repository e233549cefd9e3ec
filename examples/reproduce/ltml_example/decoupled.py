"""Decoupled rows: stage 2 (cRT, NCM, tau-norm, LWS, logit adjustment) on frozen stage-1 features.

Stage 1 is an ordinary row (``erm``, or ``ltml`` for ``ltml-crt``) trained with the same settings,
10 % of the training images held out: it is trained here (into ``<output>/stage1``) or loaded
with ``--stage1 PATH``, whose checkpoint must come from those settings. Its trunk and the chosen
branch then run once over the training, validation and test images (test transform, no
augmentation, ``ltml.extract_features``), and stage 2 works on the cached features in seconds.
Tau is chosen on the validation split by CF1, never on the test set.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

import ltml

from . import report
from .config import TRAINED_BRANCH, Branch, Config, groups_of
from .data import Data, build_data, eval_loader, transforms
from .model import Collaborative, build_model
from .presets import ROWS, STAGE1_ROW
from .runtime import Runtime, load_checkpoint, set_up

# Stage-2 methods that map each class's scores by an increasing function: every per-class AP,
# hence mAP, stays that of stage 1; only thresholded metrics (CF1, OF1) can move.
KEEPS_AP = ("tau-norm", "lws", "logit-adjust")

# The stage-2 settings, reset to their defaults in the stage-1 configuration.
_STAGE2_FIELDS = (
    "stage2",
    "stage1",
    "stage2_branch",
    "stage2_epochs",
    "stage2_batch_size",
    "stage2_lr",
    "stage2_weight_decay",
    "tau",
    "tau_bias",
    "lws_bias",
)


def stage1_config(cfg: Config, output: Path | None = None) -> Config:
    """Return the stage-1 row of a decoupled row, with the same data, model and schedule."""
    defaults = Config()
    return dataclasses.replace(
        cfg,
        row=STAGE1_ROW.get(cfg.row, cfg.row),
        output=output or cfg.out_dir() / "stage1",
        **{name: getattr(defaults, name) for name in _STAGE2_FIELDS},
    )


def thresholded(scores: Tensor, targets: Tensor) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 in % at logit >= 0 (:func:`ltml.thresholded_metrics`)."""
    metrics = ltml.thresholded_metrics(scores, targets, threshold=0.0)
    return {k: 100 * getattr(metrics, k) for k in ("CP", "CR", "CF1", "OP", "OR", "OF1")}


def _cf1(scores: Tensor, targets: Tensor) -> float:
    return thresholded(scores, targets)["CF1"]


def _unaugmented(dataset: Any, transform: Any) -> Dataset[Any]:
    """Return the same images through ``transform`` (the test one): a copy, subsets kept."""
    if isinstance(dataset, Subset):
        return Subset(_unaugmented(dataset.dataset, transform), dataset.indices)
    plain = copy.copy(dataset)
    plain.transform = transform
    return plain  # type: ignore[no-any-return]


def _stage2(
    cfg: Config, classifier: nn.Linear, feats: dict[str, tuple[Tensor, Tensor]], counts: Tensor
) -> tuple[nn.Module | None, dict[str, Any]]:
    """Fit stage 2; return the scoring module (None: logit adjustment) and what was chosen."""
    train_x, train_y = feats["train"]
    fit = dict(
        epochs=cfg.stage2_epochs,
        batch_size=cfg.stage2_batch_size,
        lr=cfg.stage2_lr,
        weight_decay=cfg.stage2_weight_decay,
        seed=cfg.seed,
    )
    if cfg.stage2 == "crt":
        return ltml.retrain_classifier(train_x, train_y, **fit), {}  # type: ignore[arg-type]
    if cfg.stage2 == "ncm":
        return ltml.NearestClassMean.fit(train_x, train_y), {}
    if cfg.stage2 == "lws":
        lws = ltml.learn_weight_scaling(classifier, train_x, train_y, bias=cfg.lws_bias, **fit)  # type: ignore[arg-type]
        return lws, {"scale": lws.scale.tolist()}
    n = len(train_y)
    if cfg.stage2 == "tau-norm":

        def scores_at(tau: float) -> Tensor:
            scores: Tensor = ltml.tau_normalize(classifier, tau, bias=cfg.tau_bias)(feats["val"][0])
            return scores
    else:

        def scores_at(tau: float) -> Tensor:
            return ltml.logit_adjust(classifier(feats["val"][0]), counts, n, tau)

    chosen: dict[str, Any] = {"tau": cfg.tau}
    if cfg.tau is None:
        tau, values = ltml.search_tau(scores_at, feats["val"][1], _cf1)
        chosen = {"tau": tau, "tau_search_val_cf1": values}
    if cfg.stage2 == "tau-norm":
        return ltml.tau_normalize(classifier, chosen["tau"], bias=cfg.tau_bias), chosen
    return None, chosen


def _cached_features(
    cfg: Config,
    model: Collaborative,
    branch: Branch,
    data: Data,
    rt: Runtime,
    path: Path,
    state: dict[str, Any],
) -> dict[str, tuple[Tensor, Tensor]]:
    """Features of the train / val / test images, computed once per stage-1 checkpoint.

    They are cached beside the checkpoint (``features-<branch>.pt``) with the checkpoint's
    configuration and epoch, and reused by every stage-2 row on the same checkpoint.
    """
    cache = path.parent / f"features-{branch}.pt"
    key = {"config": state["config"], "epoch": state["epoch"]}
    if cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved["key"] == key:
            return {k: tuple(v) for k, v in saved["features"].items()}
    test_tf = transforms(cfg, train=False)
    splits = {"train": _unaugmented(data.train, test_tf), "test": data.test}
    if data.val is not None:
        splits["val"] = data.val
    feats = {
        name: ltml.extract_features(
            model.trunk,
            eval_loader(cfg, dataset, 1, 0, rt.device.type == "cuda"),
            head=model.head,
            branch=branch,
            device=rt.device,
            amp=rt.amp_dtype is not None,
            progress=cfg.progress,
        )
        for name, dataset in splits.items()
    }
    torch.save({"key": key, "features": feats}, cache)
    return feats


@torch.no_grad()
def run_decoupled(cfg: Config, train_stage1: Callable[[Config], Any]) -> dict[str, Any]:
    """Stage 1 (``train_stage1(config)`` unless ``--stage1``), features once, stage 2, test."""
    log = print if not cfg.quiet else (lambda *a, **k: None)
    out = cfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    first = stage1_config(cfg)
    path = cfg.stage1
    if path is None:
        log(f"stage 1: training row {first.row} into {first.out_dir()}")
        with torch.enable_grad():
            train_stage1(first)
        path = first.out_dir() / "last.pt"
    state = load_checkpoint(first, Path(path), flag="--stage1" if cfg.stage1 else "stage 1")
    rt = set_up(cfg)
    torch.manual_seed(cfg.seed)
    data = build_data(cfg)
    counts = ltml.class_counts(data.train_labels)
    model = build_model(first, data.train_labels)
    model.load_state_dict(state["model"])
    model.to(rt.device)
    branch = TRAINED_BRANCH.get(first.branches, cfg.stage2_branch)
    head_branch = model.head.branch_u if branch == "u" else model.head.branch_r
    classifier = copy.deepcopy(head_branch.classifier).cpu()
    if not isinstance(classifier, nn.Linear):  # an attention head (--head) has no stage 2
        raise SystemExit(f"{cfg.row}: a decoupled stage 2 needs the linear head (--head linear)")

    t0 = time.perf_counter()
    feats = _cached_features(cfg, model, branch, data, rt, Path(path), state)
    features_s = time.perf_counter() - t0
    with torch.enable_grad():
        scorer, chosen = _stage2(cfg, classifier, feats, counts)
    test_x, test_y = feats["test"]
    before = classifier(test_x)
    if scorer is not None:
        after = scorer(test_x)
    else:
        after = ltml.logit_adjust(before, counts, len(data.train_labels), chosen["tau"])
    stage2_s = time.perf_counter() - t0 - features_s

    groups = groups_of(cfg, counts)
    results = {}
    for name, scores in (("stage1", before), ("test", after)):
        meter = ltml.mAPMeter(len(counts), groups=groups, class_names=data.classes)
        meter.update(scores, test_y)
        results[name] = meter.compute()
    measured = report.summary(results["test"])
    payload: dict[str, Any] = {
        "row": cfg.row,
        "description": ROWS[cfg.row].description,
        "config": cfg.record(),
        "stage1_checkpoint": str(path),
        "stage1_branch": branch,
        "train_images": len(data.train_labels),
        "val_images": 0 if data.val is None else len(data.val),
        "feature_seconds": features_s,
        "stage2_seconds": stage2_s,
        "chosen": chosen,
        "test": measured,
        "test_thresholded": thresholded(after, test_y),
        "test_per_class": results["test"].as_dict(),
        "stage1_test": report.summary(results["stage1"]),
        "stage1_test_thresholded": thresholded(before, test_y),
        "stage1_test_per_class": results["stage1"].as_dict(),
        # the per-class increasing maps (tau-norm, LWS, logit adjustment) must leave every AP
        "per_class_ap_unchanged": bool(torch.equal(results["stage1"].ap, results["test"].ap)),
        "classes": list(data.classes),
        "train_counts": counts.tolist(),
    }
    log(report.row_table(cfg.row, cfg.dataset, measured))
    log(
        f"stage 1 ({first.row}, branch {branch}): mAP {payload['stage1_test']['total']:.2f}; "
        f"per-class AP unchanged: {payload['per_class_ap_unchanged']}"
    )
    for name in ("stage1_test_thresholded", "test_thresholded"):
        log(f"{name}: " + "  ".join(f"{k} {v:.2f}" for k, v in payload[name].items()))
    report.write_json(out / "results.json", payload)
    if cfg.plot:
        report.plot_per_class(
            out / "per_class_ap.png",
            results["test"].as_dict()["ap"],
            counts.tolist(),
            groups,
            data.classes,
            f"{cfg.dataset}: {ROWS[cfg.row].description}",
        )
    log(f"wrote {out / 'results.json'}")
    return payload
