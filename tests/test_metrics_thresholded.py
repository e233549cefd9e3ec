"""Thresholded metrics and fitted thresholds against scikit-learn and a literal ML-GCN code."""

from __future__ import annotations

import json
import math
import os
import threading
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import precision_recall_fscore_support

from ltml import average_precision, fit_thresholds, mAPMeter, thresholded_metrics
from ltml.metrics import _counts, _distributed, _ranking
from test_metrics import _free_port, oracle

SUMMARY = ("OP", "OR", "OF1", "CP", "CR", "CF1", "mean_f1")


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


# --- oracles ----------------------------------------------------------------------------------


def predictions(scores, threshold, top_k=None):
    """Literal rule, one image at a time: score >= threshold, and among the k highest."""
    n, c = scores.shape
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (c,))
    pred = np.zeros((n, c), dtype=bool)
    for i in range(n):
        kth = sorted(scores[i].tolist(), reverse=True)[top_k - 1] if top_k else -math.inf
        for k in range(c):
            pred[i, k] = scores[i, k] >= thr[k] and scores[i, k] >= kth
    return pred


def mlgcn(scores, targets, threshold, top_k=None):
    """ML-GCN's evaluation, transcribed (Np = 0 replaced by 1), unknown labels left out.

    CP / CR / CF1 over the classes with a positive (ML-GCN's code assumes every class has one).
    """
    scores = np.asarray(scores, dtype=np.float64)
    pred = predictions(scores, threshold, top_k)
    c = scores.shape[1]
    Nc, Np, Ng = np.zeros(c), np.zeros(c), np.zeros(c)
    for k in range(c):
        known = targets[:, k] >= 0
        t, p = targets[known, k], pred[known, k]
        Ng[k] = np.sum(t == 1)
        Np[k] = np.sum(p)
        Nc[k] = np.sum((t == 1) * p)
    # ML-GCN's code sums Np after the replacement, which lowers OP by one false "prediction"
    # per class never predicted; ltml follows the definition (ΣNc / ΣNp) and so does this line.
    OP = np.sum(Nc) / np.sum(Np) if np.sum(Np) else 0.0
    Np[Np == 0] = 1
    OR = np.sum(Nc) / np.sum(Ng)
    OF1 = (2 * OP * OR) / (OP + OR) if OP + OR else 0.0
    kept = Ng > 0
    CP = np.sum(Nc[kept] / Np[kept]) / kept.sum()
    CR = np.sum(Nc[kept] / Ng[kept]) / kept.sum()
    CF1 = (2 * CP * CR) / (CP + CR) if CP + CR else 0.0
    return {"OP": OP, "OR": OR, "OF1": OF1, "CP": CP, "CR": CR, "CF1": CF1}


def sklearn_per_class(scores, targets, threshold, top_k, zero_division):
    """Per-class precision / recall / F1 from scikit-learn over each class's known labels.

    A class with no positive gets ltml's ``empty_class="zero"`` values (recall and F1 0;
    scikit-learn would give them ``zero_division``, or fail when no label is known).
    """
    pred = predictions(np.asarray(scores, dtype=np.float64), threshold, top_k)
    rows = []
    for k in range(scores.shape[1]):
        known = targets[:, k] >= 0
        y, p = targets[known, k], pred[known, k].astype(int)
        if (y == 1).any():
            rows.append(
                precision_recall_fscore_support(
                    y, p, average="binary", zero_division=zero_division
                )[:3]
            )
        else:
            rows.append((0.0 if p.any() else zero_division, 0.0, 0.0))
    return np.array(rows, dtype=np.float64).reshape(-1, 3).T


def sklearn_micro(scores, targets, threshold, top_k, zero_division):
    """OP / OR / OF1: scikit-learn's binary scores over every known (image, class) pair."""
    pred = predictions(np.asarray(scores, dtype=np.float64), threshold, top_k)
    known = targets >= 0
    return precision_recall_fscore_support(
        targets[known], pred[known].astype(int), average="binary", zero_division=zero_division
    )[:3]


@st.composite
def problems(draw, max_n=30, max_c=6):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    # Few distinct values around 0 make ties, and ties at the threshold, common.
    values = draw(
        st.sampled_from(
            [
                st.integers(-2, 2).map(lambda v: v / 2),
                st.floats(-4, 4, allow_nan=False, width=16),
            ]
        )
    )
    scores = draw(hnp.arrays(dtype, (n, c), elements=values))
    targets = draw(hnp.arrays(np.int64, (n, c), elements=st.integers(-1, 1)))
    if draw(st.booleans()):
        threshold = float(draw(st.sampled_from([-0.5, 0.0, 0.5])))
    else:
        threshold = np.array(draw(st.lists(values, min_size=c, max_size=c)), dtype=np.float64)
    top_k = draw(st.one_of(st.none(), st.integers(1, c)))
    return scores, targets, threshold, top_k


# --- agreement with the oracles -----------------------------------------------------------------


@given(problems(), st.sampled_from(["zero", "one", "nan"]))
@settings(max_examples=120, deadline=None)
def test_matches_sklearn_per_class_and_micro(problem, zero_division):
    scores, targets, threshold, top_k = problem
    sk_zero = {"zero": 0.0, "one": 1.0, "nan": np.nan}[zero_division]
    m = quiet(
        thresholded_metrics,
        scores,
        targets,
        threshold=threshold,
        top_k=top_k,
        zero_division=zero_division,
        empty_class="zero",  # scikit-learn's convention for classes without positive
    )
    p, r, f = quiet(sklearn_per_class, scores, targets, threshold, top_k, sk_zero)
    np.testing.assert_allclose(m.precision.numpy(), p, atol=1e-12, rtol=0)
    np.testing.assert_allclose(m.recall.numpy(), r, atol=1e-12, rtol=0)
    np.testing.assert_allclose(m.f1.numpy(), f, atol=1e-12, rtol=0)
    expected_mean_f1 = np.nanmean(f) if not np.isnan(f).all() else np.nan
    np.testing.assert_allclose(m.mean_f1, expected_mean_f1, atol=1e-12, rtol=0)
    if (targets == 1).any():
        op, or_, of1 = quiet(sklearn_micro, scores, targets, threshold, top_k, sk_zero)
        np.testing.assert_allclose([m.OP, m.OR, m.OF1], [op, or_, of1], atol=1e-12, rtol=0)
    else:
        assert m.OR == 0.0


@given(problems())
@settings(max_examples=120, deadline=None)
def test_matches_literal_mlgcn(problem):
    scores, targets, threshold, top_k = problem
    has_positive = ((targets == 1).sum(0) > 0).any()
    m = quiet(thresholded_metrics, scores, targets, threshold=threshold, top_k=top_k)
    if not has_positive:
        assert np.isnan([m.CP, m.CR, m.OR]).all()
        return
    expected = quiet(mlgcn, scores, targets, threshold, top_k)
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(m, name), value, atol=1e-12, rtol=0, err_msg=name)


def test_sklearn_multilabel_averages_without_unknown_labels():
    rng = np.random.default_rng(0)
    targets = (rng.random((200, 7)) < 0.3).astype(int)
    targets[0] = 1  # every class has a positive
    scores = rng.standard_normal((200, 7)) + targets
    m = thresholded_metrics(scores, targets, threshold=0.0)
    pred = (scores >= 0).astype(int)
    micro = precision_recall_fscore_support(targets, pred, average="micro", zero_division=0)
    macro = precision_recall_fscore_support(targets, pred, average="macro", zero_division=0)
    np.testing.assert_allclose([m.OP, m.OR, m.OF1], micro[:3], atol=1e-12, rtol=0)
    np.testing.assert_allclose([m.CP, m.CR, m.mean_f1], macro[:3], atol=1e-12, rtol=0)
    # CF1 is the harmonic mean of CP and CR; scikit-learn's macro F1 is the mean of F1s.
    cf1 = 2 * macro[0] * macro[1] / (macro[0] + macro[1])
    np.testing.assert_allclose(m.CF1, cf1, atol=1e-12, rtol=0)
    assert m.mean_f1 < m.CF1


@pytest.mark.parametrize(
    ("scores", "targets", "threshold", "expected"),
    [
        # N = 1; a score exactly at the threshold is a positive prediction
        ([[0.0, -1.0]], [[1, 0]], 0.0, {"OP": 1.0, "OR": 1.0, "CP": 1.0, "CR": 1.0}),
        # all scores equal: everything predicted
        ([[0.3], [0.3], [0.3], [0.3]], [[1], [0], [0], [1]], 0.0, {"OP": 0.5, "OR": 1.0}),
        # nothing predicted: precision 0 (zero_division="zero"), F1 0
        ([[-1.0], [-2.0]], [[1], [0]], 0.0, {"OP": 0.0, "OR": 0.0, "OF1": 0.0, "CF1": 0.0}),
        # an unknown label is neither a correct nor a wrong prediction
        ([[1.0], [1.0], [-1.0]], [[1], [-1], [1]], 0.0, {"OP": 1.0, "OR": 0.5}),
    ],
)
def test_edge_cases(scores, targets, threshold, expected):
    m = quiet(thresholded_metrics, torch.tensor(scores), torch.tensor(targets), threshold=threshold)
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(m, name), value, atol=1e-12, rtol=0, err_msg=name)


def test_empty_classes_are_nan_and_left_out_with_one_warning():
    scores = torch.tensor([[1.0, 1.0, -1.0], [-1.0, 1.0, 1.0]])
    targets = torch.tensor([[1, 0, -1], [0, 0, -1]])
    with pytest.warns(UserWarning, match=r"2 class\(es\) have no positive target \(classes 1, 2\)"):
        m = thresholded_metrics(scores, targets, threshold=0.0)
    assert m.num_empty == 2
    assert torch.isnan(m.precision[1:]).all()
    assert torch.isnan(m.recall[1:]).all()
    assert (m.CP, m.CR, m.CF1, m.mean_f1) == (1.0, 1.0, 1.0, 1.0)
    np.testing.assert_allclose(m.OP, 1 / 3)  # the empty class's false positives still count
    with pytest.warns(UserWarning, match="reported as 0"):
        zero = thresholded_metrics(scores, targets, threshold=0.0, empty_class="zero")
    np.testing.assert_allclose(zero.CR, 1 / 3)


def test_top_k_keeps_ties_and_equals_no_rule_at_k_equals_c():
    scores = torch.tensor([[2.0, 1.0, 1.0, -1.0]])
    targets = torch.tensor([[0, 1, 1, 0]])
    m = quiet(thresholded_metrics, scores, targets, threshold=0.0, top_k=2)
    assert m.OR == 1.0  # both tied at second place are kept
    a = quiet(thresholded_metrics, scores, targets, threshold=0.0, top_k=4)
    b = quiet(thresholded_metrics, scores, targets, threshold=0.0)
    assert a.as_dict() | {"top_k": None} == b.as_dict()


# --- invariances: what calibration changes -------------------------------------------------------


def test_per_class_increasing_map_keeps_ap_and_moves_thresholded_metrics():
    rng = np.random.default_rng(5)
    targets = (rng.random((300, 6)) < 0.3).astype(int)
    targets[0] = 1
    logits = rng.standard_normal((300, 6)) + targets
    scale, shift = rng.uniform(0.5, 2.0, 6), rng.uniform(-1.0, 1.0, 6)
    moved = logits * scale + shift  # e.g. LWS, tau-norm, logit adjustment for a sigmoid head
    np.testing.assert_allclose(
        average_precision(moved, targets).numpy(),
        average_precision(logits, targets).numpy(),
        atol=1e-12,
    )
    before = thresholded_metrics(logits, targets, threshold=0.0)
    after = thresholded_metrics(moved, targets, threshold=0.0)
    assert (before.CF1, before.OF1) != (after.CF1, after.OF1)
    assert before.CF1 != after.CF1
    # A common positive scale keeps every threshold-0 decision.
    scaled = thresholded_metrics(logits * 3.7, targets, threshold=0.0, top_k=3)
    assert (
        scaled.as_dict() == thresholded_metrics(logits, targets, threshold=0.0, top_k=3).as_dict()
    )


# --- fitted thresholds -------------------------------------------------------------------------


def brute_force_thresholds(scores, targets):
    """Per class, every distinct known score as threshold; the highest of the best F1."""
    scores = np.asarray(scores, dtype=np.float64)
    out, best_f1 = [], []
    for k in range(scores.shape[1]):
        known = targets[:, k] >= 0
        s, y = scores[known, k], targets[known, k]
        if not (y == 1).any():
            out.append(math.inf)
            best_f1.append(math.nan)
            continue
        best = (-1.0, None)
        for t in sorted(set(s.tolist()), reverse=True):
            pred = s >= t
            f1 = 2 * np.sum(pred & (y == 1)) / (np.sum(pred) + np.sum(y == 1))
            if f1 > best[0]:
                best = (f1, t)
        out.append(best[1])
        best_f1.append(best[0])
    return np.array(out), np.array(best_f1)


@given(problems(max_n=40))
@settings(max_examples=120, deadline=None)
def test_fit_thresholds_matches_brute_force(problem):
    scores, targets, _, _ = problem
    fitted = quiet(fit_thresholds, scores, targets)
    expected, best_f1 = brute_force_thresholds(scores, targets)
    np.testing.assert_array_equal(fitted.numpy(), expected)
    m = quiet(thresholded_metrics, scores, targets, threshold=fitted)
    np.testing.assert_allclose(m.f1.numpy(), best_f1, atol=1e-12)


def test_fit_thresholds_counts_a_tie_group_whole():
    # Six images tie at 2.0, one of them positive; one positive more at 1.0. F1 is 2/8 at 2.0
    # and 4/9 at 1.0: the best threshold is 1.0 wherever the sort puts the positive in the tie
    # (counted alone it would give 2/3 at 2.0). Column j puts the positive at row j of the tie.
    scores = torch.tensor([[2.0] * 6] * 6 + [[1.0] * 6])
    targets = torch.cat([torch.eye(6, dtype=torch.int64), torch.ones(1, 6, dtype=torch.int64)])
    assert fit_thresholds(scores, targets).tolist() == [1.0] * 6
    assert brute_force_thresholds(scores.numpy(), targets.numpy())[0].tolist() == [1.0] * 6


def test_fit_thresholds_warns_for_classes_without_positive():
    with pytest.warns(UserWarning, match=r"1 class\(es\) have no positive target \(classes 1\)"):
        thr = fit_thresholds(torch.tensor([[0.3, 0.2]]), torch.tensor([[1, 0]]))
    assert thr.tolist() == [pytest.approx(0.3), math.inf]
    m = thresholded_metrics(torch.tensor([[0.3, 0.2]]), torch.tensor([[1, 1]]), threshold=thr)
    saved = json.loads(json.dumps(m.as_dict(), allow_nan=False))
    assert [float(x) for x in saved["threshold"]] == thr.tolist()


# --- the meter -----------------------------------------------------------------------------------


@given(data=st.data(), problem=problems(max_n=40))
@settings(max_examples=60, deadline=None)
def test_meter_equals_functions_for_any_batch_split(data, problem):
    scores, targets, threshold, top_k = problem
    n, c = scores.shape
    groups = {"first": [0], "all": list(range(c))}
    meter = mAPMeter(c, groups=groups, threshold=threshold, top_k=top_k)
    val = mAPMeter(c)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
        meter.update(scores[lo:hi], targets[lo:hi])
        val.update(scores[lo:hi], targets[lo:hi])
    result = quiet(meter.compute)
    expected = quiet(thresholded_metrics, scores, targets, threshold=threshold)
    assert result.thresholded.as_dict() | {"groups": {}} == expected.as_dict()
    for name in SUMMARY:
        np.testing.assert_equal(
            getattr(result.thresholded.groups["all"], name), getattr(expected, name)
        )
    first_threshold = threshold if np.ndim(threshold) == 0 else threshold[:1]
    first = quiet(thresholded_metrics, scores[:, :1], targets[:, :1], threshold=first_threshold)
    for name in SUMMARY:
        got = getattr(result.thresholded.groups["first"], name)
        np.testing.assert_equal(got, getattr(first, name))
    if top_k is None:
        assert result.top_k is None
    else:
        top = quiet(thresholded_metrics, scores, targets, threshold=threshold, top_k=top_k)
        assert result.top_k.as_dict() | {"groups": {}} == top.as_dict()
    fitted = quiet(val.fit_thresholds).numpy()
    np.testing.assert_array_equal(fitted, quiet(fit_thresholds, scores, targets).numpy())


def test_meter_needs_to_be_told_what_the_scores_are():
    scores = torch.tensor([[0.9, 0.2], [0.4, 0.7]])
    targets = torch.tensor([[1, 0], [0, 1]])
    plain = mAPMeter(2)
    plain.update(scores, targets)
    assert plain.compute().thresholded is None  # no threshold guessed from the values
    probs = mAPMeter(2, scores="probs", top_k=1)
    probs.update(scores, targets)
    result = probs.compute()
    assert result.thresholded.threshold.tolist() == [0.5, 0.5]
    assert result.thresholded.CF1 == 1.0
    assert str(result) == "mAP 100.00  CF1 100.00  OF1 100.00  CF1@1 100.00  OF1@1 100.00"
    logits = mAPMeter(2, scores="logits")
    logits.update(scores, targets)
    assert logits.compute().thresholded.OP == 0.5  # every positive score passes 0
    text = json.dumps(result.as_dict(), allow_nan=False)
    assert json.loads(text)["thresholded"]["CF1"] == 1.0


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"threshold": [0.0, 0.5]}, ValueError, r"`threshold` .* one value per class \(3\), got 2"),
        ({"threshold": [0.0, math.nan, 0.0]}, ValueError, "`threshold` must not be NaN, got 1"),
        ({"threshold": math.nan}, ValueError, "`threshold` must not be NaN"),
        ({"threshold": np.zeros((3, 1))}, TypeError, r"`threshold` must be .* got \(3, 1\)"),
        ({"threshold": "0.5"}, TypeError, "`threshold` must be a number .* got str"),
        ({"threshold": [0.5, "a", 0.0]}, TypeError, "`threshold` must be a number .* got list"),
        ({"threshold": True}, TypeError, "`threshold` must be a number .* got booleans"),
        ({"threshold": 0.0, "top_k": 0}, ValueError, r"`top_k` must be an integer .*, got 0"),
        ({"threshold": 0.0, "top_k": 4}, ValueError, r"`top_k` .* got 4"),
        ({"threshold": 0.0, "top_k": 2.0}, TypeError, r"`top_k` must be an integer, got"),
        ({"threshold": 0.0, "zero_division": 0}, ValueError, "`zero_division` must be"),
        ({"threshold": 0.0, "empty_class": "skip"}, ValueError, "`empty_class` must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    scores, targets = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(error, match=match):
        thresholded_metrics(scores, targets, **kwargs)
    meter_kwargs = {k: v for k, v in kwargs.items() if k != "threshold"} | {
        "threshold": kwargs["threshold"]
    }
    with pytest.raises(error, match=match):
        mAPMeter(3, **meter_kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": "probabilities"}, "`scores` must be one of None, 'logits', 'probs'"),
        ({"top_k": 2}, "`top_k` needs a threshold"),
    ],
)
def test_meter_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mAPMeter(3, **kwargs)


def test_probs_meter_rejects_logits_and_stores_nothing():
    meter = mAPMeter(2, scores="probs")
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\] .* got values in \[-1, 2\]"):
        meter.update(torch.tensor([[2.0, -1.0]]), torch.tensor([[1, 0]]))
    assert meter.num_stored == 0


def test_probs_meter_accepts_zero_and_one_and_refuses_either_side_alone():
    meter = mAPMeter(2, scores="probs")
    meter.update(torch.tensor([[0.0, 1.0]]), torch.tensor([[0, 1]]))
    for bad, seen in [([[-0.5, 0.5]], r"\[-0.5, 0.5\]"), ([[0.5, 1.5]], r"\[0.5, 1.5\]")]:
        with pytest.raises(ValueError, match=rf"probabilities in \[0, 1\] .* got values in {seen}"):
            meter.update(torch.tensor(bad), torch.tensor([[0, 1]]))
    assert meter.num_stored == 1


def test_fit_thresholds_rejects_bad_input():
    with pytest.raises(ValueError, match="`metric` must be one of 'f1', got str 'ap'"):
        fit_thresholds(torch.zeros(2, 2), torch.zeros(2, 2), metric="ap")
    with pytest.raises(ValueError, match="`scores` must be finite"):
        fit_thresholds(torch.tensor([[math.nan]]), torch.zeros(1, 1))


# --- DDP: what each process stored, whatever it is -------------------------------------------


def _meter():
    return mAPMeter(3, groups={"first": [0]}, scores="logits", top_k=2)


def _evaluate(meter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return meter.compute().as_dict(), meter.fit_thresholds().tolist()


def _ddp_worker(rank, world, port, cases, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for case, shares in cases.items():  # one process group for every case: spawns are slow
            meter = _meter()
            for scores, targets in shares[rank]:
                meter.update(scores, targets)
            queue.put((case, rank, *_evaluate(meter)))
    finally:
        dist.destroy_process_group()


def _batches(rng, n, dtype, known="dense"):
    """Batches of 5 rows; ``known``: "dense" (about 2/3 of the labels known: stored dense),
    "sparse" (about 1/10: stored as known entries) or "mixed" (alternately)."""
    if dtype is None:  # a process that stored nothing
        return []
    scores = torch.from_numpy(rng.integers(-3, 3, (n, 3)).astype(np.float32)).to(dtype)
    targets = torch.from_numpy(rng.integers(-1, 2, (n, 3)))
    unknown = torch.from_numpy(rng.random((n, 3)) < 0.85)
    batches = []
    for b, i in enumerate(range(0, n, 5)):
        y = targets[i : i + 5]
        if known == "sparse" or (known == "mixed" and b % 2):
            y = y.masked_fill(unknown[i : i + 5] | (y == -1), -1)
        batches.append((scores[i : i + 5], y))
    return batches


def _evaluate_share(share):
    meter = _meter()
    for scores, targets in share:
        meter.update(scores, targets)
    return _evaluate(meter)


_DDP_DTYPES = {
    "different dtypes": (torch.float16, torch.float64),
    "bfloat16 and an empty process": (torch.bfloat16, None),
    "all empty": (None, None),
    "known entries and dense rows": ((torch.float32, "sparse"), (torch.float16, "mixed")),
    "known entries beside an empty process": (None, (torch.int16, "sparse")),
}
_DDP_DTYPES_4 = {
    "four mixed": (
        (torch.float32, "mixed"),
        None,
        (torch.float64, "sparse"),
        torch.bfloat16,
    ),
    "four sparse, integers": tuple((torch.int32, "sparse") for _ in range(4)),
    "four empty": (None,) * 4,
}


def _ddp_cases(dtypes, first=17):
    """Rank r stores ``first + 9 r`` rows in batches of 5; a rank's dtype may come as a pair
    ``(dtype, known)``, ``known`` as in ``_batches``."""
    rng = np.random.default_rng(6)
    return {
        case: [
            _batches(rng, first + 9 * r, *(d if isinstance(d, tuple) else (d,)))
            for r, d in enumerate(ranks)
        ]
        for case, ranks in dtypes.items()
    }


def _check_gathered(cases, results):
    """Every rank's (case, rank, result, thresholds) equals one meter over every share."""
    assert len(results) == sum(len(shares) for shares in cases.values())
    for case, shares in cases.items():
        expected, expected_thresholds = _evaluate_share([b for share in shares for b in share])
        for got_case, _, got, thresholds in results:
            if got_case == case:
                assert got == expected, case
                assert thresholds == expected_thresholds, case
        if all(not share for share in shares):
            assert expected["map"] is None
            assert expected["thresholded"]["OR"] is None
        else:
            scores = torch.cat([s.double() for share in shares for s, _ in share])
            targets = torch.cat([t for share in shares for _, t in share])
            ap = [math.nan if v is None else v for v in expected["ap"]]  # JSON has no NaN
            assert ap == pytest.approx(oracle(scores.numpy(), targets.numpy()), nan_ok=True)


@pytest.mark.parametrize("world", [2, 4])
def test_ddp_shards_classes_and_equals_one_process(world):
    # 3 classes: 2 processes get shares of 1 and 2 classes, 4 get 0, 1, 1 and 1.
    cases = _ddp_cases(_DDP_DTYPES if world == 2 else _DDP_DTYPES_4)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(target=_ddp_worker, args=(r, world, port, cases, queue)) for r in range(world)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=180) for _ in range(world * len(cases))]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    _check_gathered(cases, results)


class _ThreadGroup:
    """The calls of ``torch.distributed`` the meter makes, for ranks that are threads.

    ``all_gather`` gives every rank what every rank sent and, as gloo, refuses tensors of
    another shape or dtype than the outputs. The meter runs in-process, where mutation
    testing follows it (it cannot follow spawned processes).
    """

    def __init__(self, world):
        self.world = world
        self._sent = [None] * world
        self._barrier = threading.Barrier(world, timeout=60)
        self._local = threading.local()

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_world_size(self):
        return self.world

    def get_backend(self):
        return "gloo"

    def get_rank(self):
        return self._local.rank

    def all_to_all_single(self, output, tensor, output_split_sizes, input_split_sizes):
        # Every rank sends its r-th piece to rank r; as gloo, the sizes must agree.
        assert output.dim() == tensor.dim() == 1
        self._sent[self._local.rank] = (tensor.clone(), list(input_split_sizes))
        self._barrier.wait()
        me, row = self._local.rank, 0
        for src, size in enumerate(output_split_sizes):
            sent, splits = self._sent[src]
            if (splits[me], sent.dtype) != (size, output.dtype):
                raise RuntimeError(f"all_to_all: {splits[me]} {sent.dtype} into {size}")
            start = sum(splits[:me])
            output[row : row + size] = sent[start : start + size]
            row += size
        self._barrier.wait()

    def all_gather(self, outputs, tensor):
        assert len(outputs) == self.world
        self._sent[self._local.rank] = tensor.clone()
        self._barrier.wait()
        for out, sent in zip(outputs, self._sent, strict=True):
            if (out.shape, out.dtype) != (sent.shape, sent.dtype):
                raise RuntimeError(f"all_gather: {sent.shape} {sent.dtype} into {out.shape}")
            out.copy_(sent)
        self._barrier.wait()

    def run(self, fn):
        """``fn(rank)`` on every rank at once; the results by rank."""
        results, errors = [None] * self.world, []

        def rank_main(rank):
            self._local.rank = rank
            try:
                results[rank] = fn(rank)
            except BaseException as e:  # re-raised below, in the test's thread
                errors.append(e)
                self._barrier.abort()  # the other ranks would wait for this one forever

        threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(self.world)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results


@pytest.mark.parametrize(
    ("dtypes", "first"),
    [
        (_DDP_DTYPES, 17),
        (
            {
                "three ranks, one empty": (torch.float16, None, torch.float32),
                "integers and floats": (torch.int16, torch.bfloat16, torch.float64),
                "integers": (None, torch.int32, torch.int64),  # int32 is stored as int64
            },
            3,  # rank 0 stores a single batch
        ),
        (
            {
                "a single row beside an empty rank": (torch.float32, None),
                "float16 after an empty rank": (None, torch.float16),
            },
            1,  # rank 0 stores one row, rank 1 ten
        ),
        (_DDP_DTYPES_4, 3),  # a rank with no class (3 classes, 4 ranks)
    ],
    ids=["two ranks", "three ranks", "one row", "four ranks"],
)
def test_gather_with_ranks_as_threads(monkeypatch, dtypes, first):
    cases = _ddp_cases(dtypes, first)
    group = _ThreadGroup(len(next(iter(dtypes.values()))))
    results = []
    with monkeypatch.context() as patch:
        patch.setattr(_distributed, "dist", group)
        for case, shares in cases.items():
            evaluated = group.run(lambda rank, shares=shares: _evaluate_share(shares[rank]))
            results += [(case, rank, *r) for rank, r in enumerate(evaluated)]
    _check_gathered(cases, results)  # against one meter over everything, in one process


@pytest.mark.parametrize(
    ("ranks", "widest"),
    [
        (((None, 0), (torch.float16, 7)), torch.float32),  # an empty rank widens nothing
        (((torch.float32, 1), (None, 0)), torch.float32),
        (((torch.bfloat16, 6), (torch.float16, 2)), torch.float32),
        (((torch.float16, 3), (torch.float64, 8)), torch.float64),
        (((torch.int8, 2), (None, 0), (torch.int32, 4)), torch.int64),
        (((torch.int16, 5), (torch.bfloat16, 3)), torch.float64),
    ],
)
def test_each_rank_gets_its_classes_of_all_rows_in_the_widest_dtype(monkeypatch, ranks, widest):
    # The class docstring: each process receives its classes' columns of every process's rows,
    # in one dtype that ranks them all exactly, the widest of float32, float64 and int64
    # (float64 where integers meet floats), whatever a process with nothing stored would have
    # sent; targets stay int8.
    rng = np.random.default_rng(8)
    shares = [_batches(rng, n, dtype) for dtype, n in ranks]
    group = _ThreadGroup(len(ranks))

    def blocks(rank):
        meter = _meter()
        for scores, targets in shares[rank]:
            meter.update(scores, targets)
        share, first = meter._share()
        return (
            first,
            [(b.dtype, b.tolist()) for b in share.scores],
            [(b.dtype, b.tolist()) for b in share.targets],
        )

    with monkeypatch.context() as patch:
        patch.setattr(_distributed, "dist", group)
        gathered = group.run(blocks)
    rows = [
        [torch.cat(columns) for columns in zip(*share, strict=True)] for share in shares if share
    ]
    bounds = [3 * r // len(ranks) for r in range(len(ranks) + 1)]
    for rank, (first, scores, targets) in enumerate(gathered):
        a, b = bounds[rank], bounds[rank + 1]
        assert first == a
        if a == b:  # no class: nothing kept
            assert scores == targets == []
            continue
        # One block per rank with rows, in rank order: its columns of this rank's classes.
        assert scores == [(widest, s[:, a:b].to(widest).tolist()) for s, _ in rows]
        assert targets == [(torch.int8, y[:, a:b].tolist()) for _, y in rows]


def test_scores_that_require_grad_are_accepted():
    logits = torch.tensor([[1.0, -1.0], [-0.5, 2.0], [0.5, 0.1]], requires_grad=True)
    targets = torch.tensor([[1, 0], [0, 1], [1, 1]])
    plain = logits.detach()
    assert torch.equal(average_precision(logits, targets), average_precision(plain, targets))
    assert torch.equal(fit_thresholds(logits, targets), fit_thresholds(plain, targets))
    got = thresholded_metrics(logits, targets, threshold=0.0, top_k=1).as_dict()
    assert got == thresholded_metrics(plain, targets, threshold=0.0, top_k=1).as_dict()


# --- exact contracts: warning text, JSON form, empty inputs, precision ---------------------------


def _empty_class_problem(fn, num_empty, empty_class):
    """12 classes of which the first ``num_empty`` have no positive target, and ``fn``'s options."""
    scores = torch.tensor([[0.9] * 12, [0.1] * 12, [0.5] * 12])
    targets = torch.zeros((3, 12), dtype=torch.int64)
    targets[0, num_empty:] = 1
    if fn is fit_thresholds:
        return scores, targets, {}
    if fn is average_precision:
        return scores, targets, {"empty_class": empty_class}
    return scores, targets, {"threshold": 0.5, "empty_class": empty_class}


@pytest.mark.parametrize(
    ("fn", "what"),
    [
        (average_precision, "AP is"),
        (thresholded_metrics, "per-class metrics are"),
        (fit_thresholds, "threshold is"),
    ],
)
@pytest.mark.parametrize(
    ("num_empty", "shown"),
    [(10, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"), (11, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...")],
)
@pytest.mark.parametrize("empty_class", ["nan", "zero"])
def test_empty_class_warning_text(fn, what, num_empty, shown, empty_class):
    # Where it points: test_metrics.py's test_warning_points_at_the_callers_line (a test that a
    # mutation run must leave out, unlike this one).
    if fn is fit_thresholds:
        empty_class = "nan"  # a class with no positive gets an infinite threshold
    value = "NaN and left out of means" if empty_class == "nan" else "0"
    expected = (
        f"{num_empty} class(es) have no positive target (classes {shown}): their {what} "
        f"undefined and reported as {value} (empty_class='{empty_class}')"
    )
    scores, targets, kwargs = _empty_class_problem(fn, num_empty, empty_class)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(scores, targets, **kwargs)
    assert [str(w.message) for w in caught] == [expected]
    assert [w.category for w in caught] == [UserWarning]


def test_as_dict_keys_and_values_exactly():
    scores = torch.tensor([[0.9, 0.2, 0.7, 0.4], [0.1, 0.8, 0.3, 0.6], [0.6, 0.5, 0.2, 0.1]])
    targets = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0]])
    threshold = [0.5, math.inf, 0.3, -math.inf]
    m = quiet(thresholded_metrics, scores, targets, threshold=threshold, top_k=3)
    d = json.loads(json.dumps(m.as_dict(), allow_nan=False))
    assert list(d) == [
        *SUMMARY,
        "groups",
        "precision",
        "recall",
        "f1",
        "threshold",
        "top_k",
        "num_empty",
    ]
    assert d["groups"] == {}
    # scikit-learn on the same decisions (threshold and top 3, ties kept), written by hand here
    y = targets.numpy()
    pred = (scores.numpy() >= np.array(threshold)) & (
        scores.numpy() >= np.sort(scores.numpy(), axis=1)[:, -3:-2]
    )
    p, r, f, _ = precision_recall_fscore_support(y, pred.astype(int), average=None, zero_division=0)
    assert d["precision"] == [p[0], p[1], None, p[3]]  # class 2: no positive, NaN -> None
    assert d["recall"] == [r[0], r[1], None, r[3]]
    assert d["f1"] == [f[0], f[1], None, f[3]]
    assert d["threshold"] == [0.5, "inf", 0.3, "-inf"]  # 0.3 kept in float64
    assert d["top_k"] == 3
    assert d["num_empty"] == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.int64, torch.float32])
def test_row_chunks_and_score_dtypes_match_sklearn(monkeypatch, dtype):

    monkeypatch.setattr(_counts, "CHUNK_ELEMENTS", 4)  # 3 classes: rows counted one at a time
    rng = np.random.default_rng(5)
    scores = rng.integers(-3, 4, (11, 3))  # exact in every dtype, with ties
    targets = rng.integers(0, 2, (11, 3))
    targets[0] = 1
    k = 2
    # Brute force: at least 0.5, and fewer than k classes of the row score strictly higher.
    higher = (scores[:, None, :] > scores[:, :, None]).sum(2)
    pred = ((scores >= 0.5) & (higher < k)).astype(int)
    p, r, f, _ = precision_recall_fscore_support(targets, pred, average=None, zero_division=0)
    m = thresholded_metrics(torch.from_numpy(scores).to(dtype), targets, threshold=0.5, top_k=k)
    np.testing.assert_allclose(m.precision.numpy(), p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.recall.numpy(), r, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.f1.numpy(), f, rtol=0, atol=1e-12)


def test_cf1_is_nan_when_no_class_has_a_positive():
    m = quiet(thresholded_metrics, torch.ones(2, 2), torch.zeros(2, 2), threshold=0.0)
    assert math.isnan(m.CP)
    assert math.isnan(m.CR)
    assert math.isnan(m.CF1)


def test_summary_str_lists_percentages_in_table_order():
    from ltml.functional.metrics import ThresholdedSummary

    s = ThresholdedSummary(OP=0.1, OR=0.2, OF1=0.3, CP=0.4, CR=0.5, CF1=0.123456, mean_f1=0.7)
    assert str(s) == "CP 40.00  CR 50.00  CF1 12.35  OP 10.00  OR 20.00  OF1 30.00"


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_k_torch_path_of_other_devices_matches_sklearn(monkeypatch, k):
    # Off the CPU the k-th largest score comes from torch.topk: force that path on the CPU.
    monkeypatch.setattr(_ranking, "numpy_sorts", lambda x: False)
    rng = np.random.default_rng(6)
    scores = rng.integers(-3, 4, (40, 6)).astype(np.float32)  # ties at the k-th place
    targets = rng.integers(-1, 2, (40, 6))
    m = quiet(thresholded_metrics, scores, targets, threshold=-1.0, top_k=k, empty_class="zero")
    p, r, f = quiet(sklearn_per_class, scores, targets, -1.0, k, 0.0)
    np.testing.assert_allclose(m.precision.numpy(), p, atol=1e-12, rtol=0)
    np.testing.assert_allclose(m.recall.numpy(), r, atol=1e-12, rtol=0)
    np.testing.assert_allclose(m.f1.numpy(), f, atol=1e-12, rtol=0)


def test_counts_stay_exact_beyond_what_float32_holds():
    # A meter's stored batches are counted one block at a time: 16 blocks of 2**20 rows and one
    # of 3 make 2**24 + 3 predictions of one class, which float32 would round to 2**24 + 4.
    block, labels = torch.ones(1 << 20, 1), torch.ones(1 << 20, 1, dtype=torch.int64)
    counts = _counts.threshold_counts(
        [block] * 16 + [block[:3]], [labels] * 16 + [labels[:3]], torch.zeros(1), None
    )
    assert counts.dtype == torch.int64
    assert counts.flatten().tolist() == [2**24 + 3] * 3


def test_results_stay_on_the_device_of_the_scores():
    # Meta tensors have a device and no data: a tensor made on the CPU on the way would fail
    # the computation, as it would on CUDA. (The AP itself needs data-dependent shapes.)
    s = torch.empty(5, 4, device="meta")
    y = torch.empty(5, 4, dtype=torch.int64, device="meta")
    counts = _counts.threshold_counts([s], [y], torch.zeros(4, dtype=torch.float64), 3)
    thresholds = _ranking.fit_thresholds_of_blocks([s], [y])
    no_rows = [
        _ranking.average_precision_of_blocks([s[:0]], [y[:0]]),
        _ranking.fit_thresholds_of_blocks([s[:0]], [y[:0]]),
    ]
    for result, dtype, shape in [(counts, torch.int64, (3, 4)), (thresholds, torch.float64, (4,))]:
        assert (result.device.type, result.dtype, result.shape) == ("meta", dtype, shape)
    for result in no_rows:
        assert (result.device.type, result.dtype, result.shape) == ("meta", torch.float64, (4,))


# --- the small-split guard: min_positives / fallback ------------------------------------------


def _few_positives_problem():
    """Class k has k + 1 positives among 12 images (class 0: one), scores with ties."""
    rng = np.random.default_rng(21)
    scores = torch.from_numpy(rng.integers(-6, 6, (12, 6)).astype(np.float32))
    targets = torch.zeros((12, 6), dtype=torch.int64)
    for k in range(6):
        targets[rng.permutation(12)[: k + 1], k] = 1
    targets[0, 5] = -1 if targets[0, 5] == 0 else targets[0, 5]
    return scores, targets


@pytest.mark.parametrize("min_positives", [1, 2, 3, 5, 7])
def test_classes_with_few_positives_keep_the_fallback(min_positives):
    scores, targets = _few_positives_problem()
    fitted = fit_thresholds(scores, targets)
    fallback = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64)
    got = fit_thresholds(scores, targets, min_positives=min_positives, fallback=fallback)
    positives = (targets == 1).sum(0)
    for k in range(6):  # literally: the fallback below min_positives, else the fit unchanged
        assert got[k].item() == (fallback[k] if positives[k] < min_positives else fitted[k]).item()
    scalar = fit_thresholds(scores, targets, min_positives=min_positives, fallback=0.25)
    assert scalar.tolist() == torch.where(positives < min_positives, 0.25, fitted).tolist()


def test_fallback_replaces_the_infinite_threshold_of_a_class_without_positive():
    scores = torch.tensor([[0.25, 0.75], [0.125, 0.5]])
    targets = torch.tensor([[0, 1], [0, 0]])
    with pytest.warns(UserWarning, match=r"1 class\(es\) have no positive"):
        assert fit_thresholds(scores, targets).tolist() == [math.inf, 0.75]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing undefined left: no warning
        assert fit_thresholds(scores, targets, fallback=0.0).tolist() == [0.0, 0.75]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_positives": 2}, ValueError, r"`fallback` is needed with `min_positives` > 1"),
        ({"min_positives": 0, "fallback": 0.0}, ValueError, "`min_positives` must be"),
        ({"min_positives": 2.0, "fallback": 0.0}, TypeError, "`min_positives` must be an int"),
        ({"fallback": math.nan}, ValueError, "`fallback` must not be NaN"),
        ({"fallback": [0.0, 1.0]}, ValueError, r"`fallback` must be a number or hold one value"),
        ({"fallback": True}, TypeError, "`fallback` must be a number"),
    ],
)
def test_guard_arguments_are_checked(kwargs, error, match):
    scores, targets = _few_positives_problem()
    with pytest.raises(error, match=match):
        fit_thresholds(scores, targets, **kwargs)


def test_meter_keeps_its_threshold_below_five_positives_by_default():
    scores, targets = _few_positives_problem()
    fitted = fit_thresholds(scores, targets)
    positives = (targets == 1).sum(0)
    for kwargs, fallback in (({"scores": "logits"}, 0.0), ({"scores": "probs"}, 0.5)):
        s = torch.sigmoid(scores) if kwargs["scores"] == "probs" else scores
        meter = mAPMeter(6, **kwargs)
        meter.update(s, targets)
        expected = fit_thresholds(s, targets, min_positives=5, fallback=fallback)
        assert meter.fit_thresholds().tolist() == expected.tolist()
        assert (positives < 5).any()  # both kinds of class
        assert (positives >= 5).any()
        got = meter.fit_thresholds(min_positives=1)
        assert got.tolist() == fit_thresholds(s, targets, fallback=fallback).tolist()
    vector = torch.arange(6, dtype=torch.float64)  # a meter's per-class threshold is kept
    meter = mAPMeter(6, threshold=vector)
    meter.update(scores, targets)
    assert meter.fit_thresholds(min_positives=3).tolist() == (
        torch.where(positives < 3, vector, fitted).tolist()
    )


def test_meter_without_threshold_fits_every_class_and_refuses_a_guard():
    scores, targets = _few_positives_problem()
    meter = mAPMeter(6)
    meter.update(scores, targets)
    assert meter.fit_thresholds().tolist() == fit_thresholds(scores, targets).tolist()
    with pytest.raises(ValueError, match=r"`min_positives` > 1 \(got 2\) needs a threshold"):
        meter.fit_thresholds(min_positives=2)
    with pytest.raises(ValueError, match="`min_positives` must be"):
        meter.fit_thresholds(min_positives=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("threshold", [0.7, 0.9, 0.1, 1 / 3, -0.7])
def test_threshold_compares_in_float64_when_the_scores_dtype_rounds_it(dtype, threshold):
    """``score >= threshold`` holds for the float64 threshold, not its rounding to the scores'.

    0.7 rounds *down* in float32 (to 0.699999988): a float32 score equal to that rounded value
    is below 0.7 and must not be predicted; 0.1 rounds *up* (0.100000001): a score equal to it
    is above 0.1 and must be.
    """
    rounded = torch.tensor(threshold, dtype=torch.float64).to(dtype)
    below, above = torch.nextafter(rounded, -rounded.new_tensor(math.inf)), rounded
    scores = torch.stack([below, rounded, above, rounded]).reshape(4, 1)
    targets = torch.ones(4, 1, dtype=torch.int64)
    expected = (scores.to(torch.float64) >= threshold).flatten()  # the documented rule
    assert expected[1] == (rounded.to(torch.float64) >= threshold)
    share = expected.sum().item() / 4  # OR: the predicted share of the four positives
    m = thresholded_metrics(scores, targets, threshold=threshold)
    assert share == m.OR
    meter = mAPMeter(1, threshold=threshold)
    meter.update(scores, targets)
    assert share == meter.compute().thresholded.OR
    # the rounded-down cases are the ones a helper returning the rounded value would miscount
    if rounded.to(torch.float64) < threshold:
        assert not bool(expected[1])
