"""Adversarial input battery: every public callable gives the right answer or a clear error.

For each public name, ``CASES`` lists contract cases: an argument, a hypothesis strategy of values
that break that argument's contract, and a call that passes such a value. Each generated value
must raise ``ValueError`` / ``TypeError`` / ``FileNotFoundError`` *from ltml's own code*, with a
message naming the argument; an error that escapes from torch, numpy or the standard library
fails. ``ORACLES`` lists accepted-but-unusual inputs (byte order, strides, dtypes, huge integers)
whose result must equal an independent oracle's.

Adding a public callable: add one ``case(...)`` line per argument contract below, e.g.
``case(ltml.NewLoss, "gamma", BAD_REAL_NON_NEGATIVE, lambda v: ltml.NewLoss(gamma=v))``;
``test_every_public_callable_has_cases`` fails until it has one.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import json
import math
import pickle
import tempfile
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, getcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import nn
from torch.utils.data import SequentialSampler, TensorDataset

import ltml
import ltml.data as D
import ltml.functional as LF

# ------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Case:
    """Values of ``bad`` passed by ``call`` must raise an ltml error naming ``arg``."""

    arg: str
    bad: st.SearchStrategy[Any]
    call: Callable[[Any], Any]


@dataclass(frozen=True)
class Oracle:
    """For values of ``odd`` (accepted forms), ``call(v)`` must equal ``expected(v)``."""

    what: str
    odd: st.SearchStrategy[Any]
    call: Callable[[Any], Any]
    expected: Callable[[Any], Any]


CASES: dict[Any, list[Case]] = defaultdict(list)
ORACLES: dict[Any, list[Oracle]] = defaultdict(list)

# Public classes that only carry results: nothing to validate.
RESULT_TYPES = {
    ltml.losses.CorrectorOutput,
    ltml.DualBranchOutput,
    ltml.LTMLLossOutput,
    ltml.MAPResult,
    ltml.MixedBatch,
    D.LabelReport,
    D.LabelTable,
    D.OpenImagesLabels,
    ltml.data.PLTSubset,
    ltml.ThresholdedMetrics,
    ltml.ThresholdedSummary,
}


def case(public: Any, arg: str, bad: st.SearchStrategy[Any], call: Callable[[Any], Any]) -> None:
    """Register a contract case of the public callable ``public``."""
    CASES[public].append(Case(arg, bad, call))


def oracle(
    public: Any,
    what: str,
    odd: st.SearchStrategy[Any],
    call: Callable[[Any], Any],
    expected: Callable[[Any], Any],
) -> None:
    """Register accepted inputs of ``public`` whose result an independent oracle gives."""
    ORACLES[public].append(Oracle(what, odd, call, expected))


# ---------------------------------------------------------------------- strategies per contract

NAN, INF = math.nan, math.inf
META = torch.zeros(4, 3, device="meta")

NOT_A_NUMBER = st.one_of(
    st.text(max_size=3).map(lambda s: s or "2"),
    st.none(),
    st.booleans(),
    st.complex_numbers(allow_nan=False).filter(lambda z: z.imag != 0),
    st.just([1.0]),
    st.just(torch.tensor(1.0)),
)
NOT_AN_INT = st.one_of(
    NOT_A_NUMBER,
    st.floats(allow_nan=True),
    st.just(np.float64(2.0)),
    st.just(torch.tensor(2)),
)


def bad_int(low: int = 1, high: int | None = None) -> st.SearchStrategy[Any]:
    """Values outside the integer contract ``[low, high]``: wrong types or out of range."""
    out = [NOT_AN_INT, st.integers(max_value=low - 1)]
    if high is not None:
        out.append(st.integers(min_value=high + 1))
    return st.one_of(*out)


BAD_POSITIVE_INT = bad_int(1)
BAD_SEED = bad_int(0)


def bad_real(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> st.SearchStrategy[Any]:
    """Values outside the real-number contract: wrong types, NaN / inf, out of bounds."""
    out = [NOT_A_NUMBER, st.sampled_from([NAN, INF, -INF])]
    if low is not None:
        out.append(st.floats(max_value=low, exclude_max=not low_open, allow_nan=False))
    if high is not None:
        out.append(st.floats(min_value=high, exclude_min=not high_open, allow_nan=False))
    return st.one_of(*out)


BAD_REAL = bad_real()
BAD_NON_NEGATIVE = bad_real(0.0)
BAD_POSITIVE = bad_real(0.0, low_open=True)
BAD_PROBABILITY = bad_real(0.0, 1.0)


def bad_choice(*allowed: Any) -> st.SearchStrategy[Any]:
    """Values that are not one of ``allowed``."""
    others = st.one_of(
        st.text(max_size=6),
        st.none(),
        st.integers(),
        st.just(["mean"]),
        st.just(torch.tensor(1)),
    )
    return others.filter(
        lambda v: not any(v is a or (isinstance(v, str) and v == a) for a in allowed)
    )


BAD_BOOL = st.one_of(
    st.text(max_size=3), st.none(), st.integers(min_value=2), st.floats(), st.just([True])
)

N, C = 4, 3
LABELS = np.array([[1, 0, 1], [0, 1, -1], [1, 1, 0], [0, 0, 1]])
KNOWN = np.clip(LABELS, 0, 1)
LOGITS = torch.tensor([[2.0, -1.0, 0.5], [0.3, 1.5, -2.0], [1.0, 0.2, -0.4], [-1.2, 0.0, 3.0]])


def _with(value: float, dtype: Any = None) -> np.ndarray:
    out = LABELS.astype(np.float64 if isinstance(value, float) else np.int64)
    out[0, 1] = value
    return out if dtype is None else out.astype(dtype)


NOT_AN_ARRAY = st.sampled_from([LABELS.tolist(), "abc", None, 3, (LABELS, LABELS)])
BAD_ARRAY_FORMS = st.sampled_from(
    [
        LABELS[0],  # 1-D
        LABELS[None],  # 3-D
        np.zeros((N, 0), dtype=np.int64),  # no class
        LABELS.astype(object),
        LABELS.astype(np.complex64),
        LABELS.astype(str),
        META,
        torch.zeros(N, C, dtype=torch.complex64),
    ]
)
BAD_LABEL_VALUES = st.one_of(
    st.sampled_from([2, 3, -2, 7, 0.5, NAN, INF]).map(_with),
    st.just(np.array([[1, 0, 1], [0, 255, 1], [1, 1, 0], [0, 0, 1]], dtype=np.uint8)),  # -1 cast
    st.just(_with(-1).astype(np.uint8)),
    st.just(torch.from_numpy(_with(2)).to(torch.int8)),
)
BAD_LABELS = st.one_of(NOT_AN_ARRAY, BAD_ARRAY_FORMS, BAD_LABEL_VALUES)
# Targets of the losses that accept soft ones: 0.5 is valid; values outside {-1} ∪ [0, 1] are not.
BAD_SOFT_TARGETS = st.one_of(
    NOT_AN_ARRAY,
    BAD_ARRAY_FORMS,
    BAD_LABEL_VALUES.filter(lambda v: not (isinstance(v, np.ndarray) and v[0, 1] == 0.5)),
    st.sampled_from([1.5, -0.5, -1e-3]).map(_with),
)

BAD_SCORES = st.one_of(
    NOT_AN_ARRAY,
    BAD_ARRAY_FORMS,
    st.sampled_from([NAN, INF, -INF]).map(_with),
    st.just(LABELS == 1),  # booleans do not rank
)
BAD_LOGITS = st.one_of(
    BAD_SCORES.filter(lambda v: not (isinstance(v, np.ndarray) and v.dtype.kind == "f")),
    st.just(LOGITS.numpy()),  # the losses take tensors (autograd)
    st.just(LOGITS.long()),
    st.sampled_from([NAN, INF]).map(lambda v: torch.from_numpy(_with(v)).float()),
)


def bad_vector(length: int | None = C) -> st.SearchStrategy[Any]:
    """Values outside the per-class vector contract (of ``length`` entries, when it is fixed)."""
    bad = st.sampled_from(
        [
            "abc",
            [1.0, "2", 3.0],
            [[1.0] * C],
            [],
            torch.ones(2, C),
            torch.ones(C, dtype=torch.bool),
            np.array(["1"] * C),
            torch.ones(C, device="meta"),
            {0: 1.0},
            None,
        ]
    )
    if length is None:
        return bad
    wrong_length = st.lists(st.floats(allow_nan=False), min_size=length + 1, max_size=length + 3)
    return st.one_of(bad, wrong_length)


def bad_counts(total: int | None = None) -> st.SearchStrategy[Any]:
    """Values outside the per-class count contract (``total`` = N where the callable takes it)."""
    out = [
        bad_vector(None),
        st.sampled_from([[-1, 2, 3], [1.5, 2, 3], [NAN, 1, 1], [INF, 1, 1], [True, 1, 1]]),
    ]
    if total is not None:
        out.append(st.integers(total + 1, 10**6).map(lambda k: [1, k, 2]))
    return st.one_of(*out)


BAD_INDICES = st.one_of(
    st.sampled_from(
        [
            [0, 0],  # repeated
            [True, False, True],  # a mask
            [0.0, 1.0],
            "01",
            np.array([True, False, True]),
            np.array([0.0, 1.0]),
            torch.tensor([[0, 1]]),
            3,
            None,
        ]
    ),
    st.integers(C, 10**6).map(lambda k: [0, k]),
    st.integers(max_value=-1).map(lambda k: [k]),
)
BAD_GROUPS = st.one_of(
    BAD_INDICES.map(lambda idx: {"tail": idx}),
    st.sampled_from([[0, 1], "head", 3, {1: [0]}, {("a",): [0]}]),
)

_ROOT = tempfile.TemporaryDirectory(prefix="ltml-contracts-")
ROOT = Path(_ROOT.name)
(ROOT / "a_directory").mkdir()
BAD_PATH = st.sampled_from(
    [b"img_id.txt", 3, None, ["a.txt"], ROOT / "missing.txt", ROOT / "a_directory"]
)

# ------------------------------------------------------------------------------- shared objects

DATASET = TensorDataset(torch.arange(4.0)[:, None], torch.from_numpy(KNOWN))
BRANCH = nn.Identity()


def _sampler(**kwargs: Any) -> ltml.ClassAwareSampler:
    return ltml.ClassAwareSampler(LABELS, **kwargs)


class _LyingSampler(torch.utils.data.Sampler[int]):
    """A sampler whose ``__len__`` is not what it yields."""

    def __init__(self, length: Any, yields: int) -> None:
        self.length, self.yields = length, yields

    def __len__(self) -> Any:
        return self.length

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.yields))


def _paired(uniform: Any) -> list[tuple[int, int]]:
    return list(ltml.PairedSampler(uniform, SequentialSampler(range(4))))


def _head() -> ltml.DualBranchHead:
    return ltml.DualBranchHead(nn.Identity(), in_features=C, num_classes=C)


def _one_argument_forward(feat: Any) -> Any:
    """The deprecated form ``head(feat)``: it warns, and still checks its input."""
    with pytest.warns(FutureWarning, match="one argument is deprecated"):
        return _head()(feat)


def _meter_update(**kwargs: Any) -> None:
    ltml.mAPMeter(C).update(**{"scores": LOGITS, "targets": LABELS, **kwargs})


# ---------------------------------------------------------------------------------- the losses

LOSSES = {
    ltml.BCE: lambda **kw: ltml.BCE(**kw),
    ltml.FocalLoss: lambda **kw: ltml.FocalLoss(**kw),
    ltml.WeightedBCE: lambda **kw: ltml.WeightedBCE([3, 1, 2], **kw),
    ltml.ClassBalancedFocalLoss: lambda **kw: ltml.ClassBalancedFocalLoss([3, 1, 2], **kw),
    ltml.DistributionBalancedLoss: lambda **kw: ltml.DistributionBalancedLoss([3, 1, 2], 4, **kw),
    ltml.LogitCompensatedBCE: lambda **kw: ltml.LogitCompensatedBCE([3, 1, 2], 4, **kw),
    ltml.AsymmetricLoss: lambda **kw: ltml.AsymmetricLoss(**kw),
    ltml.MultiFocalModifierLoss: lambda **kw: ltml.MultiFocalModifierLoss([3, 1, 2], **kw),
}
HARD_ONLY = (ltml.DistributionBalancedLoss, ltml.MultiFocalModifierLoss)
for loss, make in LOSSES.items():
    case(loss, "reduction", bad_choice("mean", "sum", "none"), lambda v, m=make: m(reduction=v))
    case(loss, "logits", BAD_LOGITS, lambda v, m=make: m()(v, torch.from_numpy(LABELS)))
    bad_targets = BAD_LABELS if loss in HARD_ONLY else BAD_SOFT_TARGETS
    case(loss, "targets", bad_targets, lambda v, m=make: m()(LOGITS, v))
for loss in (ltml.WeightedBCE, ltml.ClassBalancedFocalLoss):
    case(loss, "class_counts", bad_counts(), lambda v, loss=loss: loss(v))
    case(loss, "labels", BAD_LABELS, lambda v, loss=loss: loss.from_labels(v))
for loss in (ltml.DistributionBalancedLoss, ltml.LogitCompensatedBCE):
    case(loss, "class_counts", bad_counts(4), lambda v, loss=loss: loss(v, 4))
    case(loss, "num_images", BAD_POSITIVE_INT, lambda v, loss=loss: loss([1, 1, 1], v))
    case(loss, "labels", BAD_LABELS, lambda v, loss=loss: loss.from_labels(v))
for loss, make in LOSSES.items():
    case(loss, "unknown", bad_choice("ignore", "negative"), lambda v, m=make: m(unknown=v))
for arg in ("gamma_pos", "gamma_neg"):
    case(ltml.AsymmetricLoss, arg, BAD_NON_NEGATIVE, lambda v, a=arg: ltml.AsymmetricLoss(**{a: v}))
    case(
        LF.asymmetric_loss,
        arg,
        BAD_NON_NEGATIVE,
        lambda v, a=arg: LF.asymmetric_loss(LOGITS, LABELS, **{a: v}),
    )
case(ltml.AsymmetricLoss, "eps", BAD_POSITIVE, lambda v: ltml.AsymmetricLoss(eps=v))
case(LF.asymmetric_loss, "logits", BAD_LOGITS, lambda v: LF.asymmetric_loss(v, LABELS))
case(LF.asymmetric_loss, "targets", BAD_SOFT_TARGETS, lambda v: LF.asymmetric_loss(LOGITS, v))
case(ltml.MultiFocalModifierLoss, "class_counts", bad_counts(), ltml.MultiFocalModifierLoss)
case(ltml.MultiFocalModifierLoss, "labels", BAD_LABELS, ltml.MultiFocalModifierLoss.from_labels)
case(
    LF.multi_focal_modifier_loss,
    "logits",
    BAD_LOGITS,
    lambda v: LF.multi_focal_modifier_loss(v, LABELS, [3, 1, 2]),
)
case(
    LF.multi_focal_modifier_loss,
    "targets",
    BAD_LABELS,
    lambda v: LF.multi_focal_modifier_loss(LOGITS, v, [3, 1, 2]),
)
case(ltml.ReflectiveLabelCorrector, "class_counts", bad_counts(), ltml.ReflectiveLabelCorrector)
case(
    ltml.ReflectiveLabelCorrector,
    "tau",
    bad_real(0.0, 1.0, low_open=True, high_open=True),
    lambda v: ltml.ReflectiveLabelCorrector([3, 1, 2], tau=v),
)
case(
    ltml.ReflectiveLabelCorrector,
    "threshold",
    bad_choice("running", "batch"),
    lambda v: ltml.ReflectiveLabelCorrector([3, 1, 2], threshold=v),
)
case(
    LF.reflective_label_correction,
    "logits",
    BAD_LOGITS,
    lambda v: LF.reflective_label_correction(v, LABELS, 0.5),
)
case(
    LF.reflective_label_correction,
    "targets",
    BAD_LABELS,
    lambda v: LF.reflective_label_correction(LOGITS, v, 0.5),
)
case(D.cooccurrence, "labels", BAD_LABELS, D.cooccurrence)
case(D.drop_labels, "labels", BAD_LABELS, lambda v: D.drop_labels(v, 0.4))
case(D.drop_labels, "rate", BAD_PROBABILITY, lambda v: D.drop_labels(LABELS, v))
case(
    D.make_plt,
    "profile",
    st.sampled_from(["lvis", "", None, 1.5, 0, [1]]),
    lambda v: D.make_plt(LABELS, v),
)
case(ltml.WeightedBCE, "power", BAD_NON_NEGATIVE, lambda v: ltml.WeightedBCE([3, 1], power=v))
case(ltml.FocalLoss, "gamma", BAD_NON_NEGATIVE, lambda v: ltml.FocalLoss(gamma=v))
case(
    ltml.FocalLoss,
    "alpha",
    BAD_PROBABILITY.filter(lambda v: v is not None),
    lambda v: ltml.FocalLoss(alpha=v),
)
case(
    ltml.ClassBalancedFocalLoss,
    "beta",
    bad_real(0.0, 1.0, high_open=True),
    lambda v: ltml.ClassBalancedFocalLoss([3, 1], beta=v),
)
case(
    ltml.ClassBalancedFocalLoss,
    "gamma",
    BAD_NON_NEGATIVE,
    lambda v: ltml.ClassBalancedFocalLoss([3, 1], gamma=v),
)
for arg, bad in {
    "alpha": BAD_NON_NEGATIVE,
    "beta": BAD_NON_NEGATIVE,
    "mu": BAD_REAL.filter(lambda v: v is not None),
    "kappa": BAD_NON_NEGATIVE,
    "neg_scale": BAD_POSITIVE.filter(lambda v: v is not None),
    "gamma": BAD_NON_NEGATIVE,
    "scale": BAD_POSITIVE,
    "preset": bad_choice("voc", "coco"),
}.items():
    case(
        ltml.DistributionBalancedLoss,
        arg,
        bad,
        lambda v, arg=arg: ltml.DistributionBalancedLoss([3, 1, 2], 4, **{arg: v}),
    )
case(
    ltml.DistributionBalancedLoss,
    "num_images",
    st.just(1),
    lambda v: ltml.DistributionBalancedLoss([1, 1, 1], v),
)
case(
    ltml.LogitCompensatedBCE,
    "guard",
    bad_choice(None, "tied"),
    lambda v: ltml.LogitCompensatedBCE([3, 1], 4, guard=v),
)
case(
    ltml.LogitCompensatedBCE,
    "max_scale",
    bad_real(1.0, low_open=True),
    lambda v: ltml.LogitCompensatedBCE([3, 1], 4, guard="tied", max_scale=v),
)
case(
    ltml.LogitCompensatedBCE,
    "learnable",
    BAD_BOOL,
    lambda v: ltml.LogitCompensatedBCE([3, 1], 4, learnable=v),
)
case(
    ltml.CrossBranchConsistency,
    "space",
    bad_choice("prob", "logit"),
    lambda v: ltml.CrossBranchConsistency(space=v),
)
case(
    ltml.CrossBranchConsistency,
    "detach",
    bad_choice(None, "first", "second"),
    lambda v: ltml.CrossBranchConsistency(detach=v),
)
case(
    ltml.CrossBranchConsistency,
    "first",
    BAD_LOGITS,
    lambda v: ltml.CrossBranchConsistency()(v, LOGITS),
)
case(
    ltml.CrossBranchConsistency,
    "second",
    BAD_LOGITS,
    lambda v: ltml.CrossBranchConsistency()(LOGITS, v),
)
case(ltml.LTMLLoss, "weight", BAD_NON_NEGATIVE, lambda v: ltml.LTMLLoss(ltml.BCE(), weight=v))
case(ltml.LTMLLoss, "cls_u", st.sampled_from([None, 3, "bce"]), ltml.LTMLLoss)
case(ltml.LTMLLoss, "cls_r", st.sampled_from([3, "bce"]), lambda v: ltml.LTMLLoss(ltml.BCE(), v))
case(
    ltml.LTMLLoss,
    "out",
    st.sampled_from([None, (LOGITS,) * 3, (LOGITS,) * 5, LOGITS, "uuhr", (None,) * 4]),
    lambda v: ltml.LTMLLoss(ltml.BCE())(v, torch.from_numpy(KNOWN), torch.from_numpy(KNOWN)),
)
case(
    ltml.LTMLLoss,
    "y_u",
    st.sampled_from([None, KNOWN.tolist(), "abc", META]),  # values: checked by cls_u, as `targets`
    lambda v: ltml.LTMLLoss(ltml.BCE())((LOGITS,) * 4, v, torch.from_numpy(KNOWN)),
)

# Functional forms.
case(LF.bce, "logits", BAD_LOGITS, lambda v: LF.bce(v, LABELS))


def _positive_negative_weights(v: Any) -> bool:
    """A (2, C) weight tensor: per class, for positives and negatives (accepted)."""
    return isinstance(v, torch.Tensor) and tuple(v.shape) == (2, C) and v.is_floating_point()


case(LF.bce, "targets", BAD_SOFT_TARGETS, lambda v: LF.bce(LOGITS, v))
case(
    LF.bce,
    "weight",
    bad_vector().filter(lambda v: v is not None and not _positive_negative_weights(v)),
    lambda v: LF.bce(LOGITS, LABELS, v),
)
case(
    LF.bce,
    "reduction",
    bad_choice("mean", "sum", "none"),
    lambda v: LF.bce(LOGITS, LABELS, reduction=v),
)
case(LF.focal_loss, "logits", BAD_LOGITS, lambda v: LF.focal_loss(v, LABELS))
case(LF.focal_loss, "targets", BAD_SOFT_TARGETS, lambda v: LF.focal_loss(LOGITS, v))
case(LF.focal_loss, "gamma", BAD_NON_NEGATIVE, lambda v: LF.focal_loss(LOGITS, LABELS, gamma=v))
case(
    LF.focal_loss,
    "alpha",
    BAD_PROBABILITY.filter(lambda v: v is not None),
    lambda v: LF.focal_loss(LOGITS, LABELS, alpha=v),
)
case(
    LF.focal_loss,
    "weight",
    bad_vector().filter(lambda v: v is not None and not _positive_negative_weights(v)),
    lambda v: LF.focal_loss(LOGITS, LABELS, weight=v),
)
case(
    LF.logit_compensated_bce,
    "logits",
    BAD_LOGITS,
    lambda v: LF.logit_compensated_bce(v, LABELS, [3, 1, 2], 4),
)
case(
    LF.logit_compensated_bce,
    "class_counts",
    bad_counts(4),
    lambda v: LF.logit_compensated_bce(LOGITS, LABELS, v, 4),
)
case(
    LF.logit_compensated_bce,
    "num_images",
    BAD_POSITIVE_INT,
    lambda v: LF.logit_compensated_bce(LOGITS, LABELS, [0, 0, 0], v),
)
case(
    LF.logit_compensated_bce,
    "sigma_pos",
    st.one_of(bad_vector(), BAD_REAL.filter(lambda v: not isinstance(v, list | torch.Tensor))),
    lambda v: LF.logit_compensated_bce(LOGITS, LABELS, [3, 1, 2], 4, v),
)
case(
    LF.distribution_balanced_loss,
    "targets",
    BAD_LABELS,
    lambda v: LF.distribution_balanced_loss(LOGITS, v, [3, 1, 2], 4),
)
case(
    LF.distribution_balanced_loss,
    "num_images",
    bad_int(2),
    lambda v: LF.distribution_balanced_loss(LOGITS, LABELS, [1, 1, 1], v),
)
case(
    LF.distribution_balanced_loss,
    "mu",
    BAD_REAL,
    lambda v: LF.distribution_balanced_loss(LOGITS, LABELS, [3, 1, 2], 4, mu=v),
)
case(
    LF.distribution_balanced_loss,
    "scale",
    BAD_POSITIVE,
    lambda v: LF.distribution_balanced_loss(LOGITS, LABELS, [3, 1, 2], 4, scale=v),
)
case(
    LF.cross_branch_consistency,
    "first",
    BAD_LOGITS,
    lambda v: LF.cross_branch_consistency(v, LOGITS),
)
case(
    LF.cross_branch_consistency,
    "space",
    bad_choice("prob", "logit"),
    lambda v: LF.cross_branch_consistency(LOGITS, LOGITS, space=v),
)

# ---------------------------------------------------------------------------------- the metrics

for fn in (ltml.average_precision, LF.average_precision):
    case(fn, "scores", BAD_SCORES, lambda v, fn=fn: fn(v, LABELS))
    case(fn, "targets", BAD_LABELS, lambda v, fn=fn: fn(LOGITS, v))
    case(
        fn,
        "empty_class",
        bad_choice("nan", "zero"),
        lambda v, fn=fn: fn(LOGITS, LABELS, empty_class=v),
    )
case(ltml.mAPMeter, "num_classes", BAD_POSITIVE_INT, ltml.mAPMeter)
case(ltml.mAPMeter, "groups", BAD_GROUPS, lambda v: ltml.mAPMeter(C, groups=v))
case(
    ltml.mAPMeter,
    "empty_class",
    bad_choice("nan", "zero"),
    lambda v: ltml.mAPMeter(C, empty_class=v),
)
case(
    ltml.mAPMeter,
    "class_names",
    st.sampled_from([3, "abc", [], ["a", "b"], ["a", "b", "c", "d"], ["a", "b", "a"]]),
    lambda v: ltml.mAPMeter(C, class_names=v),
)
case(ltml.mAPMeter, "scores", BAD_SCORES, lambda v: _meter_update(scores=v))
case(ltml.mAPMeter, "targets", BAD_LABELS, lambda v: _meter_update(targets=v))
case(
    ltml.mAPMeter,
    "scores",
    bad_choice(None, "logits", "probs"),
    lambda v: ltml.mAPMeter(C, scores=v),
)
case(
    ltml.mAPMeter,
    "top_k",
    bad_int(1, C).filter(lambda v: v is not None),  # None: no top-k metrics, valid
    lambda v: ltml.mAPMeter(C, threshold=0.0, top_k=v),
)
case(
    ltml.mAPMeter,
    "zero_division",
    bad_choice("zero", "one", "nan"),
    lambda v: ltml.mAPMeter(C, zero_division=v),
)
BAD_THRESHOLD = st.sampled_from([math.nan, [0.0] * (C + 1), "0.5", True, [[0.0] * C]])
case(ltml.mAPMeter, "threshold", BAD_THRESHOLD, lambda v: ltml.mAPMeter(C, threshold=v))
T = ltml.thresholded_metrics
case(T, "scores", BAD_SCORES, lambda v: T(v, LABELS, threshold=0.0))
case(T, "targets", BAD_LABELS, lambda v: T(LOGITS, v, threshold=0.0))
case(T, "threshold", BAD_THRESHOLD, lambda v: T(LOGITS, LABELS, threshold=v))
case(T, "top_k", bad_int(1, C), lambda v: T(LOGITS, LABELS, threshold=0.0, top_k=v))
case(
    T,
    "zero_division",
    bad_choice("zero", "one", "nan"),
    lambda v: T(LOGITS, LABELS, threshold=0.0, zero_division=v),
)
case(
    T,
    "empty_class",
    bad_choice("nan", "zero"),
    lambda v: T(LOGITS, LABELS, threshold=0.0, empty_class=v),
)
case(ltml.fit_thresholds, "scores", BAD_SCORES, lambda v: ltml.fit_thresholds(v, LABELS))
case(ltml.fit_thresholds, "targets", BAD_LABELS, lambda v: ltml.fit_thresholds(LOGITS, v))
case(
    ltml.fit_thresholds,
    "metric",
    bad_choice("f1"),
    lambda v: ltml.fit_thresholds(LOGITS, LABELS, metric=v),
)
case(
    ltml.fit_thresholds,
    "min_positives",
    BAD_POSITIVE_INT,
    lambda v: ltml.fit_thresholds(LOGITS, LABELS, min_positives=v, fallback=0.0),
)
case(
    ltml.fit_thresholds,
    "fallback",
    BAD_THRESHOLD,
    lambda v: ltml.fit_thresholds(LOGITS, LABELS, fallback=v),
)

# --------------------------------------------------------------------------------- the samplers

S = ltml.ClassAwareSampler
case(S, "labels", BAD_LABELS, S)
case(S, "labels", st.sampled_from([[[0, 2], [1]], ([0, 1], [2])]), S)  # class lists: explicit only
case(
    S,
    "num_draws",
    bad_int(1).filter(lambda v: v is not None and v != "db"),
    lambda v: _sampler(num_draws=v),
)
case(S, "power", BAD_REAL.filter(lambda v: not callable(v)), lambda v: _sampler(power=v))
case(S, "mode", bad_choice("random", "cycle"), lambda v: _sampler(mode=v))
case(
    S,
    "images_per_class",
    BAD_POSITIVE_INT.filter(lambda v: v is not None),
    lambda v: _sampler(mode="cycle", images_per_class=v),
)
case(S, "seed", BAD_SEED, lambda v: _sampler(seed=v))
case(
    S,
    "num_replicas",
    BAD_POSITIVE_INT.filter(lambda v: v is not None),
    lambda v: _sampler(num_replicas=v),
)
case(
    S,
    "rank",
    bad_int(0, 1).filter(lambda v: v is not None),
    lambda v: _sampler(num_replicas=2, rank=v),
)
case(
    S,
    "num_classes",
    BAD_POSITIVE_INT.filter(lambda v: v is not None),
    lambda v: _sampler(num_classes=v),
)
case(S, "empty_classes", bad_choice("warn", "error"), lambda v: _sampler(empty_classes=v))
case(S, "epoch", BAD_SEED, lambda v: _sampler().set_epoch(v))
case(S, "power(epoch)", BAD_REAL, lambda v: list(_sampler(power=lambda e: v)))
case(
    S,
    "class_lists",
    st.sampled_from(
        [
            "abc",
            [1, 2],
            [[0, 0]],
            [[0.5]],
            [[True]],
            [["0"]],
            [[-1]],
            LABELS,
            (np.array([0, 2]), np.array([0])),
            (np.array([1, 1]), np.array([0])),
        ]
    ),
    S.from_class_lists,
)
P = ltml.PairedSampler
case(P, "uniform", st.sampled_from([iter([1]), 3, None, SequentialSampler(range(0))]), _paired)
case(P, "uniform", st.sampled_from([_LyingSampler(5, 3), _LyingSampler(2, 6)]), _paired)
case(P, "uniform", st.sampled_from([_LyingSampler(-1, 3), _LyingSampler(2.0, 2)]), _paired)
case(
    P,
    "length",
    bad_choice("balanced", "uniform", "min"),
    lambda v: P(SequentialSampler(range(2)), SequentialSampler(range(2)), length=v),
)
case(
    P,
    "epoch",
    BAD_SEED,
    lambda v: P(SequentialSampler(range(2)), SequentialSampler(range(2))).set_epoch(v),
)
case(ltml.PairedDataset, "dataset", st.sampled_from([3, None]), ltml.PairedDataset)
case(
    ltml.PairedDataset,
    "pair",
    st.sampled_from([5, None, (1, 2, 3), "12", np.int64(1)]),
    lambda v: ltml.PairedDataset(DATASET)[v],
)

B = ltml.BalancedSampler
case(B, "labels", BAD_LABELS, B)
case(B, "labels", st.sampled_from([[[0, 2], [1]], ([0, 1], [2])]), B)  # class lists: explicit only
case(B, "num_draws", BAD_POSITIVE_INT.filter(lambda v: v is not None), lambda v: B(LABELS, v))
case(B, "seed", BAD_SEED, lambda v: B(LABELS, seed=v))
case(
    B,
    "num_replicas",
    BAD_POSITIVE_INT.filter(lambda v: v is not None),
    lambda v: B(LABELS, num_replicas=v),
)
case(
    B,
    "rank",
    bad_int(0, 1).filter(lambda v: v is not None),
    lambda v: B(LABELS, num_replicas=2, rank=v),
)
case(B, "epoch", BAD_SEED, lambda v: B(LABELS).set_epoch(v))
case(
    B,
    "class_lists",
    st.sampled_from(
        ["abc", [1, 2], [[0, 0]], [[0.5]], [[-1]], LABELS, (np.array([1]), np.array([0]))]
    ),
    B.from_class_lists,
)
FIT_ARGUMENTS = {
    "power": BAD_PROBABILITY,
    "max_ratio": bad_real(1.0).filter(lambda v: v is not None),
    "max_weight": bad_real(1.0).filter(lambda v: v is not None),
    "tol": bad_real(0.0, 1.0, low_open=True),
    "max_iter": BAD_POSITIVE_INT,
    "num_classes": BAD_POSITIVE_INT.filter(lambda v: v is not None),
    "empty_classes": bad_choice("warn", "error"),
}
for _public in (B, ltml.fit_balanced_weights):
    for _arg, _bad in FIT_ARGUMENTS.items():
        case(_public, _arg, _bad, lambda v, f=_public, a=_arg: f(LABELS, **{a: v}))
case(ltml.fit_balanced_weights, "labels", BAD_LABELS, ltml.fit_balanced_weights)

# ------------------------------------------------------------------------------------ the heads

H = ltml.DualBranchHead
case(H, "branch", st.sampled_from([None, "layer4", 3]), lambda v: H(v, C, C))
case(H, "in_features", BAD_POSITIVE_INT, lambda v: H(BRANCH, v, C))
case(H, "num_classes", BAD_POSITIVE_INT, lambda v: H(BRANCH, C, v))
case(
    H,
    "in_channels",
    BAD_POSITIVE_INT.filter(lambda v: v is not None),
    lambda v: H(BRANCH, C, C, in_channels=v),
)
case(H, "concat", BAD_BOOL, lambda v: H(BRANCH, C, C, concat=v))
BAD_FEATURES = st.sampled_from(
    [LOGITS.long(), LOGITS[0], LOGITS.numpy(), LOGITS[:, :2], META, [[1.0] * C], "x", 3]
)
case(H, "feat_u", BAD_FEATURES, lambda v: _head()(v, LOGITS))
case(H, "feat_r", BAD_FEATURES, lambda v: _head()(LOGITS, v))
case(
    H, "feat", st.sampled_from([LOGITS.long(), LOGITS[0], META, None]), lambda v: _head().predict(v)
)
case(
    H,
    "feat",
    st.sampled_from([None, LOGITS.numpy(), torch.zeros(4, 5), META]),
    _one_argument_forward,
)
case(H, "mode", bad_choice("prob", "logit", "u", "r"), lambda v: _head().predict(LOGITS, mode=v))
case(H, "cross", BAD_BOOL, lambda v: _head()(LOGITS, LOGITS, cross=v))
case(
    ltml.paired_forward,
    "module",
    st.sampled_from([None, 3, "trunk"]),
    lambda v: ltml.paired_forward(v, LOGITS, LOGITS),
)
case(
    ltml.paired_forward,
    "x_u",
    st.sampled_from([[1.0], LOGITS.numpy(), 3, META]),
    lambda v: ltml.paired_forward(BRANCH, v, LOGITS),
)
case(
    ltml.paired_forward,
    "x_r",
    st.sampled_from([LOGITS[:, :2], LOGITS[None]]),
    lambda v: ltml.paired_forward(BRANCH, LOGITS, v),
)
case(
    ltml.paired_forward,
    "concat",
    BAD_BOOL,
    lambda v: ltml.paired_forward(BRANCH, LOGITS, LOGITS, concat=v),
)
case(
    ltml.resnet_dual_branch,
    "resnet",
    st.sampled_from([None, nn.Linear(2, 2), "resnet50"]),
    lambda v: ltml.resnet_dual_branch(v, C),
)

_TINY = nn.Sequential(
    nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    nn.Linear(4, 2),
)  # fmt: skip


def _split(**kwargs: Any) -> Any:
    arguments = {
        "model": _TINY,
        "at": "2",
        "num_classes": C,
        "example_input": torch.zeros(1, 3, 8, 8),
    }
    return ltml.split_dual_branch(**{**arguments, **kwargs})


case(
    ltml.split_dual_branch,
    "model",
    st.sampled_from([None, 3, "resnet50"]),
    lambda v: _split(model=v),
)
case(
    ltml.split_dual_branch,
    "at",
    st.sampled_from(["9", "", 3, None, "layer4"]),
    lambda v: _split(at=v),
)
case(ltml.split_dual_branch, "num_classes", BAD_POSITIVE_INT, lambda v: _split(num_classes=v))
case(ltml.split_dual_branch, "concat", BAD_BOOL, lambda v: _split(concat=v))
case(
    ltml.split_dual_branch,
    "example_input",
    st.sampled_from([[1.0], 3, META]),
    lambda v: _split(example_input=v),
)

# ------------------------------------------------------------------------------------ mixup

X = torch.zeros(N, 3, 4, 4)
case(
    ltml.mix_batch,
    "inputs",
    st.sampled_from([None, X.numpy(), META, X[:2], torch.zeros(())]),
    lambda v: ltml.mix_batch(v, torch.from_numpy(KNOWN)),
)
case(
    ltml.mix_batch,
    "targets",
    BAD_LABELS.filter(
        lambda v: (
            not (isinstance(v, np.ndarray) and v.dtype.kind == "f" and np.nanmax(np.abs(v)) <= 1)
        )
    ),
    lambda v: ltml.mix_batch(X, v),
)
case(ltml.mix_batch, "alpha", BAD_POSITIVE, lambda v: ltml.mix_batch(X, torch.from_numpy(KNOWN), v))
case(
    ltml.mix_batch,
    "method",
    bad_choice("mixup", "cutmix"),
    lambda v: ltml.mix_batch(X, torch.from_numpy(KNOWN), method=v),
)
case(
    ltml.mix_batch,
    "generator",
    st.sampled_from([0, "seed", np.random.default_rng(0)]),
    lambda v: ltml.mix_batch(X, torch.from_numpy(KNOWN), generator=v),
)

# ------------------------------------------------------------------------------------- the data

case(ltml.class_counts, "labels", BAD_LABELS, ltml.class_counts)
case(ltml.class_groups, "counts", bad_counts(), ltml.class_groups)
case(
    ltml.class_groups,
    "thresholds",
    st.sampled_from([(100, 20), (-1, 5), (2.5, 10), ("20", "100"), 20, (1, 2, 3)]),
    lambda v: ltml.class_groups([3, 1, 2], v),
)
BAD_SHARE_PAIRS = st.sampled_from([(0.5, 0.2), (-0.1, 0.5), (0.1, 1.5), (NAN, 0.5), 0.5, ("a", 1)])
case(
    ltml.class_groups,
    "shares",
    BAD_SHARE_PAIRS,
    lambda v: ltml.class_groups([3, 1, 2], shares=v, num_images=10),
)
case(
    ltml.class_groups,
    "quantiles",
    BAD_SHARE_PAIRS,
    lambda v: ltml.class_groups([3, 1, 2], quantiles=v),
)
case(
    ltml.class_groups,
    "num_images",
    st.sampled_from([None, -1, 2.5, "10"]),
    lambda v: ltml.class_groups([3, 1, 2], shares=(0.1, 0.5), num_images=v),
)
case(ltml.class_weights, "counts", bad_counts(), ltml.class_weights)
case(
    ltml.class_weights,
    "method",
    bad_choice("inverse", "effective_number", "omega"),
    lambda v: ltml.class_weights([3, 1, 2], 10, v),
)
case(
    ltml.class_weights,
    "num_images",
    BAD_POSITIVE_INT,
    lambda v: ltml.class_weights([3, 1], v, method="omega"),
)
case(D.cooccurrence_rank, "labels", BAD_LABELS, D.cooccurrence_rank)
case(D.make_long_tailed, "labels", BAD_LABELS, lambda v: D.make_long_tailed(v, [1, 1, 1]))
case(D.make_long_tailed, "quotas", bad_counts(), lambda v: D.make_long_tailed(LABELS, v))
case(D.make_long_tailed, "seed", BAD_SEED, lambda v: D.make_long_tailed(LABELS, [1, 1, 1], v))
case(D.make_long_tailed, "rank", BAD_BOOL, lambda v: D.make_long_tailed(LABELS, [1, 1, 1], rank=v))
case(D.pareto_quotas, "num_classes", BAD_POSITIVE_INT, lambda v: D.pareto_quotas(v, 10))
case(D.pareto_quotas, "max_count", bad_int(1, 2**53), lambda v: D.pareto_quotas(3, v))
case(
    D.pareto_quotas,
    "shape",
    st.one_of(BAD_POSITIVE, st.floats(1e-6, 1e-3)),
    lambda v: D.pareto_quotas(3, 10, v),
)
for arg, bad in {
    "split": bad_choice("train", "test"),
    "seed": BAD_SEED,
    "max_count": BAD_POSITIVE_INT,
    "num_test": BAD_POSITIVE_INT,
    "grid": bad_int(2),
    "cell": BAD_POSITIVE_INT,
    "noise": BAD_NON_NEGATIVE,
    "transform": st.sampled_from([3, "flip"]),
}.items():
    case(D.make_demo, arg, bad, lambda v, arg=arg: D.make_demo(**{arg: v}))
case(
    D.DemoMosaics,
    "labels",
    st.one_of(BAD_LABELS, st.just(np.zeros((2, 3)))),
    lambda v: D.DemoMosaics(torch.zeros(2, 3, 8, 8), v, torch.arange(2)),
)
case(
    D.DemoMosaics,
    "images",
    st.sampled_from([None, np.zeros((2, 3, 8, 8)), torch.zeros(3, 3, 8, 8), torch.zeros(2, 8, 8)]),
    lambda v: D.DemoMosaics(v, torch.zeros(2, 10, dtype=torch.long), torch.arange(2)),
)

# Files: a minimal VOC tree and COCO JSON.
_VOC = ROOT / "voc" / "VOC2012"
for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
    (_VOC / sub).mkdir(parents=True)
Image.new("RGB", (4, 4)).save(_VOC / "JPEGImages" / "2008_000001.jpg")
(_VOC / "Annotations" / "2008_000001.xml").write_text(
    "<annotation><object><name>dog</name></object></annotation>"
)
(_VOC / "ImageSets" / "Main" / "trainval.txt").write_text("2008_000001\n")
_COCO = ROOT / "coco"
_COCO.mkdir()
Image.new("RGB", (4, 4)).save(_COCO / "a.jpg")
Image.new("RGB", (4, 4)).save(_COCO / "b.jpg")


def _instances() -> dict[str, Any]:
    return {
        "images": [{"id": 7, "file_name": "a.jpg"}, {"id": 8, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "area": 9.0, "bbox": [0, 0, 3, 3]},
        ],
    }


def _broken(edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    data = _instances()
    edit(data)
    return data


MALFORMED_COCO = st.sampled_from(
    [
        _broken(lambda d: d["annotations"][0].update(bbox=[0, 0])),
        _broken(lambda d: d["annotations"][0].update(area=None)),
        _broken(lambda d: d["annotations"][0].update(bbox="0 0 3 3")),
        _broken(lambda d: d["annotations"][0].pop("image_id")),
        _broken(lambda d: d["annotations"][0].update(category_id="3")),
        _broken(lambda d: d["annotations"].append(["not", "a", "dict"])),
        _broken(lambda d: d.update(images={"7": "a.jpg"})),
        _broken(lambda d: d.update(annotations=None)),
        _broken(lambda d: d["images"].append({"id": 7, "file_name": "b.jpg"})),  # repeated id
        _broken(lambda d: d["categories"].append({"id": 3, "name": "bus"})),  # repeated id
        _broken(lambda d: d["images"][0].update(id="7")),
        _broken(lambda d: d["categories"][0].update(name=None)),
        _broken(lambda d: d.pop("categories")),
        [1, 2, 3],
    ]
)


def _coco(instances: Any) -> D.COCOMultiLabel:
    path = ROOT / "instances.json"
    path.write_text(json.dumps(instances))
    return D.COCOMultiLabel(_COCO, path)


def _image_list_file(content: bytes) -> Path:
    path = ROOT / "img_id.txt"
    path.write_bytes(content)
    return path


BAD_LIST_FILES = st.sampled_from(
    [
        *(pickle.dumps(["2008_000001"], protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)),
        b"\x00" * 32,
        b"\xff\xfe\x00bad",
        b"2008_000001\n2008_000001\n",
        b"2008_000001 1\n",
        b" \n\n",
    ]
).map(_image_list_file)

case(D.read_image_list, "path", st.one_of(BAD_PATH, BAD_LIST_FILES), D.read_image_list)
case(D.VOCMultiLabel, "root", st.sampled_from([b"voc", None, 3, ROOT / "nowhere"]), D.VOCMultiLabel)
case(
    D.VOCMultiLabel,
    "image_set",
    st.sampled_from(["test", 3, None]),
    lambda v: D.VOCMultiLabel(ROOT / "voc", image_set=v),
)
case(
    D.VOCMultiLabel,
    "image_list",
    st.one_of(
        BAD_PATH.filter(lambda v: v is not None),
        BAD_LIST_FILES,
        st.sampled_from([[], [1.5], [None], ["2008_000001", "2008_000001"], ["a b"]]),
    ),
    lambda v: D.VOCMultiLabel(ROOT / "voc", image_list=v),
)
case(
    D.VOCMultiLabel,
    "transform",
    st.sampled_from([3, "flip"]),
    lambda v: D.VOCMultiLabel(ROOT / "voc", transform=v),
)
case(
    D.VOCMultiLabel,
    "year",
    st.sampled_from([2012, None]),
    lambda v: D.VOCMultiLabel(ROOT / "voc", year=v),
)
case(D.COCOMultiLabel, "instances_json", MALFORMED_COCO, _coco)
case(D.COCOMultiLabel, "instances_json", BAD_PATH, lambda v: D.COCOMultiLabel(_COCO, v))
case(
    D.COCOMultiLabel,
    "images_dir",
    st.sampled_from([b"coco", None, ROOT / "nowhere"]),
    lambda v: D.COCOMultiLabel(v, _coco_json()),
)
case(
    D.COCOMultiLabel,
    "image_list",
    st.sampled_from([[], [7, 7], ["x"], [1234], [7.0], [None], b"ids.txt", 3]),
    lambda v: D.COCOMultiLabel(_COCO, _coco_json(), image_list=v),
)


def _coco_json() -> Path:
    path = ROOT / "good_instances.json"
    path.write_text(json.dumps(_instances()))
    return path


# Your own data: a tags table over one image, the report, the stratifier.
_TABLE = ROOT / "table"
_TABLE.mkdir()
Image.new("RGB", (4, 4)).save(_TABLE / "a.png")
(_TABLE / "labels.csv").write_text("image,tags\na.png,cat|dog\n")
for public in (D.read_label_table, D.TableMultiLabel):
    case(
        public,
        "source",
        BAD_PATH,
        lambda v, f=public: f(v, image_root=_TABLE) if f is D.TableMultiLabel else f(v),
    )
    case(
        public,
        "tag_separator",
        st.sampled_from(["", None, 3, b"|"]),
        lambda v, f=public: f(
            _TABLE / "labels.csv",
            tag_separator=v,
            **({"image_root": _TABLE} if f is D.TableMultiLabel else {}),
        ),
    )
case(
    D.TableMultiLabel, "image_root", BAD_PATH, lambda v: D.TableMultiLabel(_TABLE / "labels.csv", v)
)
case(
    D.TableMultiLabel,
    "transform",
    st.sampled_from([3, "flip"]),
    lambda v: D.TableMultiLabel(_TABLE / "labels.csv", _TABLE, transform=v),
)
for public in (D.read_label_table, D.TableMultiLabel):
    case(
        public,
        "sparse",
        st.sampled_from(["yes", 1, 0.5, "True"]),
        lambda v, f=public: f(
            _TABLE / "labels.csv",
            sparse=v,
            **({"image_root": _TABLE} if f is D.TableMultiLabel else {}),
        ),
    )

for public in (D.read_label_table, D.TableMultiLabel):
    for arg, bad in (
        ("unknown", st.sampled_from([3, b"NA", "cat"])),
        ("no_label", st.sampled_from(["", 3, "dog"])),
        ("ignore_columns", st.sampled_from(["tags", ["image"], 5])),
    ):
        case(
            public,
            arg,
            bad,
            lambda v, f=public, arg=arg: f(
                _TABLE / "labels.csv",
                **{arg: v},
                **({"image_root": _TABLE} if f is D.TableMultiLabel else {}),
            ),
        )

# Sparse partial labels: the CSR arrays, the constructors, row selection.
VL = ltml.VerifiedLabels
BAD_INTEGER_VECTOR = [None, "01", np.array([0.5, 1.0]), np.array([[0, 1]]), [True, 1], [0, 1.0]]
case(
    VL,
    "indptr",
    st.sampled_from([[0, 1], [1, 2], [0, 3, 2], [0, 2, 1, 2], [], *BAD_INTEGER_VECTOR]),
    lambda v: VL(v, [0, 2], [1, 0], 3),
)
case(
    VL,
    "indices",
    st.sampled_from([[1, 0], [2, 2], [0, 3], [-1, 0], *BAD_INTEGER_VECTOR]),
    lambda v: VL([0, 2], v, [1, 0], 3),
)
case(
    VL,
    "values",
    st.sampled_from(
        [[2, 0], [-1, 0], np.array([0.5, 1.0]), np.array([1, 0, 1]), "10", None, [1.0, 0]]
    ),
    lambda v: VL([0, 2], [0, 1], v, 3),
)
case(VL, "num_classes", BAD_POSITIVE_INT, lambda v: VL([0, 1], [0], [1], v))
case(VL, "labels", BAD_LABELS, VL.from_dense)
case(
    VL,
    "rows",
    st.sampled_from([[4], [-1], *BAD_INTEGER_VECTOR[:5]]),
    lambda v: VL.from_triplets(v, [0, 1], [1, 0], (4, 3)),
)
case(
    VL,
    "cols",
    st.sampled_from([[0, 3], [-1, 0], [0], *BAD_INTEGER_VECTOR[:5]]),
    lambda v: VL.from_triplets([0, 1], v, [1, 0], (4, 3)),
)
case(
    VL,
    "values",
    st.sampled_from([[2, 0], [1], np.array([0.5, 1.0]), None]),
    lambda v: VL.from_triplets([0, 1], [0, 1], v, (4, 3)),
)
case(
    VL,
    "shape",
    st.sampled_from([3, (4,), (4, 3, 1), "43", (4.0, 3), (-1, 3), (4, 0), None]),
    lambda v: VL.from_triplets([0, 1], [0, 1], [1, 0], v),
)
case(
    VL,
    "conflicts",
    bad_choice("error", "unknown"),
    lambda v: VL.from_triplets([0, 1], [0, 1], [1, 0], (4, 3), conflicts=v),
)
case(
    VL,
    "dtype",
    st.sampled_from([torch.uint8, torch.bool, "int8", None, np.int8]),
    lambda v: VL.from_dense(LABELS).to_dense(v),
)
case(
    VL,
    "index",
    st.sampled_from([[4], [-1], *BAD_INTEGER_VECTOR[:5]]),
    lambda v: VL.from_dense(LABELS).rows(v),
)
case(
    VL,
    "i",
    st.sampled_from([1.0, "0", None, [0], torch.tensor([0, 1])]),
    lambda v: VL.from_dense(LABELS)[v],
)

# OpenImages: label files of the official form, the class list, the descriptions, one image.
_OI = ROOT / "openimages"
_OI.mkdir()
Image.new("RGB", (4, 4)).save(_OI / "0a.jpg")
_OI_HEADER = "ImageID,Source,LabelName,Confidence\n"
(_OI / "labels.csv").write_text(_OI_HEADER + "0a,verification,/m/cat,1\n")


def _oi_file(name: str, content: str) -> Path:
    path = _OI / name
    path.write_text(content)
    return path


def _bad_label_files(name: str, score: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(
        [
            "",
            "ImageID,LabelName\n0a,/m/cat\n",
            _OI_HEADER + "0a,verification,/m/cat\n",
            _OI_HEADER + '"0a",verification,/m/cat,1\n',
            _OI_HEADER + "0a,verification,/m/cat," + score + "\n",
            _OI_HEADER + "../0a,verification,/m/cat,1\n",
            _OI_HEADER + "0a,verification,,1\n",
        ]
    ).map(lambda text: _oi_file(name, text))


for public in (D.read_openimages_labels, D.OpenImagesMultiLabel):

    def _oi(*args: Any, f: Any = public, **kwargs: Any) -> Any:
        return f(_OI, *args, **kwargs) if f is D.OpenImagesMultiLabel else f(*args, **kwargs)

    case(
        public,
        "labels_csv",
        st.one_of(BAD_PATH, _bad_label_files("bad_labels.csv", "0.5")),
        lambda v, oi=_oi: oi(v, ["/m/cat"]),
    )
    case(
        public,
        "classes",
        st.one_of(
            st.sampled_from([3, None, [], ["/m/cat", "/m/cat"], b"/m/cat", ["/m/dog"]]),
            BAD_PATH.filter(lambda v: v is not None),
            st.sampled_from(["/m/cat,Cat\n", "/m/cat\n/m/cat\n"]).map(
                lambda text: _oi_file("classes.txt", text)
            ),
        ),
        lambda v, oi=_oi: oi(_OI / "labels.csv", v),
    )
    case(
        public,
        "class_descriptions",
        st.one_of(
            BAD_PATH.filter(lambda v: v is not None),
            st.sampled_from(["/m/dog,Dog\n", "/m/cat,Cat,x\n", "/m/cat,Cat\n/m/cat,Kitten\n"]).map(
                lambda text: _oi_file("descriptions.csv", text)
            ),
        ),
        lambda v, oi=_oi: oi(_OI / "labels.csv", ["/m/cat"], class_descriptions=v),
    )
    case(
        public,
        "machine_labels_csv",
        st.one_of(
            BAD_PATH.filter(lambda v: v is not None),
            _bad_label_files("bad_machine.csv", "1.5"),
        ),
        lambda v, oi=_oi: oi(_OI / "labels.csv", ["/m/cat"], machine_labels_csv=v),
    )
    case(
        public,
        "machine_threshold",
        BAD_PROBABILITY,
        lambda v, oi=_oi: oi(_OI / "labels.csv", ["/m/cat"], machine_threshold=v),
    )
case(
    D.OpenImagesMultiLabel,
    "images_dir",
    st.sampled_from([b"oi", None, 3, ROOT / "nowhere", _TABLE]),
    lambda v: D.OpenImagesMultiLabel(v, _OI / "labels.csv", ["/m/cat"]),
)
for arg in ("transform", "loader"):
    case(
        D.OpenImagesMultiLabel,
        arg,
        st.sampled_from([3, "flip"]),
        lambda v, arg=arg: D.OpenImagesMultiLabel(_OI, _OI / "labels.csv", ["/m/cat"], **{arg: v}),
    )

case(D.describe_labels, "labels", BAD_LABELS, D.describe_labels)
case(D.describe_labels, "few", BAD_POSITIVE_INT, lambda v: D.describe_labels(LABELS, few=v))
case(D.describe_labels, "top_pairs", bad_int(0), lambda v: D.describe_labels(LABELS, top_pairs=v))
case(
    D.describe_labels,
    "classes",
    st.sampled_from([["a"], ["a", "b", "c", "d"], []]),
    lambda v: D.describe_labels(LABELS, v),
)
case(
    D.describe_labels,
    "shares",
    BAD_SHARE_PAIRS,
    lambda v: D.describe_labels(LABELS, shares=v),
)
case(
    D.describe_labels,
    "quantiles",
    BAD_SHARE_PAIRS,
    lambda v: D.describe_labels(LABELS, quantiles=v),
)
BAD_FRACTIONS = st.sampled_from(
    [(0.8, 0.3), (1.0, 0.0), (), (0.5, NAN), (-0.5, 1.5), (0.2, 0.8, 0)]
)
case(D.stratified_split, "labels", BAD_LABELS, lambda v: D.stratified_split(v, (0.5, 0.5)))
case(
    D.stratified_split,
    "fractions",
    st.one_of(BAD_FRACTIONS, st.just(None)),
    lambda v: D.stratified_split(LABELS, v),
)
case(D.stratified_split, "seed", BAD_SEED, lambda v: D.stratified_split(LABELS, (0.5, 0.5), seed=v))
case(
    D.stratified_split,
    "groups",
    st.sampled_from([[0, 1], "abcd", 3, [None] * len(LABELS), np.full(len(LABELS), NAN), [[0]]]),
    lambda v: D.stratified_split(LABELS, (0.5, 0.5), groups=v),
)
case(D.split_deviation, "labels", BAD_LABELS, lambda v: D.split_deviation(v, [[0, 1], [2, 3]]))
case(
    D.split_deviation,
    "parts",
    st.sampled_from([[], [[0, 1], [1, 2]], [[0, 9]], [[-1]]]),
    lambda v: D.split_deviation(LABELS, v),
)
case(
    D.split_deviation,
    "fractions",
    BAD_FRACTIONS,
    lambda v: D.split_deviation(LABELS, [[0, 1], [2, 3]], v),
)


# ------------------------------------------------------------------- accepted forms and oracles

# Label matrices in every accepted layout, dtype and byte order; the oracle reads the values.
ODD_LABEL_FORMS = st.sampled_from(
    [
        LABELS.astype(">i8"),  # big-endian
        LABELS[::-1][::-1],  # a view with negative strides, twice
        np.flipud(LABELS)[::-1],
        np.asfortranarray(LABELS),
        LABELS.astype(np.int8),
        LABELS.astype(np.float32),
        LABELS.astype(">f8"),
        torch.from_numpy(LABELS).t().contiguous().t(),  # non-contiguous tensor
        torch.from_numpy(LABELS).to(torch.int16),
    ]
)
ODD_KNOWN_FORMS = st.sampled_from(
    [
        KNOWN.astype(np.uint8),
        KNOWN.astype(np.uint16),
        KNOWN.astype(np.uint64),
        KNOWN == 1,
        np.flipud(KNOWN)[::-1],
        KNOWN.astype(">u4"),
    ]
)
ODD_LABELS = st.one_of(ODD_LABEL_FORMS, ODD_KNOWN_FORMS)


def _values(labels: Any) -> np.ndarray:
    """The label values, read independently of ltml."""
    a = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return a.astype(np.float64).astype(np.int64)


def _sklearn_ap(scores: np.ndarray, labels: np.ndarray) -> list[float]:
    from sklearn.metrics import average_precision_score

    out = []
    for k in range(labels.shape[1]):
        keep = labels[:, k] >= 0
        out.append(float(average_precision_score(labels[keep, k], scores[keep, k])))
    return out


def _torch_bce(labels: Any) -> float:
    y = torch.from_numpy(_values(labels)).double()
    known = y >= 0
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        LOGITS.double(), y.clamp(min=0), reduction="none"
    )
    return float(loss[known].mean())


oracle(
    ltml.class_counts,
    "label layouts",
    ODD_LABELS,
    lambda v: ltml.class_counts(v).tolist(),
    lambda v: (_values(v) == 1).sum(0).tolist(),
)
oracle(
    ltml.BCE,
    "label layouts",
    ODD_LABELS,
    lambda v: float(ltml.BCE()(LOGITS, v)),
    lambda v: pytest.approx(_torch_bce(v), rel=1e-6),
)
oracle(
    ltml.average_precision,
    "label layouts",
    ODD_LABELS,
    lambda v: ltml.average_precision(LOGITS, v).tolist(),
    lambda v: pytest.approx(_sklearn_ap(LOGITS.numpy(), _values(v)), abs=1e-12),
)
oracle(
    ltml.ClassAwareSampler,
    "label layouts",
    ODD_LABELS,
    lambda v: ltml.ClassAwareSampler(v).counts.tolist(),
    lambda v: (_values(v) == 1).sum(0).tolist(),
)
oracle(
    ltml.fit_balanced_weights,
    "label layouts",
    ODD_LABELS,
    lambda v: ltml.fit_balanced_weights(v).tolist(),
    lambda v: ltml.fit_balanced_weights(_values(v)).tolist(),  # read by numpy, as int64
)
# Integer scores above 2**53 are ranked exactly (float64 would tie neighbours).
BIG_SCORES = st.lists(st.integers(2**53, 2**62), min_size=N * C, max_size=N * C).map(
    lambda xs: np.array(xs, dtype=np.int64).reshape(N, C)
)
oracle(
    ltml.average_precision,
    "integer scores beyond 2**53",
    BIG_SCORES,
    lambda v: ltml.average_precision(v, KNOWN).tolist(),
    lambda v: pytest.approx(_sklearn_ap(v, KNOWN), abs=1e-12),
)


def _decimal_weights(counts: list[int], power: float) -> list[float]:
    getcontext().prec = 60
    w = [Decimal(max(n, 1)) ** Decimal(-power) for n in counts]
    total = sum(w)
    return [float(len(w) * x / total) for x in w]


oracle(
    ltml.WeightedBCE,
    "any power",
    st.tuples(st.lists(st.integers(0, 10**6), min_size=1, max_size=5), st.floats(0, 200)),
    lambda v: ltml.WeightedBCE(v[0], power=v[1]).weight.tolist(),
    lambda v: pytest.approx(_decimal_weights(*v), rel=1e-5, abs=1e-30),
)
oracle(
    LF.bce,
    "per-class weights as a list",
    st.lists(st.floats(0, 10), min_size=C, max_size=C),
    lambda v: float(LF.bce(LOGITS, KNOWN, v)),
    lambda v: pytest.approx(
        float(
            torch.nn.functional.binary_cross_entropy_with_logits(
                LOGITS.double(), torch.from_numpy(KNOWN).double(), torch.tensor(v).double()
            )
        ),
        rel=1e-6,
        abs=1e-7,
    ),
)
oracle(
    ltml.BCE,
    "empty batch",
    st.sampled_from([torch.long, torch.int8, torch.float32, torch.bool]),
    lambda v: float(ltml.BCE()(torch.zeros(0, C), torch.zeros(0, C, dtype=v))),
    lambda v: 0.0,
)


def _pareto(args: tuple[int, int, float]) -> tuple[bool, bool, bool, int]:
    q = D.pareto_quotas(*args).tolist()
    non_increasing = all(a >= b for a, b in itertools.pairwise(q))
    return q[0] == args[1], non_increasing, min(q) >= 1, len(q)


oracle(
    D.pareto_quotas,
    "any size",
    st.tuples(st.integers(1, 50), st.integers(1, 2**53), st.floats(0.01, 50)),
    _pareto,
    lambda v: (True, True, True, v[0]),
)
oracle(
    D.read_image_list,
    "byte-order mark",
    st.just("\ufeff2008_000001\r\n2008_000002\n".encode()),
    lambda v: D.read_image_list(_image_list_file(v)),
    lambda v: ["2008_000001", "2008_000002"],
)
oracle(
    ltml.mAPMeter,
    "groups as integer arrays",
    st.sampled_from([np.array([2, 0]), torch.tensor([2, 0]), range(0, 3, 2), (np.int64(2), 0)]),
    lambda v: sorted(ltml.mAPMeter(C, groups={"g": v}).groups["g"]),
    lambda v: [0, 2],
)

# ------------------------------------------------------------------------------------ the tests

SRC = Path(ltml.__file__).resolve().parent
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


# ------------------------------------------------------------- decoupled classifiers, schedules

FEATS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.2]])
CLF = nn.Linear(2, C)
NOT_A_LINEAR = st.sampled_from([None, "linear", 3, nn.Conv1d(1, 1, 1)])
case(
    ltml.extract_features,
    "trunk",
    st.sampled_from([None, "resnet", 3]),
    lambda v: ltml.extract_features(v, [(FEATS, KNOWN)]),
)
case(
    ltml.extract_features,
    "branch",
    st.sampled_from(["x", None, 1, "U"]),
    lambda v: ltml.extract_features(nn.Identity(), [(FEATS, KNOWN)], branch=v),
)
case(
    ltml.retrain_classifier,
    "epochs",
    BAD_POSITIVE_INT,
    lambda v: ltml.retrain_classifier(FEATS, KNOWN, epochs=v),
)
case(
    ltml.retrain_classifier,
    "batch_size",
    BAD_POSITIVE_INT,
    lambda v: ltml.retrain_classifier(FEATS, KNOWN, batch_size=v),
)
case(
    ltml.retrain_classifier,
    "seed",
    BAD_SEED,
    lambda v: ltml.retrain_classifier(FEATS, KNOWN, seed=v),
)
case(
    ltml.retrain_classifier,
    "lr",
    BAD_POSITIVE,
    lambda v: ltml.retrain_classifier(FEATS, KNOWN, lr=v),
)
case(ltml.retrain_classifier, "labels", BAD_LABELS, lambda v: ltml.retrain_classifier(FEATS, v))
case(ltml.NearestClassMean, "labels", BAD_LABELS, lambda v: ltml.NearestClassMean.fit(FEATS, v))
case(ltml.tau_normalize, "tau", BAD_NON_NEGATIVE, lambda v: ltml.tau_normalize(CLF, v))
case(ltml.tau_normalize, "classifier", NOT_A_LINEAR, ltml.tau_normalize)
case(ltml.tau_normalize, "bias", BAD_BOOL, lambda v: ltml.tau_normalize(CLF, bias=v))
case(ltml.LearnableWeightScaling, "classifier", NOT_A_LINEAR, ltml.LearnableWeightScaling)
case(
    ltml.LearnableWeightScaling,
    "bias",
    BAD_BOOL,
    lambda v: ltml.LearnableWeightScaling(CLF, bias=v),
)
case(
    ltml.learn_weight_scaling,
    "classifier",
    NOT_A_LINEAR,
    lambda v: ltml.learn_weight_scaling(v, FEATS, KNOWN),
)
case(
    ltml.learn_weight_scaling,
    "epochs",
    BAD_POSITIVE_INT,
    lambda v: ltml.learn_weight_scaling(CLF, FEATS, KNOWN, epochs=v),
)
case(
    ltml.logit_adjust,
    "tau",
    BAD_NON_NEGATIVE,
    lambda v: ltml.logit_adjust(LOGITS, [2, 2, 2], 4, tau=v),
)
case(ltml.logit_adjust, "logits", BAD_LOGITS, lambda v: ltml.logit_adjust(v, [2, 2, 2], 4))
case(
    ltml.logit_adjust,
    "num_images",
    BAD_POSITIVE_INT,
    lambda v: ltml.logit_adjust(LOGITS, [0, 0, 0], v),
)
case(
    ltml.search_tau,
    "taus",
    st.sampled_from([[], [-1.0], [math.nan], "1"]),
    lambda v: ltml.search_tau(lambda t: LOGITS, KNOWN, lambda s, y: 0.0, v),
)
case(
    ltml.search_tau,
    "metric",
    st.sampled_from([None, 3, "f1"]),
    lambda v: ltml.search_tau(lambda t: LOGITS, KNOWN, v),
)
case(
    ltml.DeferredReweightedBCE,
    "targets",
    BAD_SOFT_TARGETS,
    lambda v: ltml.DeferredReweightedBCE([1.0, 2.0, 3.0], 0)(LOGITS, v),
)
case(
    ltml.DeferredReweightedBCE,
    "start_epoch",
    BAD_SEED,
    lambda v: ltml.DeferredReweightedBCE([1.0, 2.0, 3.0], v),
)
case(
    ltml.DeferredReweightedBCE,
    "weight",
    st.sampled_from([None, "w", [[1.0]], [], [1.0, -1.0], [math.nan]]),
    lambda v: ltml.DeferredReweightedBCE(v, 0),
)
for loss, make in {
    ltml.BCE: lambda v: ltml.BCE(weight=v),
    ltml.FocalLoss: lambda v: ltml.FocalLoss(weight=v),
    ltml.AsymmetricLoss: lambda v: ltml.AsymmetricLoss(weight=v),
}.items():
    case(
        loss,
        "weight",
        st.one_of(
            bad_vector(None).filter(lambda v: v is not None and not _positive_negative_weights(v)),
            st.sampled_from([torch.ones(3, C), [1.0, -1.0], [math.nan, 1.0]]),
        ),
        make,
    )
case(
    ltml.losses.db_statistics,
    "class_counts",
    bad_counts(4),
    lambda v: ltml.losses.db_statistics(v, 4),
)
case(
    ltml.losses.db_statistics,
    "num_images",
    bad_int(2),
    lambda v: ltml.losses.db_statistics([1, 1], v),
)
case(
    ltml.losses.db_statistics,
    "kappa",
    BAD_NON_NEGATIVE,
    lambda v: ltml.losses.db_statistics([3, 1, 2], 4, kappa=v),
)
case(
    ltml.losses.db_statistics,
    "neg_scale",
    BAD_POSITIVE,
    lambda v: ltml.losses.db_statistics([3, 1, 2], 4, neg_scale=v),
)
case(
    ltml.DeferredClassAwareSampler,
    "start_epoch",
    BAD_SEED,
    lambda v: ltml.DeferredClassAwareSampler(LABELS, v),
)
case(
    ltml.DeferredClassAwareSampler,
    "labels",
    BAD_LABELS,
    lambda v: ltml.DeferredClassAwareSampler(v, 1),
)
case(
    ltml.DeferredClassAwareSampler,
    "num_draws",
    bad_int(1).filter(lambda v: v is not None and v != "db"),
    lambda v: ltml.DeferredClassAwareSampler(LABELS, 1, v),
)
E = ltml.DistributedEvalSampler
case(E, "dataset", st.sampled_from([5, None, 2.5, iter(range(3)), object()]), E)
case(E, "num_replicas", BAD_POSITIVE_INT.filter(lambda v: v is not None), lambda v: E(DATASET, v))
case(E, "rank", bad_int(0, 1).filter(lambda v: v is not None), lambda v: E(DATASET, 2, v))

# --------------------------- the field since 2021: repeat-factor sampling, Hill, SPLC, COMIC's HTB
RF = ltml.RepeatFactorSampler
BAD_THRESHOLD_FRACTION = bad_real(0.0, 1.0, low_open=True)
for public in (RF, ltml.repeat_factors):
    case(public, "labels", BAD_LABELS, public)
    case(public, "threshold", BAD_THRESHOLD_FRACTION, lambda v, f=public: f(LABELS, v))
    case(public, "num_classes", BAD_POSITIVE_INT.filter(lambda v: v is not None),
         lambda v, f=public: f(LABELS, num_classes=v))  # fmt: skip
case(RF, "num_draws", BAD_POSITIVE_INT.filter(lambda v: v is not None),
     lambda v: RF(LABELS, num_draws=v))  # fmt: skip
case(RF, "seed", BAD_SEED, lambda v: RF(LABELS, seed=v))
case(RF, "num_replicas", BAD_POSITIVE_INT.filter(lambda v: v is not None),
     lambda v: RF(LABELS, num_replicas=v))  # fmt: skip
case(RF, "rank", bad_int(0, 1).filter(lambda v: v is not None),
     lambda v: RF(LABELS, num_replicas=2, rank=v))  # fmt: skip
case(RF, "epoch", BAD_SEED, lambda v: RF(LABELS).set_epoch(v))
case(RF, "class_lists", st.sampled_from([5, [[0, -1]], [[0.5]], ("a", "b")]), RF.from_class_lists)
ROBUST = {
    ltml.HillLoss: (ltml.HillLoss, LF.hill_loss, BAD_SOFT_TARGETS, ("lamb", "margin", "gamma")),
    ltml.SPLCLoss: (ltml.SPLCLoss, LF.splc_loss, BAD_LABELS, ("margin", "gamma")),
}
for module, (make, functional, bad_targets, non_negative) in ROBUST.items():
    case(module, "reduction", bad_choice("mean", "sum", "none"), lambda v, m=make: m(reduction=v))
    case(module, "unknown", bad_choice("ignore", "negative"), lambda v, m=make: m(unknown=v))
    case(module, "logits", BAD_LOGITS, lambda v, m=make: m()(v, torch.from_numpy(LABELS)))
    case(module, "targets", bad_targets, lambda v, m=make: m()(LOGITS, v))
    case(functional, "logits", BAD_LOGITS, lambda v, f=functional: f(v, LABELS))
    case(functional, "targets", bad_targets, lambda v, f=functional: f(LOGITS, v))
    case(functional, "reduction", bad_choice("mean", "sum", "none"),
         lambda v, f=functional: f(LOGITS, LABELS, reduction=v))  # fmt: skip
    for arg in non_negative:
        case(module, arg, BAD_NON_NEGATIVE, lambda v, m=make, a=arg: m(**{a: v}))
        case(functional, arg, BAD_NON_NEGATIVE,
             lambda v, f=functional, a=arg: f(LOGITS, LABELS, **{a: v}))  # fmt: skip
BAD_TAU = bad_real(0.0, 1.0, low_open=True, high_open=True)
case(ltml.SPLCLoss, "tau", BAD_TAU, lambda v: ltml.SPLCLoss(tau=v))
case(LF.splc_loss, "tau", BAD_TAU, lambda v: LF.splc_loss(LOGITS, LABELS, tau=v))
case(ltml.SPLCLoss, "start_epoch", BAD_SEED, lambda v: ltml.SPLCLoss(start_epoch=v))
case(ltml.SPLCLoss, "epoch", BAD_SEED, lambda v: ltml.SPLCLoss().set_epoch(v))
HTB, htb = ltml.HeadTailBalancer, LF.head_tail_balance_loss
BAD_CRITERION = st.sampled_from([None, 3, "bce", torch.zeros(2)])
case(HTB, "criterion", BAD_CRITERION, HTB)
case(HTB, "gamma", BAD_NON_NEGATIVE, lambda v: HTB(ltml.BCE(), v))
case(htb, "criterion", BAD_CRITERION, lambda v: htb(LOGITS, LOGITS, LOGITS, LABELS, v))
case(htb, "gamma", BAD_NON_NEGATIVE,
     lambda v: htb(LOGITS, LOGITS, LOGITS, LABELS, ltml.BCE(), gamma=v))  # fmt: skip
for position, arg in enumerate(("head_logits", "tail_logits", "balanced_logits")):

    def _htb_with(v: Any, p: int = position) -> Any:
        logits = [LOGITS, LOGITS, LOGITS]
        logits[p] = v
        return htb(*logits, LABELS, ltml.BCE())

    def _module_with(v: Any, p: int = position) -> Any:
        logits = [LOGITS, LOGITS, LOGITS]
        logits[p] = v
        return HTB(ltml.BCE())(*logits, torch.from_numpy(LABELS))

    case(htb, arg, BAD_LOGITS, _htb_with)
    case(HTB, arg, BAD_LOGITS, _module_with)
case(htb, "targets", BAD_SOFT_TARGETS, lambda v: htb(LOGITS, LOGITS, LOGITS, v, ltml.BCE()))


# ------------------------------------------------------- v0.2 parts: the classes of issue 27
# Dtypes that cannot hold -1, casts before checks, strings as flags, documented bounds, ambiguous
# batches, corrupting inputs, obscure errors from torch / numpy / the standard library.

case(
    D.drop_labels,
    "labels",
    st.sampled_from([KNOWN.astype(bool), torch.from_numpy(KNOWN).to(torch.uint8)]),
    lambda v: D.drop_labels(v, 0.5),  # a dropped label becomes -1: True or 255
)
case(
    D.make_plt,
    "pool_labels",
    st.sampled_from([np.full((N, C), 0.5), _with(0.5), _with(2.0)]),  # were cast to int64 first
    lambda v: D.make_plt(v, 3),
)
case(D.make_plt, "pool_labels", BAD_LABELS, lambda v: D.make_plt(v, 3))
case(
    D.split_deviation,
    "parts",
    st.sampled_from(
        [
            [[0.0, 1.0], [2.0, 3.0]],  # floats were truncated
            [np.array([0.5, 1.5])],
            [np.array([True, False, True, False])],  # a mask
            ["01"],
            "01",
            3,
            [[], []],  # no image, no fractions: no share to compare with
        ]
    ),
    lambda v: D.split_deviation(LABELS, v),
)
case(
    D.split_deviation,
    "fractions",
    st.sampled_from([["0.5", "0.5"], "ab", 0.5, [True, 0.5]]),
    lambda v: D.split_deviation(LABELS, [[0, 1], [2, 3]], v),
)
case(
    D.describe_labels,
    "classes",
    st.sampled_from(["abc", b"abc", 3]),  # a string was split into characters
    lambda v: D.describe_labels(np.zeros((N, 3), dtype=np.int64), v),
)
case(
    D.LabelReport,
    "max_classes",
    st.one_of(bad_int(0).filter(lambda v: v is not None)),
    lambda v: D.describe_labels(LABELS).format(v),
)
case(
    D.LabelReport,
    "path",
    st.sampled_from([b"x.png", 3, ROOT / "missing-folder" / "x.png"]),
    lambda v: D.describe_labels(LABELS).plot(v),
)
case(
    D.read_label_table,
    "delimiter",
    st.sampled_from([";;", "", '"', "\n", 3, b","]),
    lambda v: D.read_label_table(_table_file(), delimiter=v),
)


def _table_file() -> Path:
    path = ROOT / "table.csv"
    path.write_text("image,a,b\nx.jpg,1,0\ny.jpg,0,1\n")
    return path


for public, make in {
    ltml.AsymmetricLoss: lambda **kw: ltml.AsymmetricLoss(**kw),
    LF.asymmetric_loss: lambda **kw: LF.asymmetric_loss(LOGITS, LABELS, **kw),
    ltml.MultiFocalModifierLoss: lambda **kw: ltml.MultiFocalModifierLoss([3, 1, 2], **kw),
    LF.multi_focal_modifier_loss: lambda **kw: LF.multi_focal_modifier_loss(
        LOGITS, KNOWN, [3, 1, 2], **kw
    ),
    ltml.ReflectiveLabelCorrector: lambda **kw: ltml.ReflectiveLabelCorrector([3, 1, 2], **kw),
}.items():
    case(public, "detach_focal_weight", BAD_BOOL, lambda v, m=make: m(detach_focal_weight=v))
    # float32's smallest normal number is the lowest clamp whose logarithm is finite
    case(public, "eps", st.sampled_from([1e-50, 1e-40, 1.0, 2.0]), lambda v, m=make: m(eps=v))
BAD_COOCCURRENCE = st.sampled_from(
    [
        torch.tensor([[1.0, NAN, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
        torch.tensor([[1.0, -2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
        torch.full((C, C), INF),
        torch.ones(C + 1, C + 1),
        np.ones((C, C)),
    ]
)
case(
    ltml.MultiFocalModifierLoss,
    "cooccurrence",
    BAD_COOCCURRENCE,
    lambda v: ltml.MultiFocalModifierLoss([3, 1, 2], cooccurrence=v),
)
case(
    LF.multi_focal_modifier_loss,
    "cooccurrence",
    BAD_COOCCURRENCE,
    lambda v: LF.multi_focal_modifier_loss(LOGITS, KNOWN, [3, 1, 2], cooccurrence=v),
)
case(
    ltml.ReflectiveLabelCorrector,
    "epoch",
    st.one_of(BAD_SEED, st.just("3")),
    lambda v: ltml.ReflectiveLabelCorrector([3, 1, 2]).set_epoch(v),
)
case(
    ltml.DeferredReweightedBCE,
    "logits",
    st.sampled_from([torch.zeros(N, C + 1), torch.zeros(N, C - 1)]),  # before start_epoch too
    lambda v: ltml.DeferredReweightedBCE([1.0, 2.0, 3.0], 5)(v, torch.zeros_like(v)),
)
case(
    ltml.DeferredReweightedBCE,
    "state_dict",
    st.sampled_from([{}, {"epoch_": 3}, None, 3]),
    lambda v: ltml.DeferredReweightedBCE([1.0, 2.0, 3.0], 5).load_state_dict(
        {"weight": torch.ones(C), "_extra_state": v}
    ),
)
case(
    ltml.extract_features,
    "loader",
    st.sampled_from(
        [
            [torch.zeros(2, 2)],  # two bare images: not an (image, label) pair
            [torch.zeros(3, 2)],
            [(FEATS,)],
            [(FEATS, KNOWN, KNOWN)],
            [(FEATS, torch.from_numpy(KNOWN[:2]))],  # labels of another batch size
            [(FEATS, "labels")],
            [("images", KNOWN)],
            [{"image": FEATS, "label": KNOWN}],
            [(FEATS, torch.from_numpy(KNOWN)), (FEATS, torch.ones(N, C + 1))],  # widths differ
            [],
        ]
    ),
    lambda v: ltml.extract_features(nn.Identity(), v),
)
case(
    ltml.extract_features,
    "amp",
    BAD_BOOL.filter(lambda v: v is not None),
    lambda v: ltml.extract_features(nn.Identity(), [(FEATS, KNOWN)], amp=v),
)
case(
    ltml.extract_features,
    "progress",
    BAD_BOOL,
    lambda v: ltml.extract_features(nn.Identity(), [(FEATS, KNOWN)], progress=v),
)
case(
    ltml.extract_features,
    "device",
    st.sampled_from(["gpu7", "", 3, 2.5]),
    lambda v: ltml.extract_features(nn.Identity(), [(FEATS, KNOWN)], device=v),
)
case(
    ltml.extract_features,
    "trunk",
    st.sampled_from([nn.Flatten(0), nn.Flatten(-2)]),  # no (B, D) features per image
    lambda v: ltml.extract_features(v, [(FEATS, KNOWN)]),
)
_NAN_LINEAR = nn.Linear(2, C)
with torch.no_grad():
    _NAN_LINEAR.weight[0, 0] = NAN
case(ltml.tau_normalize, "classifier", st.just(_NAN_LINEAR), ltml.tau_normalize)
case(
    ltml.logit_adjust,
    "num_images",
    st.sampled_from([1, 0, -1]),  # one image: no finite prior log-odds
    lambda v: ltml.logit_adjust(LOGITS, [1, 1, 1], v),
)
case(
    ltml.search_tau,
    "metric",
    st.sampled_from([lambda s, y: NAN, lambda s, y: "0.5", lambda s, y: None, lambda s, y: [1]]),
    lambda v: ltml.search_tau(lambda t: LOGITS, KNOWN, v, [0.0, 1.0]),
)
case(
    ltml.search_tau,
    "scores_at",
    st.sampled_from(
        [
            lambda t: LOGITS.tolist(),
            lambda t: LOGITS[:, :2],
            lambda t: LOGITS[:2],
            lambda t: torch.full((N, C), NAN),
            None,
        ]
    ),
    lambda v: ltml.search_tau(v, KNOWN, lambda s, y: 0.0, [0.0]),
)
case(
    ltml.LearnableWeightScaling,
    "features",
    st.sampled_from([torch.zeros(N, 3), torch.zeros(N), FEATS.long(), FEATS.numpy()]),
    lambda v: ltml.LearnableWeightScaling(CLF)(v),
)
case(
    ltml.learn_weight_scaling,
    "features",
    st.sampled_from([torch.zeros(N, 3), torch.zeros(N, 1)]),
    lambda v: ltml.learn_weight_scaling(CLF, v, KNOWN),
)
case(
    ltml.retrain_classifier,
    "sampler",
    st.sampled_from([[], [0, N], [-1], [0.0, 1.0], iter([0, 1]), 3, [True]]),
    lambda v: ltml.retrain_classifier(FEATS, KNOWN, sampler=v),
)
case(
    ltml.retrain_classifier,
    "loss",
    st.sampled_from([lambda z, t: z, lambda z, t: 1.0, lambda z, t: None, "bce"]),
    lambda v: ltml.retrain_classifier(FEATS, KNOWN, loss=v),
)
case(
    ltml.NearestClassMean,
    "features",
    st.sampled_from([torch.zeros(N, 3), torch.zeros(N), FEATS.long(), FEATS.numpy()]),
    lambda v: ltml.NearestClassMean.fit(FEATS, KNOWN)(v),
)
case(
    ltml.NearestClassMean,
    "centroids",
    st.sampled_from(
        [None, [[1.0, 2.0]], torch.ones(C, 2, dtype=torch.long), torch.full((C, 2), NAN)]
    ),
    lambda v: ltml.NearestClassMean(torch.zeros(2), v),
)
case(
    ltml.NearestClassMean,
    "mean",
    st.sampled_from([None, [0.0, 0.0], torch.zeros(3), torch.tensor([NAN, 0.0])]),
    lambda v: ltml.NearestClassMean(v, torch.zeros(C, 2)),
)
BAD_THRESHOLD_KINDS = st.sampled_from(
    [np.complex64(1.0), torch.tensor([1j] * C), np.array(["0.5"] * C), np.bool_(True), {0: 0.5}]
)
case(T, "threshold", BAD_THRESHOLD_KINDS, lambda v: T(LOGITS, LABELS, threshold=v))
case(ltml.mAPMeter, "threshold", BAD_THRESHOLD_KINDS, lambda v: ltml.mAPMeter(C, threshold=v))
for np_scalar in (np.float32, np.float16, np.int32, np.float64):
    oracle(
        T,
        f"numpy {np_scalar.__name__} threshold",
        st.sampled_from([-1, 0, 1]).map(np_scalar),
        lambda v: T(LOGITS, LABELS, threshold=v).as_dict(),
        lambda v: T(LOGITS, LABELS, threshold=float(v)).as_dict(),
    )
_NO_LINEAR = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
case(
    ltml.split_dual_branch,
    "example_input",
    st.sampled_from([torch.zeros(1, 5, 8, 8), torch.zeros(1, 3, 1, 1), torch.zeros(3)]),
    lambda v: ltml.split_dual_branch(_NO_LINEAR, "2", C, example_input=v),
)
case(
    ltml.mix_batch,
    "inputs",
    st.sampled_from([torch.zeros(N, 3, 0, 4), torch.zeros(N, 3, 4, 0), torch.zeros(N, 4)]),
    lambda v: ltml.mix_batch(v, torch.from_numpy(KNOWN), method="cutmix"),
)


def _public_callables() -> dict[str, Any]:
    found = {}
    modules = (
        (ltml, "ltml."),
        (D, "ltml.data."),
        (LF, "ltml.functional."),
        (ltml.losses, "ltml.losses."),
    )
    for module, prefix in modules:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found[prefix + name] = obj
    return found


def test_every_public_callable_has_cases() -> None:
    missing = [
        name
        for name, obj in _public_callables().items()
        if obj not in RESULT_TYPES and not CASES.get(obj)
    ]
    assert not missing, f"public callables without contract cases in {__file__}: {missing}"


def _raised_in_ltml(excinfo: pytest.ExceptionInfo[BaseException]) -> Path:
    tb = excinfo.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve()


ALL_CASES = [
    pytest.param(c, id=f"{getattr(obj, '__qualname__', obj)}-{c.arg}-{i}")
    for obj, cases in CASES.items()
    for i, c in enumerate(cases)
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("contract", ALL_CASES)
@SETTINGS
@given(data=st.data())
def test_bad_input_gives_a_clear_error(contract: Case, data: st.DataObject) -> None:
    value = data.draw(contract.bad, label=contract.arg)
    with pytest.raises((ValueError, TypeError, FileNotFoundError)) as excinfo:
        contract.call(value)
    where = _raised_in_ltml(excinfo)
    assert SRC in where.parents, f"{excinfo.type.__name__} escaped from {where}: {excinfo.value}"
    assert f"`{contract.arg}" in str(excinfo.value), str(excinfo.value)


ALL_ORACLES = [
    pytest.param(o, id=f"{getattr(obj, '__qualname__', obj)}-{o.what}")
    for obj, oracles in ORACLES.items()
    for o in oracles
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("accepted", ALL_ORACLES)
@SETTINGS
@given(data=st.data())
def test_accepted_input_gives_the_oracle_result(accepted: Oracle, data: st.DataObject) -> None:
    value = data.draw(accepted.odd)
    before = copy.deepcopy(value)
    assert accepted.call(value) == accepted.expected(value)
    assert _unchanged(value, before), "the call modified its input"


def _unchanged(value: Any, before: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dtype == before.dtype and torch.equal(value, before)
    if isinstance(value, np.ndarray):
        return value.dtype == before.dtype and np.array_equal(value, before)
    if isinstance(value, tuple | list):
        return len(value) == len(before) and all(map(_unchanged, value, before))
    return bool(value == before)


# ----------------------------------------------------------------------- memory and no mutation


def test_cycle_memory_follows_the_epoch_not_images_per_class() -> None:
    tracemalloc.start()
    try:
        order = list(ltml.ClassAwareSampler(LABELS, 10, mode="cycle", images_per_class=10**12))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(order) == 10
    assert all(KNOWN[i].any() for i in order)
    assert peak < 1 << 20  # bytes: an allocation proportional to 10**12 would be terabytes


def test_meter_groups_are_counted_once() -> None:
    meter = ltml.mAPMeter(C, groups={"g": [0, 1]})
    meter.update(LOGITS, KNOWN)
    ap = meter.compute()
    assert ap.groups["g"] == pytest.approx(float(ap.ap[[0, 1]].mean()))
    with pytest.raises(ValueError, match=r"`groups\['g'\]` must list each class once"):
        ltml.mAPMeter(C, groups={"g": [0, 1, 1]})


# ------------------------------------------- attention heads, text-initialised classifiers
# Registered after ALL_CASES was built, so parametrised by their own test below.

_BEFORE = {obj: len(CASES[obj]) for obj in (H, ltml.split_dual_branch, ltml.resnet_dual_branch)}
_MAP = torch.zeros(2, C, 2, 2)
_NAMES = ["a", "b", "c"]


def _encode(texts: list[str]) -> torch.Tensor:
    return torch.ones(len(texts), 4)


BAD_HEAD_FEATURES = st.sampled_from(
    [_MAP.long(), _MAP[0, 0], _MAP.numpy(), torch.zeros(2, C + 1, 2, 2), torch.zeros(2, 3, C + 1),
     torch.zeros(2, 0, C), torch.zeros(2, C, 2, 2, device="meta"), [[1.0] * C], None]
)  # fmt: skip
for _head_class in (ltml.CSRA, ltml.MLDecoder):
    _kwargs: dict[str, Any] = (
        {"embed_dim": 4, "num_heads": 2} if _head_class is ltml.MLDecoder else {}
    )
    case(_head_class, "in_features", BAD_POSITIVE_INT, lambda v, k=_head_class: k(v, C))
    case(_head_class, "num_classes", BAD_POSITIVE_INT, lambda v, k=_head_class: k(C, v))
    case(
        _head_class,
        "num_prefix_tokens",
        BAD_SEED,
        lambda v, k=_head_class, a=_kwargs: k(C, C, num_prefix_tokens=v, **a),
    )
    case(_head_class, "x", BAD_HEAD_FEATURES, lambda v, k=_head_class, a=_kwargs: k(C, C, **a)(v))
case(
    ltml.CSRA,
    "temperatures",
    st.sampled_from([(), (0.0,), (-1.0,), (NAN,), "1", 1.0, (True,), ("1",), None]),
    lambda v: ltml.CSRA(C, C, temperatures=v),
)
case(ltml.CSRA, "lam", BAD_NON_NEGATIVE, lambda v: ltml.CSRA(C, C, lam=v))
case(ltml.CSRA, "normalize", BAD_BOOL, lambda v: ltml.CSRA(C, C, normalize=v))
M = ltml.MLDecoder
case(
    M, "num_groups", bad_int(1, C).filter(lambda v: v is not None), lambda v: M(C, C, num_groups=v)
)
case(
    M, "embed_dim", BAD_POSITIVE_INT.filter(lambda v: v is not None), lambda v: M(C, C, embed_dim=v)
)
case(M, "embed_dim", st.sampled_from([5, 7, 9]), lambda v: M(C, C, embed_dim=v, num_heads=2))
case(
    M, "num_heads", BAD_POSITIVE_INT.filter(lambda v: v is not None), lambda v: M(C, C, num_heads=v)
)
case(
    M,
    "num_layers",
    BAD_POSITIVE_INT.filter(lambda v: v is not None),
    lambda v: M(C, C, num_layers=v),
)
case(
    M,
    "dim_feedforward",
    BAD_POSITIVE_INT.filter(lambda v: v is not None),
    lambda v: M(C, C, dim_feedforward=v),
)
case(M, "dropout", BAD_PROBABILITY, lambda v: M(C, C, dropout=v))
case(M, "learn_queries", BAD_BOOL, lambda v: M(C, C, learn_queries=v))
case(
    M,
    "queries",
    st.sampled_from(
        [torch.zeros(C + 1, 4), torch.zeros(0, 4), torch.zeros(C), torch.zeros(C, 4).long(),
         torch.zeros(C, 4).numpy(), torch.zeros(C, 4, device="meta"), "text"]
    ),
    lambda v: M(C, C, queries=v),
)  # fmt: skip
T_ = ltml.class_text_embeddings
case(T_, "class_names", st.sampled_from(["abc", [], ["a", "a"], 3, None]), lambda v: T_(v, _encode))
case(T_, "encode", st.sampled_from([None, 3, "clip"]), lambda v: T_(_NAMES, v))
case(
    T_,
    "encode",
    st.sampled_from([torch.zeros(2, 4), torch.zeros(3), torch.zeros(3, 4).long(), [[0.0]] * 3]),
    lambda v: T_(_NAMES, lambda texts: v),
)
case(
    T_,
    "templates",
    st.sampled_from([(), "a {}", ("no slot",), ("{} and {}",), (3,), None]),
    lambda v: T_(_NAMES, _encode, templates=v),
)
case(T_, "normalize", BAD_BOOL, lambda v: T_(_NAMES, _encode, normalize=v))
TC = ltml.text_classifier
case(
    TC,
    "embeddings",
    st.sampled_from([torch.zeros(3), torch.zeros(0, 4), torch.zeros(3, 4).long(), [[1.0]], None]),
    TC,
)
case(TC, "scale", BAD_POSITIVE, lambda v: TC(torch.ones(3, 4), scale=v))
case(TC, "bias", BAD_BOOL, lambda v: TC(torch.ones(3, 4), bias=v))
case(
    H,
    "classifier",
    st.sampled_from(["csra", 3, lambda x: x]),
    lambda v: H(BRANCH, C, C, classifier=v),
)
case(
    ltml.split_dual_branch,
    "classifier",
    st.sampled_from(["csra", 3]),
    lambda v: _split(classifier=v),
)
case(
    ltml.split_dual_branch,
    "end",
    st.sampled_from(["9", "", 3, "0"]),
    lambda v: _split(end=v, classifier=ltml.CSRA(4, C)),
)
case(ltml.split_dual_branch, "end", st.just("2"), lambda v: _split(end=v))
case(
    ltml.resnet_dual_branch,
    "classifier",
    st.sampled_from(["csra", 3]),
    lambda v: ltml.resnet_dual_branch(_resnet18(), C, classifier=v),
)


def _resnet18() -> nn.Module:
    from torchvision.models import resnet18

    return resnet18()


ATTENTION_CASES = [
    pytest.param(c, id=f"{getattr(obj, '__qualname__', obj)}-{c.arg}-{i}")
    for obj in (
        ltml.CSRA,
        ltml.MLDecoder,
        T_,
        TC,
        H,
        ltml.split_dual_branch,
        ltml.resnet_dual_branch,
    )
    for i, c in enumerate(CASES[obj])
    if i >= _BEFORE.get(obj, 0)
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("contract", ATTENTION_CASES)
@SETTINGS
@given(data=st.data())
def test_bad_input_to_the_attention_heads_gives_a_clear_error(
    contract: Case, data: st.DataObject
) -> None:
    value = data.draw(contract.bad, label=contract.arg)
    with pytest.raises((ValueError, TypeError, FileNotFoundError)) as excinfo:
        contract.call(value)
    where = _raised_in_ltml(excinfo)
    assert SRC in where.parents, f"{excinfo.type.__name__} escaped from {where}: {excinfo.value}"
    assert f"`{contract.arg}" in str(excinfo.value), str(excinfo.value)


# ------------------------------------------------------------- state, aliasing, the global RNG


def _frozen_bn_model() -> nn.Module:
    """A model without a final Linear (its width needs a dry run), BatchNorm frozen in eval."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()  # the DB-loss recipe: BatchNorm statistics frozen
    return model


@pytest.mark.parametrize("top", [True, False])
def test_split_dual_branch_keeps_each_submodule_mode(top: bool) -> None:
    model = _frozen_bn_model()
    model.training = top
    before = {name: m.training for name, m in model.named_modules()}
    trunk, head = ltml.split_dual_branch(model, "3", C, example_input=torch.zeros(1, 3, 8, 8))
    assert head.branch_u.classifier.in_features == 4  # measured by the dry run
    assert {name: m.training for name, m in model.named_modules()} == before
    assert not any(m.training for m in trunk.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_corrector_state_survives_an_empty_batch() -> None:
    corrector = ltml.ReflectiveLabelCorrector([3, 1, 2], start_epoch=0).train()
    corrector(LOGITS, torch.from_numpy(LABELS))
    before = corrector.running_mean.clone()
    out = corrector(LOGITS[:0], torch.from_numpy(LABELS[:0]))
    assert out.loss.item() == 0.0
    assert out.targets.shape == (0, C)
    assert torch.equal(corrector.running_mean, before)  # not NaN: an empty batch has no mean


def test_tau_normalize_keeps_a_zero_weight_row_at_zero() -> None:
    classifier = nn.Linear(2, C)
    with torch.no_grad():
        classifier.weight[1] = 0.0
    for tau in (0.0, 0.5, 1.0, 2.0):
        w = ltml.tau_normalize(classifier, tau).weight
        assert torch.isfinite(w).all()
        assert torch.equal(w[1], torch.zeros(2))
        norms = classifier.weight[[0, 2]].norm(dim=1, keepdim=True)
        torch.testing.assert_close(w[[0, 2]], classifier.weight[[0, 2]] / norms**tau)


def test_logit_adjust_is_finite_at_the_smallest_pool() -> None:
    out = ltml.logit_adjust(LOGITS, [0, 1, 2], 2)  # counts clamped to [1, 1]: log-odds 0
    assert torch.equal(out, LOGITS)


def test_search_tau_leaves_nan_candidates_out() -> None:
    values = iter([NAN, 0.25, 0.5, NAN])
    best, seen = ltml.search_tau(lambda t: LOGITS, KNOWN, lambda s, y: next(values), [0, 1, 2, 3])
    assert best == 2
    assert math.isnan(seen[0])
    assert seen[1:3] == [0.25, 0.5]


def test_meter_results_own_their_threshold() -> None:
    meter = ltml.mAPMeter(C, threshold=[0.0, 0.5, 1.0], top_k=1)
    meter.update(LOGITS, LABELS)
    first = meter.compute()
    first.thresholded.threshold.fill_(99.0)
    first.top_k.threshold.fill_(99.0)
    again = meter.compute()
    assert again.thresholded.threshold.tolist() == [0.0, 0.5, 1.0]
    assert again.thresholded.as_dict() != first.thresholded.as_dict()  # only in the threshold
    assert meter.threshold.tolist() == [0.0, 0.5, 1.0]


def test_extract_features_refuses_bare_image_batches() -> None:
    images = torch.randn(2, 3)  # two images: once read as (image, label)
    with pytest.raises(TypeError, match=r"`loader` must yield \(images, labels\) pairs"):
        ltml.extract_features(nn.Identity(), [images])
    features, labels = ltml.extract_features(nn.Identity(), [[images, torch.ones(2, C)]])
    assert torch.equal(features, images)
    assert labels.shape == (2, C)


def test_drop_labels_of_flags_with_zero_as_unknown_value() -> None:
    flags = KNOWN.astype(bool)
    for scheme in ("random", "per-class", "positives"):
        got = D.drop_labels(flags, 0.5, scheme=scheme, unknown_value=0, seed=3)
        want = D.drop_labels(KNOWN, 0.5, scheme=scheme, unknown_value=0, seed=3)
        assert got.dtype == np.bool_
        assert np.array_equal(got, want.astype(bool))


def test_a_truncated_image_error_names_the_file() -> None:
    path = ROOT / "truncated.jpg"
    buffer = __import__("io").BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[:300])
    table = ROOT / "images.csv"
    table.write_text("image,a\ntruncated.jpg,1\n")
    dataset = D.TableMultiLabel(table, ROOT)
    with pytest.raises(OSError, match=r"truncated\.jpg"):
        dataset[0]


def _rng_untouched(call: Callable[[], Any]) -> bool:
    torch.manual_seed(1234)
    np.random.seed(1234)  # noqa: NPY002 (numpy's global generator is what must not move)
    before = torch.random.get_rng_state(), np.random.get_state()[1].copy()  # noqa: NPY002
    call()
    after = torch.random.get_rng_state(), np.random.get_state()[1]  # noqa: NPY002
    return torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def _lws() -> Any:
    return ltml.learn_weight_scaling(CLF, FEATS, KNOWN, epochs=2, batch_size=2)


# Every part whose randomness is not its purpose, and every seeded part, leaves torch's and
# numpy's global generators alone (a training script's own draws do not move with ltml calls).
# Module constructors that initialise new classifiers (the heads) draw as torch's nn.Linear does,
# and mix_batch without a generator draws from torch's, as documented.
RNG_FREE = {
    "tau_normalize": lambda: ltml.tau_normalize(CLF, 1.0, bias=True),
    "LearnableWeightScaling": lambda: ltml.LearnableWeightScaling(CLF, bias=True)(FEATS),
    "learn_weight_scaling": _lws,
    "retrain_classifier": lambda: ltml.retrain_classifier(FEATS, KNOWN, epochs=2, batch_size=2),
    "NearestClassMean": lambda: ltml.NearestClassMean.fit(FEATS, KNOWN)(FEATS),
    "logit_adjust": lambda: ltml.logit_adjust(LOGITS, [2, 1, 3], N),
    "search_tau": lambda: ltml.search_tau(lambda t: LOGITS, KNOWN, lambda s, y: 0.0),
    "extract_features": lambda: ltml.extract_features(nn.Identity(), [(FEATS, KNOWN)]),
    "thresholded_metrics": lambda: ltml.thresholded_metrics(LOGITS, LABELS, threshold=0.0),
    "fit_thresholds": lambda: ltml.fit_thresholds(LOGITS, LABELS),
    "mAPMeter": lambda: _meter_update(),
    "ClassAwareSampler": lambda: list(ltml.ClassAwareSampler(LABELS, seed=1)),
    "BalancedSampler": lambda: list(ltml.BalancedSampler(LABELS, seed=1)),
    "DeferredClassAwareSampler": lambda: [
        list(s) for s in [ltml.DeferredClassAwareSampler(LABELS, 1, seed=1)] for _ in (0, 1)
    ],
    "PairedSampler": lambda: _paired(SequentialSampler(range(4))),
    "ReflectiveLabelCorrector": lambda: ltml.ReflectiveLabelCorrector([3, 1, 2], start_epoch=0)(
        LOGITS, torch.from_numpy(LABELS)
    ),
    "DeferredReweightedBCE": lambda: ltml.DeferredReweightedBCE([1.0, 2.0, 3.0], 0)(
        LOGITS, torch.from_numpy(KNOWN)
    ),
    "mix_batch(generator)": lambda: ltml.mix_batch(
        torch.zeros(N, 3, 4, 4), torch.from_numpy(KNOWN), generator=torch.Generator()
    ),
    "drop_labels": lambda: D.drop_labels(LABELS, 0.5, scheme="per-class"),
    "make_plt": lambda: D.make_plt(KNOWN, 3),
    "make_long_tailed": lambda: D.make_long_tailed(KNOWN, [3, 2, 1]),
    "stratified_split": lambda: D.stratified_split(LABELS, (0.5, 0.5)),
    "split_deviation": lambda: D.split_deviation(LABELS, [[0, 1], [2, 3]]),
    "describe_labels": lambda: D.describe_labels(np.ones((N, C), dtype=np.int64)),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(RNG_FREE))
def test_no_part_touches_the_global_rng(name: str) -> None:
    assert _rng_untouched(RNG_FREE[name]), f"{name} advanced a global random generator"
