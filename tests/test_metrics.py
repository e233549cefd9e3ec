"""average_precision and mAPMeter against scikit-learn's average_precision_score as the oracle."""

from __future__ import annotations

import inspect
import json
import math
import os
import pickle
import socket
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import average_precision_score

import ltml
import ltml.functional.metrics as F
from ltml import MAPResult, average_precision, class_counts, class_groups, mAPMeter
from ltml.metrics import _entries, _ranking, _share


def oracle(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """scikit-learn per class on the known labels; NaN where a class has no known positive."""
    scores = np.asarray(scores, dtype=np.float64)
    out = []
    for k in range(scores.shape[1]):
        known = targets[:, k] >= 0
        y, s = targets[known, k], scores[known, k]
        out.append(average_precision_score(y, s) if (y == 1).any() else math.nan)
    return np.array(out)


def quiet_ap(scores, targets, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return average_precision(scores, targets, **kw)


def assert_matches_oracle(scores, targets, atol=1e-6):
    np.testing.assert_allclose(
        quiet_ap(scores, targets).numpy(), oracle(scores, targets), atol=atol, rtol=0
    )


def assert_points_at(warning, filename, line):
    """Check that ``warning`` points at the line that called into ltml (``filename:line``).

    A mutation run (benchmarks/mutation.py) deselects the tests that call this: mutmut's
    trampolines add frames between ltml's, so a static stacklevel lands elsewhere there.
    ``test_stacklevel_reaches_the_caller_past_trampolines`` checks the same under mutation.
    """
    assert (warning.filename, warning.lineno) == (filename, line)


# --- agreement with scikit-learn ---------------------------------------------------------


@st.composite
def score_target_pairs(draw):
    n = draw(st.integers(1, 40))
    c = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    extremes = [0.0, -0.0, 1.0, -1.0, 1e-7, -1e-7, float(np.finfo(dtype).max)]
    # Few distinct values make ties common; wide values exercise the float-to-int mapping.
    values = draw(
        st.sampled_from(
            [
                st.integers(-3, 3).map(float),
                st.floats(-1e4, 1e4, allow_nan=False, width=16),
                st.sampled_from(extremes + [-x for x in extremes]),
            ]
        )
    )
    scores = draw(hnp.arrays(dtype, (n, c), elements=values))
    targets = draw(hnp.arrays(np.int64, (n, c), elements=st.integers(-1, 1)))
    return scores, targets


@given(score_target_pairs())
@settings(max_examples=300, deadline=None)
def test_matches_sklearn_on_random_inputs(pair):
    scores, targets = pair
    assert_matches_oracle(scores, targets)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_low_and_high_precision_scores(dtype):
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(300, 7, generator=g).to(dtype)  # float16 / bfloat16 create many ties
    targets = (torch.rand(300, 7, generator=g) < 0.3).long()
    assert_matches_oracle(scores.double().numpy(), targets.numpy())
    np.testing.assert_allclose(
        quiet_ap(scores, targets).numpy(),
        oracle(scores.double().numpy(), targets.numpy()),
        atol=1e-6,
    )


def test_integer_scores_are_ranks():
    scores = np.array([[3, 1], [2, 1], [1, 0], [3, 5]])
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    assert_matches_oracle(scores, targets)


@pytest.mark.parametrize(("n", "c", "labelled"), [(20_000, 70, 0.05), (3_000, 700, 0.3)])
@pytest.mark.parametrize("chunk", [_ranking.CHUNK_ELEMENTS, 1 << 15])
def test_large_inputs(monkeypatch, n, c, labelled, chunk):
    monkeypatch.setattr(_ranking, "CHUNK_ELEMENTS", chunk)  # small chunks: many, on worker threads
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((n, c)).astype(np.float32)
    scores[: n // 10] = np.round(scores[: n // 10], 1)  # some ties
    targets = (rng.random((n, c)) < labelled).astype(np.int64)
    targets[rng.random((n, c)) < 0.02] = -1
    assert_matches_oracle(scores, targets)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_torch_sort_path_of_other_devices_matches(monkeypatch, dtype):
    # Off the CPU the negatives are sorted with torch.sort: force that path on the CPU.
    monkeypatch.setattr(_ranking, "numpy_sorts", lambda x: False)
    rng = np.random.default_rng(2)
    scores = rng.integers(-5, 5, (500, 9)).astype(dtype)  # many ties
    targets = rng.integers(-1, 2, (500, 9))
    targets[:, 0] = np.where(targets[:, 0] == 1, 0, targets[:, 0])  # a class with no positive
    assert_matches_oracle(scores, targets)


# --- edge cases ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "targets", "expected"),
    [
        ([[0.5]], [[1]], [1.0]),  # N = 1
        ([[0.3], [0.3], [0.3], [0.3]], [[1], [0], [0], [1]], [0.5]),  # one tie group
        ([[0.1], [0.2]], [[1], [1]], [1.0]),  # no negatives
        ([[0.1], [0.9], [0.5]], [[1], [-1], [0]], [0.5]),  # unknown ignored, though top-ranked
        ([[-0.0], [0.0], [1.0]], [[1], [0], [0]], [1 / 3]),  # -0.0 and 0.0 tie
    ],
)
def test_edge_cases(scores, targets, expected):
    ap = average_precision(torch.tensor(scores), torch.tensor(targets))
    assert ap.tolist() == pytest.approx(expected, abs=1e-12)


def test_unknown_labels_are_ignored_for_their_class_only():
    scores = torch.tensor([[0.9, 0.9], [0.8, 0.8], [0.1, 0.1]])
    targets = torch.tensor([[-1, 0], [1, 1], [0, 0]])
    assert average_precision(scores, targets).tolist() == pytest.approx([1.0, 0.5])


def test_class_without_positive_is_nan_with_one_warning():
    scores = torch.tensor([[0.2, 0.3, 0.1], [0.4, 0.1, 0.5]])
    targets = torch.tensor([[1, 0, -1], [0, 0, -1]])
    with pytest.warns(UserWarning, match=r"2 class\(es\) have no positive target \(classes 1, 2\)"):
        ap = average_precision(scores, targets)
    assert ap[0] == 0.5
    assert torch.isnan(ap[1:]).all()
    with pytest.warns(UserWarning, match="reported as 0"):
        assert average_precision(scores, targets, empty_class="zero").tolist() == [0.5, 0, 0]


def test_tie_handling_does_not_depend_on_row_order():
    # torchnet's APMeter ranks tied scores by their position: AP changed with the row order.
    scores = torch.tensor([[0.5], [0.5], [0.5], [0.2], [0.9]])
    targets = torch.tensor([[1], [0], [0], [1], [0]])
    expected = oracle(scores.numpy(), targets.numpy())
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        perm = torch.randperm(5, generator=g)
        assert average_precision(scores[perm], targets[perm]).numpy() == pytest.approx(expected)


def test_empty_classes_are_left_out_of_the_mean():
    # scikit-learn, torchmetrics and torchnet score such classes 0 and average them in.
    meter = mAPMeter(3)
    meter.update(
        torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4]]), torch.tensor([[1, 0, 0], [0, 1, 0]])
    )
    with pytest.warns(UserWarning, match="1 class"):
        result = meter.compute()
    assert result.map == 1.0
    assert result.num_empty == 1
    zero = mAPMeter(3, empty_class="zero")
    zero.update(
        torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.8, 0.4]]), torch.tensor([[1, 0, 0], [0, 1, 0]])
    )
    with pytest.warns(UserWarning, match="reported as 0"):
        assert zero.compute().map == pytest.approx(2 / 3)


def test_saturated_probabilities_lose_ap_that_logits_keep():
    # float32 sigmoid is exactly 1.0 above a logit of ~17: confident positives and negatives tie.
    logits = torch.tensor([[40.0], [30.0], [20.0], [-5.0]])
    targets = torch.tensor([[1], [0], [1], [0]])
    probs = torch.sigmoid(logits)
    assert probs[:3].eq(1.0).all()
    assert average_precision(logits, targets).item() == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(probs, targets).item() == pytest.approx(2 / 3)


# --- the meter ------------------------------------------------------------------------------


@given(
    data=st.data(),
    n=st.integers(1, 60),
    c=st.integers(1, 5),
)
@settings(max_examples=60, deadline=None)
def test_meter_equals_function_for_any_batch_split(data, n, c):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    scores = rng.integers(-4, 4, (n, c)).astype(np.float32)
    targets = rng.integers(-1, 2, (n, c))
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=5)))
    meter = mAPMeter(c, groups={"a": [0], "all": list(range(c))})
    for lo, hi in zip([0, *cuts], [*cuts, n], strict=True):
        meter.update(scores[lo:hi], targets[lo:hi])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = meter.compute()
    expected = oracle(scores, targets)
    np.testing.assert_allclose(result.ap.numpy(), expected, atol=1e-6)
    if np.isnan(expected).all():
        assert math.isnan(result.map)
    else:
        assert result.map == pytest.approx(np.nanmean(expected))
        assert result.groups["all"] == pytest.approx(np.nanmean(expected))
    assert result.num_empty == int(np.isnan(expected).sum())


def test_batches_are_never_transformed():
    # torchmetrics once applied sigmoid to a batch only when its values left [0, 1].
    scores = torch.tensor([[0.9], [0.2], [3.0], [-2.0]])
    targets = torch.tensor([[1], [0], [0], [1]])
    meter = mAPMeter(1)
    meter.update(scores[:2], targets[:2])  # looks like probabilities
    meter.update(scores[2:], targets[2:])  # looks like logits
    assert meter.compute().ap.numpy() == pytest.approx(oracle(scores.numpy(), targets.numpy()))


def test_groups_on_voc_lt_counts(voc_lt):
    labels, split = voc_lt
    groups = class_groups(class_counts(labels))
    rng = np.random.default_rng(3)
    targets = (rng.random((400, 20)) < 0.15).astype(np.int64)
    scores = rng.standard_normal((400, 20)) + 1.5 * targets
    meter = mAPMeter(20, groups=groups)
    meter.update(torch.from_numpy(scores), torch.from_numpy(targets))
    result = meter.compute()
    expected = oracle(scores, targets)
    assert list(result.groups) == ["head", "medium", "tail"]
    for name in ("head", "medium", "tail"):
        assert result.groups[name] == pytest.approx(expected[split[name]].mean(), abs=1e-6)
    assert result.map == pytest.approx(expected.mean(), abs=1e-6)


def test_meter_copies_inputs_and_resets():
    scores = np.array([[0.9], [0.1]], dtype=np.float32)
    targets = np.array([[1], [0]])
    meter = mAPMeter(1)
    meter.update(scores, targets)
    scores[:] = [[0.1], [0.9]]  # the caller reuses its buffer
    assert meter.compute().map == 1.0
    assert meter.num_stored == 2
    meter.reset()
    assert meter.num_stored == 0
    with pytest.warns(UserWarning, match="no positive target"):
        result = meter.compute()
    assert math.isnan(result.map)
    assert result.num_empty == 1


def test_result_as_dict_and_str():
    result = MAPResult(
        ap=torch.tensor([0.5, math.nan], dtype=torch.float64),
        map=0.5,
        groups={"head": 0.5, "tail": math.nan},
        num_empty=1,
    )
    assert result.as_dict() == {
        "map": 0.5,
        "groups": {"head": 0.5, "tail": None},
        "ap": [0.5, None],
        "num_empty": 1,
    }
    assert str(result) == "mAP 50.00  head 50.00  tail nan"


def test_meter_keeps_its_own_copy_of_int8_targets():
    targets = torch.tensor([[1], [0]], dtype=torch.int8)  # already the stored dtype
    meter = mAPMeter(1)
    meter.update(torch.tensor([[0.9], [0.1]]), targets)
    targets[:] = torch.tensor([[0], [1]], dtype=torch.int8)  # the caller reuses its buffer
    assert meter.compute().map == 1.0


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
    ],
    ids=str,
)
def test_meter_memory_per_sample_is_as_documented(dtype):
    # The class docstring: a sample costs C * (s + 1) bytes, s the byte size of the score dtype
    # (scores kept as given), targets kept as int8; and the ranking stays exact.
    rng = np.random.default_rng(4)
    scores = torch.from_numpy(rng.integers(0, 9, (7, 5))).to(dtype)
    targets = torch.from_numpy(rng.integers(0, 2, (7, 5)))  # int64: 8 bytes each as given
    meter = mAPMeter(5)
    meter.update(scores[:3], targets[:3])
    meter.update(scores[3:], targets[3:])
    bits = (torch.finfo if dtype.is_floating_point else torch.iinfo)(dtype).bits
    stored = [*meter._scores, *meter._targets]
    assert sum(t.numel() * t.element_size() for t in stored) == 7 * 5 * (bits // 8 + 1)
    assert {t.dtype for t in meter._targets} == {torch.int8}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class may lack positives
        ap = meter.compute().ap
    np.testing.assert_allclose(ap.numpy(), oracle(scores.double().numpy(), targets.numpy()))


def test_meter_repr():
    meter = mAPMeter(3, groups={"head": [0], "tail": [1, 2]}, empty_class="zero")
    meter.update(torch.zeros(2, 3), torch.ones(2, 3))
    assert repr(meter) == (
        "mAPMeter(num_classes=3, groups={'head': 1, 'tail': 2}, empty_class='zero', "
        "scores=None, top_k=None, num_stored=2)"
    )


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "targets", "error", "match"),
    [
        (torch.zeros(4), torch.zeros(4), ValueError, r"`scores` must be 2-D .* got 1-D"),
        (
            torch.zeros(4, 3),
            torch.zeros(4, 2),
            ValueError,
            r"`scores` and `targets` must have the same shape, got \(4, 3\) and \(4, 2\)",
        ),
        (torch.zeros(2, 2), torch.tensor([[0, 2], [1, 0]]), ValueError, r"`targets` .* got 2"),
        (torch.zeros(2, 2), torch.tensor([[0, 0.5], [1, 0]]), ValueError, r"`targets` .*0.5"),
        (
            torch.tensor([[0.0, math.nan]]),
            torch.zeros(1, 2),
            ValueError,
            "`scores` must be finite, got 1 NaN",
        ),
        (torch.tensor([[math.inf, 0.0]]), torch.zeros(1, 2), ValueError, "1 infinite"),
        (
            [[0.0]],
            torch.zeros(1, 1),
            TypeError,
            "`scores` must be a torch.Tensor or numpy.ndarray, got list",
        ),
        (
            torch.zeros(1, 1, dtype=torch.bool),
            torch.zeros(1, 1),
            TypeError,
            "`scores` must hold real numbers",
        ),
    ],
)
def test_bad_input(scores, targets, error, match):
    with pytest.raises(error, match=match):
        average_precision(scores, targets)
    meter = mAPMeter(scores.shape[-1] if isinstance(scores, torch.Tensor) else 1)
    with pytest.raises(error, match=match):
        meter.update(scores, targets)
    assert meter.num_stored == 0  # nothing stored from a rejected batch


def test_meter_rejects_wrong_number_of_classes():
    meter = mAPMeter(3)
    meter.update(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(
        ValueError, match=r"`scores` must have 3 columns \(num_classes\), got shape \(2, 4\)"
    ):
        meter.update(torch.zeros(2, 4), torch.zeros(2, 4))
    assert meter.num_stored == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "`num_classes` must be an integer >= 1, got 0"),
        ({"num_classes": 2, "empty_class": "skip"}, "`empty_class` must be one of 'nan', 'zero'"),
        (
            {"num_classes": 2, "groups": {"tail": [1, 2]}},
            r"`groups\['tail'\]` .* \[0, 2\), got \[2\]",
        ),
    ],
)
def test_meter_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mAPMeter(**kwargs)


def test_function_rejects_bad_empty_class():
    with pytest.raises(ValueError, match="`empty_class`"):
        average_precision(torch.zeros(1, 1), torch.ones(1, 1), empty_class="drop")


# --- storage: dense rows or known entries ----------------------------------------------------


def _partial_problem(rng, n, c, known, dtype=np.float32):
    """Scores with ties and labels of which about a ``known`` share is known."""
    scores = rng.integers(-4, 4, (n, c)).astype(dtype)
    targets = rng.integers(0, 2, (n, c))
    targets[rng.random((n, c)) >= known] = -1
    return scores, targets


def _filled(batches, **kwargs):
    meter = mAPMeter(batches[0][0].shape[1], **kwargs)
    for s, y in batches:
        meter.update(s, y)
    return meter


def _everything(meter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return meter.compute().as_dict(), meter.fit_thresholds().tolist()


def test_mostly_unknown_batches_are_kept_as_their_known_entries():
    rng = np.random.default_rng(11)
    sparse = _partial_problem(rng, 40, 50, 0.05)
    dense = _partial_problem(rng, 40, 50, 0.9)
    meter = _filled([sparse, dense])
    assert len(meter._scores) == 1  # the mostly known batch, as given
    assert torch.equal(meter._scores[0], torch.from_numpy(dense[0]))
    (part,) = meter._known.parts()
    assert part.classes.numel() == int((sparse[1] >= 0).sum())
    assert meter._known.nbytes == part.classes.numel() * (4 + 4 + 1)  # class, score, label
    assert meter.num_stored == 80
    # The rule: at most a quarter of the batch's labels known.
    edge = np.full((4, 4), -1)
    edge.flat[:4] = 1
    assert len(_filled([(np.zeros((4, 4), np.float32), edge)])._scores) == 0
    edge.flat[4] = 0
    assert len(_filled([(np.zeros((4, 4), np.float32), edge)])._scores) == 1


@given(data=st.data(), n=st.integers(1, 50), c=st.integers(1, 6))
@settings(max_examples=50, deadline=None)
def test_known_entries_are_exact_in_both_forms_and_mixed(data, n, c):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    known = data.draw(st.sampled_from([0.05, 0.2, 0.6, 1.0]))
    dtype = data.draw(st.sampled_from([np.float32, np.float16, np.float64, np.int64]))
    scores, targets = _partial_problem(rng, n, c, known, dtype)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=5)))
    batches = [
        (scores[lo:hi], targets[lo:hi]) for lo, hi in zip([0, *cuts], [*cuts, n], strict=True)
    ]
    # Some batches mostly unknown, some not: the forms mix within one meter.
    for i in data.draw(st.lists(st.integers(0, len(batches) - 1), max_size=3)):
        s, y = batches[i]
        batches[i] = (s, np.where(rng.random(y.shape) < 0.9, -1, y))
    kwargs = {"scores": "logits", "top_k": min(2, c), "groups": {"a": [0]}}
    chunk = 7 if data.draw(st.booleans()) else _ranking.CHUNK_ELEMENTS  # 7: many class chunks
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_ranking, "CHUNK_ELEMENTS", chunk)
        patch.setattr(_share, "CHUNK_ELEMENTS", chunk)
        got = _everything(_filled(batches, **kwargs))
        # Every batch in each form alone: the dense rows of today, and known entries only.
        for rule in (-1.0, 1.0):
            patch.setattr(_entries, "SPARSE_BELOW", rule)
            meter = _filled(batches, **kwargs)
            dense_rows = sum(s.shape[0] for s in meter._scores)
            assert dense_rows == (0 if rule == 1.0 else n)
            assert _everything(meter) == got
    all_y = np.concatenate([y for _, y in batches])
    ap = [math.nan if v is None else v for v in got[0]["ap"]]
    np.testing.assert_allclose(ap, oracle(scores, all_y), atol=1e-9)


@given(data=st.data())
@settings(max_examples=30, deadline=None)
def test_any_batch_split_of_known_entries_gives_the_same_result(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    scores, targets = _partial_problem(rng, 60, 5, 0.1)
    one = _everything(_filled([(scores, targets)], scores="logits", top_k=2))
    cuts = sorted(data.draw(st.lists(st.integers(0, 60), max_size=8)))
    batches = [
        (scores[lo:hi], targets[lo:hi]) for lo, hi in zip([0, *cuts], [*cuts, 60], strict=True)
    ]
    assert _everything(_filled(batches, scores="logits", top_k=2)) == one


def test_top_k_of_known_entries_reads_the_full_rows_at_update():
    # The image's top-1 class is an unknown one: a known positive below it is not predicted.
    scores = torch.tensor([[5.0, 1.0, 0.5, -1.0] + [-9.0] * 12])
    targets = torch.full((1, 16), -1)
    targets[0, 1] = 1  # known positive, second-highest score
    targets[0, 3] = 0
    meter = _filled([(scores, targets)], scores="logits", top_k=1)
    assert len(meter._scores) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = meter.compute()
    assert result.thresholded.recall[1].item() == 1.0  # logit 1.0 >= 0
    assert result.top_k.recall[1].item() == 0.0  # not the image's top-1: class 0 is


def test_known_entries_stay_compact_over_many_batches():
    rng = np.random.default_rng(12)
    meter = mAPMeter(30)
    batches = [_partial_problem(rng, 9, 30, 0.05) for _ in range(200)]
    for s, y in batches:
        meter.update(s, y)
    (part,) = meter._known.parts()
    assert part.classes.numel() == sum(int((y >= 0).sum()) for _, y in batches)
    s_all = np.concatenate([s for s, _ in batches])
    y_all = np.concatenate([y for _, y in batches])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(meter.compute().ap.numpy(), oracle(s_all, y_all), atol=1e-9)
    meter.reset()
    assert meter.num_stored == 0
    assert meter._known.parts() == []


# --- DDP -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, scores, targets, cuts, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        meter = mAPMeter(scores.shape[1], groups={"first": [0]})
        lo, hi = cuts[rank], cuts[rank + 1]
        for i in range(lo, hi, 7):  # uneven shares, several batches
            meter.update(scores[i : min(i + 7, hi)], targets[i : min(i + 7, hi)])
        result = meter.compute()
        queue.put((rank, result.ap.tolist(), result.map, result.groups["first"]))
    finally:
        dist.destroy_process_group()


def test_ddp_gathers_uneven_shares_on_gloo():
    rng = np.random.default_rng(4)
    scores = torch.from_numpy(rng.integers(-3, 3, (53, 4)).astype(np.float32))
    targets = torch.from_numpy((rng.random((53, 4)) < 0.4).astype(np.int64))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(target=_ddp_worker, args=(r, 2, port, scores, targets, [0, 20, 53], queue))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    expected = oracle(scores.numpy(), targets.numpy())
    for _, ap, m, first in results:
        np.testing.assert_allclose(ap, expected, atol=1e-6)
        assert m == pytest.approx(expected.mean())
        assert first == pytest.approx(expected[0])


def test_huge_finite_scores_are_accepted():
    # Their sum overflows to inf: the finiteness check must then look at the values themselves.
    scores = torch.tensor([[3e38], [3e38], [-1.0]])
    targets = torch.tensor([[1], [0], [1]])
    assert average_precision(scores, targets).item() == pytest.approx((0.5 + 2 / 3) / 2)


def test_num_samples_is_a_deprecated_name_of_num_stored():
    meter = mAPMeter(2)
    meter.update(torch.tensor([[0.5, 0.1]]), torch.tensor([[1, 0]]))
    with pytest.warns(FutureWarning, match="`num_samples` is deprecated .* use `num_stored`"):
        assert meter.num_samples == 1


def test_no_rows_gives_float64_nan_ap_and_infinite_thresholds():
    scores, targets = torch.empty((0, 3)), torch.empty((0, 3), dtype=torch.int64)
    ap = quiet_ap(scores, targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thr = F.fit_thresholds(scores, targets)
    assert ap.dtype == torch.float64
    assert ap.shape == (3,)
    assert torch.isnan(ap).all()
    assert thr.dtype == torch.float64
    assert thr.tolist() == [math.inf] * 3
    ap = quiet_ap(torch.ones((2, 3)), torch.zeros((2, 3)))  # rows, but no positive anywhere
    assert ap.dtype == torch.float64
    assert torch.isnan(ap).all()


def test_float64_scores_keep_differences_float32_would_merge():
    # 1 + 1e-12 * k are distinct in float64 and all 1.0 in float32.
    scores = 1 + 1e-12 * torch.tensor(
        [[3.0, 0.0], [2.0, 1.0], [1.0, 2.0], [0.0, 3.0]], dtype=torch.float64
    )
    targets = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]])
    assert_matches_oracle(scores.numpy(), targets.numpy())
    assert quiet_ap(scores, targets).tolist() == [1.0, 1.0]  # by hand: positives ranked first
    thr = F.fit_thresholds(scores, targets)
    assert thr.dtype == torch.float64
    assert thr.tolist() == [scores[1, 0].item(), scores[2, 1].item()]  # the lowest positive
    assert F.fit_thresholds(scores.float(), targets).dtype == torch.float64


def test_meter_ranks_batches_of_different_dtypes_exactly():
    def meter_ap(*batches):
        meter = mAPMeter(1)
        for s, y in batches:
            meter.update(s, torch.tensor([[y]]))
        return meter.compute().ap.item()

    big = 2**24 + 1  # not a float32; by hand, AP is 1.0 when the positive ranks first, else 0.5
    assert meter_ap((torch.tensor([[big]]), 1), (torch.tensor([[2.0**24]]), 0)) == 1.0
    low = torch.tensor([[0.25]], dtype=torch.float64)  # beside a float32 batch
    assert meter_ap((torch.tensor([[0.5]]), 0), (low, 1)) == 0.5
    assert meter_ap((torch.tensor([[0.5]]), 1), (low, 0)) == 1.0
    huge = 2**53 + 1  # not a float64
    assert meter_ap((torch.tensor([[huge]]), 1), (torch.tensor([[2**53]]), 0)) == 1.0


def test_meter_warning_points_at_the_compute_call():
    meter = mAPMeter(2)
    meter.update(torch.ones(2, 2), torch.tensor([[1, 0], [0, 0]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        meter.compute()
    assert [str(w.message) for w in caught] == [
        "1 class(es) have no positive target (classes 1): their AP is undefined and reported "
        "as NaN and left out of means (empty_class='nan')"
    ]
    assert_points_at(caught[0], __file__, line)


def test_meter_warning_names_the_classes_it_was_given():
    meter = mAPMeter(3, class_names=["cat", "dog", "sofa"])
    meter.update(torch.ones(2, 3), torch.tensor([[1, 0, 0], [0, 0, -1]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meter.compute()
    assert [str(w.message) for w in caught] == [
        "2 class(es) have no positive target (classes 'dog' (1), 'sofa' (2)): their AP is "
        "undefined and reported as NaN and left out of means (empty_class='nan')"
    ]  # the line it points at: test_meter_warning_points_at_the_compute_call
    assert meter.class_names == ("cat", "dog", "sofa")


@pytest.mark.parametrize(
    ("class_names", "error", "message"),
    [
        (["cat", "dog"], ValueError, r"must name the 3 classes \(num_classes\), got 2 names"),
        ("cat", TypeError, "`class_names` must be a sequence of class names, got a single string"),
        (["cat", "dog", "cat"], ValueError, "`class_names` must be distinct, got 'cat' twice"),
    ],
)
def test_meter_rejects_bad_class_names(class_names, error, message):
    with pytest.raises(error, match=message):
        mAPMeter(3, class_names=class_names)


# --- MAPResult.top_k, formerly topk ----------------------------------------------------------


def _result_with_top_k(top_k=1):
    meter = mAPMeter(2, scores="logits", top_k=top_k)
    meter.update(torch.tensor([[1.0, 0.5], [-1.0, 2.0]]), torch.tensor([[1, 1], [0, 1]]))
    return meter.compute()


def test_top_k_field_holds_the_top_k_metrics():
    result = _result_with_top_k()
    assert result.top_k.top_k == 1
    # By hand: top-1 keeps class 0 of image 0 and class 1 of image 1, so class 1's recall is 1/2.
    assert (result.top_k.CR, result.top_k.OR, result.thresholded.CR) == (0.75, 2 / 3, 1.0)
    assert str(result) == "mAP 100.00  CF1 100.00  OF1 100.00  CF1@1 85.71  OF1@1 80.00"
    assert _result_with_top_k(top_k=None).top_k is None


def test_topk_is_a_deprecated_name_of_top_k():
    result = _result_with_top_k()
    with pytest.warns(FutureWarning, match="`topk` is deprecated .* use `top_k`"):
        assert result.topk is result.top_k
    with pytest.warns(FutureWarning, match="`topk` is deprecated .* use `top_k`"):
        rebuilt = MAPResult(ap=result.ap, map=result.map, topk=result.top_k)
    assert rebuilt.top_k is result.top_k
    with pytest.raises(TypeError, match=r"got both `topk` .* and `top_k`"):
        MAPResult(ap=result.ap, map=result.map, topk=None, top_k=None)


def test_as_dict_writes_top_k_under_both_names():
    # A reader of the old key that found none would take it for a meter without top_k.
    result = _result_with_top_k()
    d = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert list(d) == ["map", "groups", "ap", "num_empty", "thresholded", "top_k", "topk"]
    assert d["top_k"] == d["topk"] == result.top_k.as_dict()
    assert d["top_k"]["top_k"] == 1
    assert {"top_k", "topk"}.isdisjoint(_result_with_top_k(top_k=None).as_dict())


# --- warnings point at the user's line ---------------------------------------------------------


def _warning_calls():
    """Each public path that warns, as a one-line call (the line the warning must point at)."""
    scores, targets = torch.tensor([[0.9, 0.1], [0.2, 0.3]]), torch.tensor([[1, 0], [0, 0]])
    meter = mAPMeter(2, scores="logits", top_k=1)
    meter.update(scores, targets)  # class 1 has no positive target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = meter.compute()
    return {
        "average_precision": lambda: average_precision(scores, targets),
        "thresholded_metrics": lambda: ltml.thresholded_metrics(scores, targets, threshold=0.0),
        "fit_thresholds": lambda: ltml.fit_thresholds(scores, targets),
        "mAPMeter.compute": lambda: meter.compute(),
        "mAPMeter.num_samples": lambda: meter.num_samples,
        "MAPResult.topk": lambda: result.topk,
        "MAPResult(topk=)": lambda: MAPResult(ap=result.ap, map=result.map, topk=None),
    }


WARNING_PATHS = sorted(_warning_calls())


@pytest.mark.parametrize("path", WARNING_PATHS)
def test_warning_points_at_the_callers_line(path):
    call = _warning_calls()[path]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    assert len(caught) == 1
    assert_points_at(caught[0], __file__, call.__code__.co_firstlineno)


def _mutmut_frame(frame):
    return frame.f_globals.get("__name__", "").split(".")[0] == "mutmut"


@pytest.mark.parametrize("path", WARNING_PATHS)
def test_stacklevel_reaches_the_caller_past_trampolines(monkeypatch, path):
    # The same as above, counted on the stack as written: a mutation run (benchmarks/mutation.py)
    # wraps each function of the mutated module in frames of mutmut's own, which are left out
    # here, so this test keeps every stacklevel checked there.
    call = _warning_calls()[path]
    origins = []

    def record(message, category=None, stacklevel=1, **kwargs):
        frame, frames = sys._getframe(1), []  # from the caller of warnings.warn outwards
        while frame is not None:
            if not _mutmut_frame(frame):
                frames.append(frame)
            frame = frame.f_back
        origins.append(frames[stacklevel - 1].f_code)

    monkeypatch.setattr(warnings, "warn", record)
    call()
    assert origins == [call.__code__]


def test_a_result_pickled_with_the_old_field_name_loads_its_top_k():
    result = _result_with_top_k()
    old = MAPResult.__new__(MAPResult)  # as pickled before the rename: its fields, "topk" too
    old.__dict__.update({("topk" if k == "top_k" else k): v for k, v in vars(result).items()})
    loaded = pickle.loads(pickle.dumps(old))
    assert "topk" not in vars(loaded)
    assert loaded.top_k.as_dict() == result.top_k.as_dict()
    assert str(loaded) == str(result)
    again = pickle.loads(pickle.dumps(result))
    assert again.top_k.as_dict() == result.top_k.as_dict()
