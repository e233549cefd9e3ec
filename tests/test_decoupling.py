"""Decoupled classifiers: features once, cRT, NCM, tau-norm, LWS, logit adjustment, tau search.

References: literal transcriptions of each formula, scikit-learn for the thresholded metrics,
synthetic features whose answer is known, and the invariance of per-class AP under per-class
increasing maps (exact equality of ``ltml.functional.average_precision``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

import ltml
from ltml.functional import average_precision


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _clusters(n_per_class: list[int], dim: int = 8, spread: float = 0.3, seed: int = 0):
    """Multi-label features: class k adds a unit vector e_k; image i holds 1-2 classes."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for k, n in enumerate(n_per_class):
        y = torch.zeros(n, len(n_per_class), dtype=torch.int64)
        y[:, k] = 1
        rows.append(y)
    labels = torch.cat(rows)
    extra = torch.randint(0, len(n_per_class), (len(labels),), generator=g)
    second = torch.rand(len(labels), generator=g) < 0.3
    labels[second, extra[second]] = 1
    centres = torch.eye(len(n_per_class), dim, dtype=torch.float64) * 3
    features = labels.double() @ centres + spread * torch.randn(
        len(labels), dim, generator=g, dtype=torch.float64
    )
    return features, labels


# ------------------------------------------------------------------------------------------------
# extract_features
# ------------------------------------------------------------------------------------------------


def test_features_are_the_pooled_trunk_outputs_in_order():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU())
    x, y = torch.randn(10, 3, 7, 7), torch.randint(-1, 2, (10, 4))
    trunk.train()
    running = trunk[1].running_mean.clone()
    features, labels = ltml.extract_features(trunk, DataLoader(TensorDataset(x, y), batch_size=3))
    trunk.eval()
    with torch.no_grad():
        expected = trunk(x).mean(dim=(2, 3))
    assert torch.allclose(features, expected, atol=1e-6)
    assert torch.equal(labels, y)
    assert not features.requires_grad
    assert trunk[1].training is False  # our own eval() above; check the restore below
    trunk.train()
    ltml.extract_features(trunk, DataLoader(TensorDataset(x, y), batch_size=3))
    assert trunk.training
    assert trunk[1].training
    assert torch.equal(trunk[1].running_mean, running)  # eval: running statistics untouched


@pytest.mark.parametrize("branch", ["u", "r"])
def test_features_of_a_dual_branch_head_branch(branch):
    torch.manual_seed(0)
    trunk = nn.Conv2d(3, 4, 3)
    head = ltml.DualBranchHead(nn.Conv2d(4, 5, 1), in_features=5, num_classes=3)
    nn.init.normal_(head.branch_r.features.weight)  # make the branches differ
    x, y = torch.randn(6, 3, 6, 6), torch.randint(0, 2, (6, 3))
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    features, _ = ltml.extract_features(trunk, loader, head=head, branch=branch)
    chosen = head.branch_u if branch == "u" else head.branch_r
    with torch.no_grad():
        expected = chosen.features(trunk(x)).mean(dim=(2, 3))
        assert torch.allclose(chosen.classifier(features), chosen(trunk(x)), atol=1e-5)
    assert torch.allclose(features, expected, atol=1e-6)


def test_features_under_cpu_autocast_are_float32_and_close():
    torch.manual_seed(0)
    trunk = nn.Linear(5, 4)
    data = TensorDataset(torch.randn(8, 5), torch.zeros(8, 2))
    plain, _ = ltml.extract_features(trunk, DataLoader(data, batch_size=8))
    mixed, _ = ltml.extract_features(trunk, DataLoader(data, batch_size=8), amp=True)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, plain, atol=0.05)
    assert not torch.equal(mixed, plain)  # bfloat16 did run


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loader": []}, ValueError, "`loader` must yield at least one batch"),
        ({"branch": "x"}, ValueError, "`branch` must be one of 'u', 'r', got str 'x'"),
        ({"head": nn.Linear(2, 2)}, TypeError, "`head` must be a DualBranchHead or None"),
        ({"trunk": "resnet"}, TypeError, "`trunk` must be an nn.Module, got str"),
    ],
)
def test_bad_feature_extraction_input(kwargs, error, match):
    args = {"trunk": nn.Identity(), "loader": [(torch.ones(2, 3), torch.ones(2, 1))], **kwargs}
    with pytest.raises(error, match=match):
        ltml.extract_features(args.pop("trunk"), args.pop("loader"), **args)


# ------------------------------------------------------------------------------------------------
# cRT
# ------------------------------------------------------------------------------------------------


def _rare_class_problem(seed: int):
    """Class 0 is common (300 of 400 images), class 1 rare (8): overlapping 1-D clusters."""
    g = torch.Generator().manual_seed(seed)

    def draw(n0, n1, n):
        y = torch.zeros(n, 2, dtype=torch.int64)
        y[:n0, 0] = 1
        y[n0 : n0 + n1, 1] = 1
        x = y.double() * 1.5 + torch.randn(n, 2, generator=g, dtype=torch.float64)
        return x.float(), y

    return draw(300, 8, 400), draw(200, 200, 600)  # training (long-tailed), test (balanced)


def test_crt_beats_a_uniformly_trained_classifier_on_the_rare_class():
    (x, y), (x_test, y_test) = _rare_class_problem(0)
    fit = {"epochs": 20, "batch_size": 32, "lr": 0.05, "seed": 0}
    uniform = RandomSampler(range(len(y)), generator=torch.Generator().manual_seed(0))
    biased = ltml.retrain_classifier(x, y, sampler=uniform, **fit)
    crt = ltml.retrain_classifier(x, y, **fit)  # class-aware sampling (default)

    def rare_recall_f1(clf):
        pred = (clf(x_test)[:, 1] >= 0).numpy()
        return recall_score(y_test[:, 1].numpy(), pred), f1_score(y_test[:, 1].numpy(), pred)

    (r_biased, f_biased), (r_crt, f_crt) = rare_recall_f1(biased), rare_recall_f1(crt)
    assert r_biased < 0.2  # the prior of 2 % pushes the rare class below the threshold
    assert r_crt > r_biased + 0.4
    assert f_crt > f_biased + 0.3


def test_crt_is_deterministic_from_the_seed_and_leaves_the_global_rng():
    x, y = _clusters([40, 10, 3])
    state = torch.get_rng_state()
    a = ltml.retrain_classifier(x, y, batch_size=16, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = ltml.retrain_classifier(x, y, batch_size=16, seed=3)
    c = ltml.retrain_classifier(x, y, batch_size=16, seed=4)
    assert torch.equal(a.weight, b.weight)
    assert torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)
    assert (a.in_features, a.out_features, a.weight.dtype) == (8, 3, torch.float64)
    assert not a.weight.requires_grad


def test_crt_uses_the_given_loss_and_ignores_unknown_labels():
    x, y = _clusters([30, 10])
    calls = []

    def loss(logits, targets):
        calls.append(targets)
        return ltml.BCE()(logits, targets)

    y_partial = y.clone()
    y_partial[::5, 0] = -1
    ltml.retrain_classifier(x, y_partial, loss=loss, epochs=2, batch_size=10)
    assert len(calls) == 2 * math.ceil(len(y) / 10)
    assert any((t == -1).any() for t in calls)  # passed through to the loss, which ignores them


# ------------------------------------------------------------------------------------------------
# NCM
# ------------------------------------------------------------------------------------------------


def test_ncm_ranks_separable_classes_perfectly():
    x, y = _clusters([50, 12, 4], spread=0.2)
    x_test, y_test = _clusters([20, 20, 20], spread=0.2, seed=1)
    ncm = ltml.NearestClassMean.fit(x, y)
    ap = average_precision(ncm(x_test), y_test)
    assert torch.equal(ap, torch.ones(3, dtype=torch.float64))


def test_ncm_scores_are_negative_squared_distances_to_positive_centroids():
    x, y = _clusters([10, 6, 3], dim=4, spread=1.0)
    y[0, 1] = -1  # unknown: not used for the centroid of class 1
    ncm = ltml.NearestClassMean.fit(x, y)
    mean = x.numpy().mean(axis=0)
    normed = [(r - mean) / np.linalg.norm(r - mean) for r in x.numpy()]
    queries = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    scores = ncm(queries)
    for k in range(3):
        members = [normed[i] for i in range(len(y)) if y[i, k] == 1]
        centroid = sum(members) / len(members)
        for i, q in enumerate(queries.numpy()):
            q_hat = (q - mean) / np.linalg.norm(q - mean)
            expected = -np.sum((q_hat - centroid) ** 2)
            assert scores[i, k].item() == pytest.approx(expected, abs=1e-12)


def test_ncm_refuses_a_class_without_positive():
    x, y = _clusters([10, 6, 3])
    y[:, 2] = torch.where(y[:, 2] == 1, -1, y[:, 2])  # class 2: only unknown and negatives
    with pytest.raises(ValueError, match=r"needs a known positive for every class; 1 of 3 .*\[2\]"):
        ltml.NearestClassMean.fit(x, y)


# ------------------------------------------------------------------------------------------------
# tau-norm, LWS, logit adjustment
# ------------------------------------------------------------------------------------------------


def _linear(d: int, c: int, seed: int = 0, dtype=torch.float64) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, c, dtype=dtype)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("bias", [False, True])
def test_tau_normalize_is_the_formula(tau, bias):
    clf = _linear(5, 3)
    original = clf.weight.detach().clone()
    out = ltml.tau_normalize(clf, tau, bias=bias)
    w, b = clf.weight.detach().numpy(), clf.bias.detach().numpy()
    for k in range(3):
        expected = w[k] / np.linalg.norm(w[k]) ** tau
        np.testing.assert_allclose(out.weight[k].numpy(), expected, rtol=1e-12)
    if bias:
        np.testing.assert_array_equal(out.bias.numpy(), b)
    else:
        assert out.bias is None
    assert not out.weight.requires_grad
    assert torch.equal(clf.weight, original)  # not modified


def test_lws_learns_only_scales_deterministically():
    x, y = _clusters([60, 12, 4])
    clf = _linear(8, 3)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    a = ltml.learn_weight_scaling(clf, x, y, batch_size=16, lr=0.05, seed=1)
    b = ltml.learn_weight_scaling(clf, x, y, batch_size=16, lr=0.05, seed=1)
    assert torch.equal(a.scale, b.scale)
    assert not torch.equal(a.scale, torch.ones(3, dtype=torch.float64))
    for k, v in clf.state_dict().items():  # the given classifier is untouched, the copy frozen
        assert torch.equal(v, before[k])
        assert torch.equal(a.classifier.state_dict()[k], before[k])
    with torch.no_grad():
        expected = clf(x) * a.scale
    assert torch.allclose(a(x), expected)
    assert a.offset is None
    with_bias = ltml.learn_weight_scaling(clf, x, y, bias=True, batch_size=16, lr=0.05)
    assert with_bias.offset is not None
    assert not torch.equal(with_bias.offset, torch.zeros(3, dtype=torch.float64))


def test_lws_moves_decisions_at_zero_only_with_its_offset():
    # A positive scale keeps the sign of every logit: without the offset, no decision at the
    # threshold 0 can change. With it, class-balanced training lowers the rare class's threshold.
    (x, y), _ = _rare_class_problem(1)
    fit = {"epochs": 20, "batch_size": 32, "lr": 0.05, "seed": 0}
    uniform = RandomSampler(range(len(y)), generator=torch.Generator().manual_seed(0))
    biased = ltml.retrain_classifier(x, y, sampler=uniform, **fit)
    scale_only = ltml.learn_weight_scaling(biased, x, y, **fit)
    with_offset = ltml.learn_weight_scaling(biased, x, y, bias=True, **fit)
    assert not torch.equal(scale_only.scale, torch.ones(2))
    assert torch.equal(scale_only(x) >= 0, biased(x) >= 0)
    assert (with_offset(x)[:, 1] >= 0).sum() > (biased(x)[:, 1] >= 0).sum() + 20


def test_tau_without_bias_does_not_move_decisions_at_zero():
    features, clf, _ = _random_head(0)
    decisions = [ltml.tau_normalize(clf, tau)(features) >= 0 for tau in (0.0, 0.7, 2.0)]
    assert all(torch.equal(d, decisions[0]) for d in decisions)
    kept = [ltml.tau_normalize(clf, tau, bias=True)(features) >= 0 for tau in (0.0, 2.0)]
    assert not torch.equal(kept[0], kept[1])


def test_logit_adjust_is_the_formula():
    logits = torch.randn(4, 3, dtype=torch.float64)
    counts, n = [50, 5, 0], 100  # a class with no positive is clamped to 1
    out = ltml.logit_adjust(logits, counts, n, tau=0.7)
    p = np.array([50, 5, 1]) / n
    expected = logits.numpy() - 0.7 * np.log(p / (1 - p))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def test_search_tau_picks_the_best_candidate_on_the_given_split():
    targets = torch.tensor([[1, 0], [0, 1]])
    seen = []

    def scores_at(tau):
        seen.append(tau)
        return torch.full((2, 2), -abs(tau - 0.5))

    best, values = ltml.search_tau(scores_at, targets, lambda s, t: s[0, 0].item(), [0, 0.5, 2])
    assert (best, values, seen) == (0.5, [-0.5, 0.0, -1.5], [0, 0.5, 2])


# ------------------------------------------------------------------------------------------------
# The invariance facts: per-class increasing maps keep every AP, and move thresholded metrics
# ------------------------------------------------------------------------------------------------


def _thresholded(scores: torch.Tensor, targets: torch.Tensor) -> tuple[float, ...]:
    y, pred = targets.numpy(), (scores >= 0).numpy().astype(int)
    kw = {"zero_division": 0}
    return (
        precision_score(y, pred, average="macro", **kw),
        recall_score(y, pred, average="macro", **kw),
        f1_score(y, pred, average="macro", **kw),
        precision_score(y, pred, average="micro", **kw),
        recall_score(y, pred, average="micro", **kw),
        f1_score(y, pred, average="micro", **kw),
    )


def _random_head(seed: int):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(300, 16, generator=g, dtype=torch.float64)
    clf = _linear(16, 6, seed)
    with torch.no_grad():  # a head biased against the last classes, as after long-tailed training
        clf.weight.mul_(torch.linspace(2.0, 0.3, 6, dtype=torch.float64)[:, None])
        clf.bias.copy_(torch.linspace(0.5, -3.0, 6, dtype=torch.float64))
    targets = (torch.rand(300, 6, generator=g) < 0.3).long()
    return features, clf, targets


def _maps(clf: nn.Linear, seed: int):
    g = torch.Generator().manual_seed(seed + 100)
    lws = ltml.LearnableWeightScaling(clf, bias=True)
    with torch.no_grad():
        lws.scale.copy_(torch.rand(6, generator=g, dtype=torch.float64) * 3 + 0.1)
        lws.offset.copy_(torch.randn(6, generator=g, dtype=torch.float64))
    thresholds = torch.randn(6, generator=g, dtype=torch.float64)
    counts = torch.tensor([120, 60, 30, 10, 4, 1])
    return {
        "tau-norm": lambda x: ltml.tau_normalize(clf, 1.0)(x),
        "tau-norm + bias": lambda x: ltml.tau_normalize(clf, 1.5, bias=True)(x),
        "lws": lambda x: lws(x),
        "logit-adjust": lambda x: ltml.logit_adjust(clf(x), counts, 300, tau=1.0),
        "threshold": lambda x: clf(x) - thresholds,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "name", ["tau-norm", "tau-norm + bias", "lws", "logit-adjust", "threshold"]
)
def test_per_class_increasing_maps_keep_every_ap_and_move_thresholded_metrics(seed, name):
    features, clf, targets = _random_head(seed)
    with torch.no_grad():
        before = clf(features)
        after = _maps(clf, seed)[name](features)
    assert torch.equal(average_precision(after, targets), average_precision(before, targets))
    assert _thresholded(after, targets) != _thresholded(before, targets)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crt_and_ncm_change_the_ranking(seed):
    features, clf, targets = _random_head(seed)
    with torch.no_grad():
        before = average_precision(clf(features), targets)
        crt = ltml.retrain_classifier(features, targets, batch_size=64, lr=0.05, seed=seed)
        ncm = ltml.NearestClassMean.fit(features, targets)
        for scores in (crt(features), ncm(features)):
            assert not torch.equal(average_precision(scores, targets), before)


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def _bad_calls():
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6, 2))
    clf = nn.Linear(3, 2)
    return [
        (
            lambda: ltml.retrain_classifier(x, y[:5]),
            ValueError,
            "same number of rows N, got 6 and 5",
        ),
        (lambda: ltml.NearestClassMean.fit(x, y[:4]), ValueError, "same number of rows N"),
        (lambda: ltml.retrain_classifier(x.long(), y), TypeError, "`features` must be a floating"),
        (lambda: ltml.retrain_classifier(x[:0], y[:0]), ValueError, "at least one row, got N=0"),
        (lambda: ltml.retrain_classifier(x, y * 2), ValueError, "`labels` must contain only"),
        (lambda: ltml.retrain_classifier(x, y, epochs=0), ValueError, "`epochs` must be an"),
        (lambda: ltml.retrain_classifier(x, y, lr=0.0), ValueError, r"`lr` must be a finite"),
        (lambda: ltml.tau_normalize(clf, -0.5), ValueError, r"`tau` .* got -0.5"),
        (lambda: ltml.tau_normalize(nn.Conv1d(1, 1, 1)), TypeError, "must be an nn.Linear"),
        (lambda: ltml.logit_adjust(x, [1, 2], 6, tau=-1), ValueError, r"`tau` must be a"),
        (lambda: ltml.logit_adjust(x, [1, 2], 6), ValueError, "must have 3 entries"),
        (lambda: ltml.logit_adjust(x, [1, 2, 9], 6), ValueError, "cannot exceed num_images=6"),
        (
            lambda: ltml.learn_weight_scaling(nn.Linear(3, 4), x, y),
            ValueError,
            r"must have 4 columns \(the classifier's out_features\)",
        ),
        (lambda: ltml.search_tau(lambda t: x, y, lambda s, t: 0.0, []), ValueError, "`taus`"),
        (lambda: ltml.search_tau(lambda t: x, y, lambda s, t: 0.0, [-1]), ValueError, r"taus\[0\]"),
        (
            lambda: ltml.search_tau(lambda t: x[:, :2], y[:5], lambda s, t: 0.0),
            ValueError,
            "`scores_at\\(tau\\)` and `targets` must have the same number of rows",
        ),
        (lambda: ltml.NearestClassMean.fit(x, y)(x[:, :2]), ValueError, "must have 3 columns"),
    ]


@pytest.mark.parametrize("index", range(len(_bad_calls())))
def test_bad_input(index):
    call, error, match = _bad_calls()[index]
    with pytest.raises(error, match=match):
        call()
