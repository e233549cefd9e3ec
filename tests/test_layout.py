"""The shape of the house: module sizes, privacy across modules, and the public names of 0.2.

These read the source with :mod:`ast` (nothing is run), so a move that breaks a rule fails here
with the file and line, before any behaviour test.
"""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ltml"
HARNESS = ROOT / "examples"
MAX_LINES = 500

# Every public name of version 0.2, by the module users imported it from. A move keeps each of
# them importable there (a re-export, or a deprecation that names the new home).
PUBLIC_0_2: dict[str, tuple[str, ...]] = {
    "ltml": (
        "AsymmetricLoss", "BCE", "ClassAwareSampler", "ClassBalancedFocalLoss",
        "CrossBranchConsistency", "DeferredClassAwareSampler", "DeferredReweightedBCE",
        "DistributionBalancedLoss", "DualBranchHead", "DualBranchOutput", "FocalLoss", "LTMLLoss",
        "LTMLLossOutput", "LearnableWeightScaling", "LogitCompensatedBCE", "MAPResult",
        "MixedBatch", "MultiFocalModifierLoss", "NearestClassMean", "PairedDataset",
        "PairedSampler", "ReflectiveLabelCorrector", "ThresholdedMetrics", "ThresholdedSummary",
        "WeightedBCE", "__version__", "average_precision", "backbones", "class_counts",
        "class_groups", "class_weights", "data", "decoupling", "extract_features",
        "fit_thresholds", "functional", "heads", "learn_weight_scaling", "logit_adjust", "losses",
        "mAPMeter", "mix_batch", "mixup", "paired_forward", "resnet_dual_branch",
        "retrain_classifier", "samplers", "schedules", "search_tau", "split_dual_branch",
        "tau_normalize", "thresholded_metrics",
    ),
    "ltml.backbones": ("split_dual_branch",),
    "ltml.data": (
        "COCOMultiLabel", "DemoMosaics", "LabelReport", "LabelTable", "PLTSubset", "PLT_PROFILES",
        "TableMultiLabel", "VOCMultiLabel", "VOC_CLASSES", "class_counts", "class_groups",
        "cooccurrence", "cooccurrence_rank", "describe_labels", "drop_labels", "make_demo",
        "make_long_tailed", "make_plt", "pareto_quotas", "read_image_list", "read_label_table",
        "split_deviation", "stratified_split",
    ),
    "ltml.data.coco": ("COCOMultiLabel",),
    "ltml.data.demo": ("DemoMosaics", "make_demo"),
    "ltml.data.describe": ("main",),
    "ltml.data.image_list": ("read_image_list",),
    "ltml.data.longtail": ("cooccurrence_rank", "make_long_tailed", "pareto_quotas"),
    "ltml.data.partial": ("PLTSubset", "PLT_PROFILES", "drop_labels", "make_plt"),
    "ltml.data.report": ("LabelReport", "describe_labels"),
    "ltml.data.split": ("split_deviation", "stratified_split"),
    "ltml.data.table": ("LabelTable", "TableMultiLabel", "read_label_table"),
    "ltml.data.voc": ("VOCMultiLabel",),
    "ltml.decoupling": (
        "LearnableWeightScaling", "NearestClassMean", "extract_features", "learn_weight_scaling",
        "logit_adjust", "retrain_classifier", "search_tau", "tau_normalize",
    ),
    "ltml.functional": (
        "EmptyClass", "Reduction", "ThresholdedMetrics", "ThresholdedSummary", "Unknown",
        "ZeroDivision", "asymmetric_loss", "average_precision", "bce", "cross_branch_consistency",
        "distribution_balanced_loss", "fit_thresholds", "focal_loss", "logit_compensated_bce",
        "multi_focal_modifier_loss", "reflective_label_correction", "thresholded_metrics",
    ),
    "ltml.functional.losses": (
        "Reduction", "Unknown", "asymmetric_loss", "bce", "cross_branch_consistency",
        "distribution_balanced_loss", "focal_loss", "logit_compensated_bce",
        "multi_focal_modifier_loss", "reflective_label_correction",
    ),
    "ltml.functional.metrics": (
        "EmptyClass", "ThresholdedMetrics", "ThresholdedSummary", "ZeroDivision",
        "average_precision", "fit_thresholds", "thresholded_metrics",
    ),
    "ltml.heads": ("DualBranchHead", "DualBranchOutput", "paired_forward", "resnet_dual_branch"),
    "ltml.losses": (
        "AsymmetricLoss", "BCE", "ClassBalancedFocalLoss", "CorrectorOutput",
        "CrossBranchConsistency", "DistributionBalancedLoss", "FocalLoss", "LTMLLoss",
        "LTMLLossOutput", "LogitCompensatedBCE", "MultiFocalModifierLoss",
        "ReflectiveLabelCorrector", "WeightedBCE",
    ),
    "ltml.metrics": ("MAPResult", "mAPMeter"),
    "ltml.mixup": ("MixedBatch", "mix_batch"),
    "ltml.samplers": ("ClassAwareSampler", "PairedDataset", "PairedSampler"),
    "ltml.schedules": ("DeferredClassAwareSampler", "DeferredReweightedBCE"),
}  # fmt: skip

# Old homes that only re-export: no function or class is defined in them.
RE_EXPORTS_ONLY = ("functional/__init__.py", "functional/losses.py", "functional/metrics.py")


@pytest.mark.parametrize(
    ("module", "name"), [(m, n) for m, names in PUBLIC_0_2.items() for n in names]
)
def test_public_names_of_0_2_import_from_where_they_did(module: str, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a module-level name moves without a warning
        assert getattr(importlib.import_module(module), name) is not None


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_private_module(dotted: str) -> bool:
    """A module is private when it or a package above it is (``ltml._validation.arrays``)."""
    return any(_is_private(part) for part in dotted.split("."))


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _crossings(path: Path, root: Path, package: str) -> list[str]:
    """``file:line: name from module`` for each private name taken from a non-private module."""
    module = _module_name(path, root, package)
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> the module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(node, module, path.name == "__init__.py")
            for alias in node.names:
                if _is_private(alias.name) and not _is_private_module(source):
                    found.append(f"{path}:{node.lineno}: {alias.name} from {source}")
                aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _is_private(node.attr)
            and not _is_private_module(aliases[node.value.id])
            and aliases[node.value.id].startswith((package, "ltml", "ltml_example"))
        ):
            found.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_takes_a_private_name_from_another_public_module() -> None:
    crossings = [c for p in _sources(SRC) for c in _crossings(p, SRC, "ltml")]
    assert not crossings, "private names used across modules:\n" + "\n".join(crossings)


def test_the_examples_take_no_private_name() -> None:
    crossings = [c for p in _sources(HARNESS) for c in _crossings(p, HARNESS, "examples")]
    assert not crossings, "private names used across modules:\n" + "\n".join(crossings)


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in _sources(SRC)}
    too_big = {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > MAX_LINES}
    assert not too_big, f"modules over {MAX_LINES} lines: {too_big}"


@pytest.mark.parametrize("relative", RE_EXPORTS_ONLY)
def test_old_homes_only_re_export(relative: str) -> None:
    tree = ast.parse((SRC / relative).read_text())
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    assert not defined, f"{relative} defines {defined}: it should only re-export"
