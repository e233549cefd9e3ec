"""Tests for ltml.heads: the two-branch head and the paired forward.

The ResNet split (``resnet_dual_branch``, in ltml.backbones) builds the heads of many tests; its
own tests are in test_backbones.py.
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18

from ltml import DualBranchHead, DualBranchOutput, paired_forward, resnet_dual_branch

NUM_CLASSES = 5


def _seeded(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """Build a module from a fixed seed without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _resnet18_split(concat: bool = True, seed: int = 0) -> tuple[nn.Sequential, DualBranchHead]:
    resnet = _seeded(lambda: resnet18(weights=None), seed)
    return _seeded(lambda: resnet_dual_branch(resnet, NUM_CLASSES, concat=concat), seed)


def _images(n: int, seed: int) -> Tensor:
    return _randn(n, 3, 64, 64, seed=seed)


def _distinct_branches(head: DualBranchHead, seed: int = 1) -> None:
    """Re-initialise branch R's parameters so that the two branches compute different functions."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.branch_r.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _selector_head(num_classes: int, dtype: torch.dtype = torch.float32) -> DualBranchHead:
    """Identity head on features ``[U | R]`` whose branch U outputs ``U`` and branch R ``R``."""
    head = DualBranchHead(nn.Identity(), 2 * num_classes, num_classes).to(dtype)
    eye = torch.eye(num_classes, dtype=dtype)
    zero = torch.zeros_like(eye)
    with torch.no_grad():
        head.branch_u.classifier.weight.copy_(torch.cat([eye, zero], dim=1))
        head.branch_r.classifier.weight.copy_(torch.cat([zero, eye], dim=1))
        head.branch_u.classifier.bias.zero_()
        head.branch_r.classifier.bias.zero_()
    return head


def _logit_of_mean_prob_float64(u: Tensor, r: Tensor) -> Tensor:
    """Literal transcription: log(mean p) - log(mean (1 - p)) over the two branches, in float64."""
    p = (torch.sigmoid(u.double()) + torch.sigmoid(r.double())) / 2
    return torch.log(p) - torch.log(1 - p)


# --- shapes and which outputs are computed -----------------------------------------------------


@pytest.mark.parametrize(
    ("give_u", "give_r", "cross", "expected"),
    [
        (True, True, True, {"u", "u_hat", "r", "r_hat"}),
        (True, True, False, {"u", "r"}),
        (True, False, True, {"u", "u_hat"}),
        (True, False, False, {"u"}),
        (False, True, True, {"r", "r_hat"}),
        (False, True, False, {"r"}),
    ],
)
def test_outputs_shapes_and_skipped_work(
    give_u: bool, give_r: bool, cross: bool, expected: set[str]
) -> None:
    trunk, head = _resnet18_split()
    feat_u = trunk(_images(3, seed=1)) if give_u else None
    feat_r = trunk(_images(2, seed=2)) if give_r else None
    out = head(feat_u, feat_r, cross=cross)
    assert isinstance(out, DualBranchOutput)
    rows = {"u": 3, "u_hat": 3, "r": 2, "r_hat": 2}
    for name in DualBranchOutput._fields:
        value = getattr(out, name)
        if name in expected:
            assert value.shape == (rows[name], NUM_CLASSES), name
        else:
            assert value is None, name


def test_skipped_outputs_skip_the_branch_call() -> None:
    head = DualBranchHead(nn.Identity(), 4, NUM_CLASSES)
    calls = {"u": [], "r": []}
    head.branch_u.register_forward_hook(lambda m, i, o: calls["u"].append(i[0].shape[0]))
    head.branch_r.register_forward_hook(lambda m, i, o: calls["r"].append(i[0].shape[0]))
    head(_randn(3, 4), _randn(2, 4))
    assert calls == {"u": [5], "r": [5]}  # one call per branch over both batches
    calls["u"].clear(), calls["r"].clear()
    head(_randn(3, 4), None, cross=False)
    assert calls == {"u": [3], "r": []}
    head(None, _randn(2, 4), cross=False)
    assert calls == {"u": [3], "r": [2]}
    calls["u"].clear(), calls["r"].clear()
    head.predict(_randn(3, 4), mode="r")
    assert calls == {"u": [], "r": [3]}


# --- independence of the branches --------------------------------------------------------------


def test_branches_share_no_parameter_and_start_equal() -> None:
    trunk, head = _resnet18_split()
    ptr_u = {p.data_ptr() for p in head.branch_u.parameters()}
    ptr_r = {p.data_ptr() for p in head.branch_r.parameters()}
    ptr_trunk = {p.data_ptr() for p in trunk.parameters()}
    assert ptr_u.isdisjoint(ptr_r)
    assert ptr_trunk.isdisjoint(ptr_u | ptr_r)
    sd_u, sd_r = head.branch_u.state_dict(), head.branch_r.state_dict()
    assert sd_u.keys() == sd_r.keys()
    for key in sd_u:
        assert torch.equal(sd_u[key], sd_r[key]), key
        assert sd_u[key].data_ptr() != sd_r[key].data_ptr(), key  # buffers too


def test_branches_are_copies_of_layer4() -> None:
    resnet = _seeded(lambda: resnet18(weights=None))
    _, head = resnet_dual_branch(resnet, NUM_CLASSES)
    ref = copy.deepcopy(resnet.layer4.state_dict())
    for branch in (head.branch_u, head.branch_r):
        for key, value in branch.features.state_dict().items():
            assert torch.equal(value, ref[key]), key
    with torch.no_grad():  # copies, not aliases: changing the original leaves the head alone
        resnet.layer4[0].conv1.weight.add_(1.0)
    assert torch.equal(head.branch_u.features[0].conv1.weight, ref["0.conv1.weight"])


def test_outputs_come_from_the_documented_branch() -> None:
    trunk, head = _resnet18_split()
    _distinct_branches(head)
    head.eval()
    feat_u, feat_r = trunk.eval()(_images(3, seed=1)), trunk(_images(2, seed=2))
    with torch.no_grad():
        out = head(feat_u, feat_r)
        reference = DualBranchOutput(  # u = f(x_u), u_hat = g(x_u), r = g(x_r), r_hat = f(x_r)
            u=head.branch_u(feat_u),
            u_hat=head.branch_r(feat_u),
            r=head.branch_r(feat_r),
            r_hat=head.branch_u(feat_r),
        )
    for name in DualBranchOutput._fields:
        torch.testing.assert_close(getattr(out, name), getattr(reference, name), msg=name)
    assert not torch.allclose(out.u, out.u_hat, atol=1e-3)  # the branches really differ


def test_perturbing_branch_r_classifier_moves_only_its_outputs() -> None:
    trunk, head = _resnet18_split()
    head.eval()
    feats = trunk.eval()(_images(3, seed=1)), trunk(_images(2, seed=2))
    with torch.no_grad():
        before = head(*feats)
        head.branch_r.classifier.bias.add_(1.0)
        after = head(*feats)
    torch.testing.assert_close(after.u, before.u, rtol=0, atol=0)
    torch.testing.assert_close(after.r_hat, before.r_hat, rtol=0, atol=0)
    torch.testing.assert_close(after.u_hat, before.u_hat + 1.0)
    torch.testing.assert_close(after.r, before.r + 1.0)


def test_gradients_reach_trunk_and_both_branches() -> None:
    trunk, head = _resnet18_split()
    _distinct_branches(head)
    y_u = (_randn(3, NUM_CLASSES, seed=3) > 0).float()
    y_r = (_randn(2, NUM_CLASSES, seed=4) > 0).float()
    out = head(*paired_forward(trunk, _images(3, seed=1), _images(2, seed=2)))
    loss = sum(
        F.binary_cross_entropy_with_logits(logits, y)
        for logits, y in ((out.u, y_u), (out.u_hat, y_u), (out.r, y_r), (out.r_hat, y_r))
    )
    loss.backward()
    for name, p in [*trunk.named_parameters(), *head.named_parameters()]:
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_gradient_of_u_reaches_branch_u_only() -> None:
    trunk, head = _resnet18_split()
    out = head(*paired_forward(trunk, _images(3, seed=1), _images(2, seed=2)))
    out.u.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.branch_u.parameters())
    assert all(p.grad is None for p in head.branch_r.parameters())


# --- inference -----------------------------------------------------------------------------------


def test_predict_prob_matches_float64_reference_on_moderate_logits() -> None:
    u, r = 6 * _randn(64, NUM_CLASSES, seed=1), 6 * _randn(64, NUM_CLASSES, seed=2)
    head = _selector_head(NUM_CLASSES)
    with torch.no_grad():
        scores = head.predict(torch.cat([u, r], dim=1))
    assert scores.dtype == torch.float32
    expected = _logit_of_mean_prob_float64(u, r)
    torch.testing.assert_close(scores.double(), expected, rtol=1e-6, atol=1e-5)
    # same ranking as the average of the probabilities
    mean_p = (torch.sigmoid(u.double()) + torch.sigmoid(r.double())) / 2
    assert torch.equal(scores.argsort(dim=0), mean_p.argsort(dim=0))


def test_predict_prob_in_float64_is_exact() -> None:
    u, r = 6 * _randn(64, 3, seed=1, dtype=torch.float64), 6 * _randn(64, 3, seed=2).double()
    head = _selector_head(3, torch.float64)
    with torch.no_grad():
        scores = head.predict(torch.cat([u, r], dim=1))
    torch.testing.assert_close(scores, _logit_of_mean_prob_float64(u, r), rtol=1e-12, atol=1e-12)


def test_predict_prob_does_not_saturate() -> None:
    # rows: both branches at +-40 and +-41, so mean p = sigmoid(+-40) / sigmoid(+-41)
    u = torch.tensor([[40.0], [41.0], [-40.0], [-41.0], [40.0], [45.0]])
    r = torch.tensor([[40.0], [41.0], [-40.0], [-41.0], [-40.0], [0.0]])
    head = _selector_head(1)
    with torch.no_grad():
        scores = head.predict(torch.cat([u, r], dim=1)).flatten()
    # logit(sigmoid(x)) = x; logit((sigmoid(40) + sigmoid(-40)) / 2) = 0; (1 + 1/2) / 2 -> log 3
    expected = torch.tensor([40.0, 41.0, -40.0, -41.0, 0.0, torch.log(torch.tensor(3.0)).item()])
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-5)
    assert scores[1] > scores[0]
    assert scores[3] < scores[2]
    # what the prob mode avoids: float32 sigmoid-then-average ties 40 with 41
    naive = (torch.sigmoid(u) + torch.sigmoid(r)) / 2
    assert naive[0] == naive[1] == 1.0


@pytest.mark.parametrize("mode", ["logit", "u", "r"])
def test_predict_other_modes(mode: str) -> None:
    u, r = 6 * _randn(8, NUM_CLASSES, seed=1), 6 * _randn(8, NUM_CLASSES, seed=2)
    expected = {"logit": (u + r) / 2, "u": u, "r": r}[mode]
    with torch.no_grad():
        scores = _selector_head(NUM_CLASSES).predict(torch.cat([u, r], dim=1), mode=mode)
    torch.testing.assert_close(scores, expected)


def test_one_argument_forward_is_deprecated_and_gives_predict_prob() -> None:
    trunk, head = _resnet18_split()
    _distinct_branches(head)
    head.eval()
    feat = trunk.eval()(_images(3, seed=1))
    with torch.no_grad():
        with pytest.warns(
            FutureWarning, match=r"one argument is deprecated.*head\.predict\(feat\)"
        ):
            scores = head(feat)
        assert torch.equal(scores, head.predict(feat, mode="prob"))
        assert torch.equal(scores, head.predict(feat))  # "prob" is predict's default
        assert not torch.equal(scores, head.predict(feat, mode="logit"))  # the modes differ here
        out = head(feat, feat)
        torch.testing.assert_close(scores, _logit_of_mean_prob_float64(out.u, out.r).float())


def test_deprecation_points_at_the_callers_line() -> None:
    head = DualBranchHead(nn.Identity(), 4, 3)
    with pytest.warns(FutureWarning) as record:
        head(_randn(2, 4))
    assert [w.filename for w in record] == [__file__]


def test_deprecation_stacklevel_reaches_the_caller_past_trampolines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same, counted on the stack as written: a mutation run (benchmarks/mutation.py) wraps
    # each function of the mutated module in frames of mutmut's own, left out here, so that
    # this test keeps the stacklevel checked there (where the test above cannot pass).
    head = DualBranchHead(nn.Identity(), 4, 3)
    feat = _randn(2, 4)
    origins = []

    def record(message: str, category: type[Warning], stacklevel: int = 1) -> None:
        frame, frames = sys._getframe(1), []  # from the caller of warnings.warn outwards
        while frame is not None:
            if frame.f_globals.get("__name__", "").split(".")[0] != "mutmut":
                frames.append(frame)
            frame = frame.f_back
        origins.append((category, frames[stacklevel - 1].f_code))

    def call() -> Tensor:
        return head(feat)

    monkeypatch.setattr(warnings, "warn", record)
    call()
    assert origins == [(FutureWarning, call.__code__)]


def test_two_argument_forward_and_predict_do_not_warn() -> None:
    head = DualBranchHead(nn.Identity(), 4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head(_randn(2, 4), _randn(2, 4))
        head(_randn(2, 4), None, cross=False)
        head.predict(_randn(2, 4))


def test_predict_upcasts_half_precision() -> None:
    u, r = 6 * _randn(8, 3, seed=1), 6 * _randn(8, 3, seed=2)
    head = _selector_head(3, torch.bfloat16)
    with torch.no_grad():
        scores = head.predict(torch.cat([u, r], dim=1).bfloat16())
    assert scores.dtype == torch.float32
    expected = _logit_of_mean_prob_float64(u.bfloat16(), r.bfloat16())
    torch.testing.assert_close(scores.double(), expected, rtol=1e-5, atol=1e-5)


# --- concatenation and BatchNorm -----------------------------------------------------------------


def _train_eval_split(concat: bool) -> tuple[nn.Sequential, DualBranchHead]:
    trunk, head = _resnet18_split(concat=concat)
    _distinct_branches(head)
    return trunk, head


@pytest.mark.parametrize("bn", ["eval", "frozen"])
def test_concat_equals_separate_passes_without_batch_statistics(bn: str) -> None:
    (trunk, head_cat), (_, head_sep) = _train_eval_split(True), _train_eval_split(False)
    for module in (trunk, head_cat, head_sep):
        if bn == "eval":
            module.eval()
        else:  # training mode, BatchNorm layers frozen as in the DB-loss recipe
            module.train()
            for m in module.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
    x_u, x_r = _images(3, seed=1), _images(2, seed=2)
    with torch.no_grad():
        feats_cat = paired_forward(trunk, x_u, x_r)
        feats_sep = paired_forward(trunk, x_u, x_r, concat=False)
        for a, b in zip(feats_cat, feats_sep, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        out_cat, out_sep = head_cat(*feats_sep), head_sep(*feats_sep)
    for name in DualBranchOutput._fields:
        a, b = getattr(out_cat, name), getattr(out_sep, name)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


def test_concat_in_training_mode_pools_batch_statistics() -> None:
    """Documented difference: BN in training mode sees both batches at once when concatenated."""
    (_, head_cat), (_, head_sep) = _train_eval_split(True), _train_eval_split(False)
    feat_u, feat_r = _randn(3, 256, 4, 4, seed=1), 3 + _randn(2, 256, 4, 4, seed=2)
    reference = copy.deepcopy(head_cat.branch_u)
    out_cat, out_sep = head_cat(feat_u, feat_r), head_sep(feat_u, feat_r)
    with torch.no_grad():  # oracle: branch U over the concatenated batch, and over each batch
        pooled = reference(torch.cat([feat_u, feat_r]))
    torch.testing.assert_close(out_cat.u, pooled[:3])
    torch.testing.assert_close(out_cat.r_hat, pooled[3:])
    with torch.no_grad():
        torch.testing.assert_close(out_sep.u, copy.deepcopy(reference)(feat_u))
    assert not torch.allclose(out_cat.u, out_sep.u, atol=1e-3)
    for branch in ("branch_u", "branch_r"):  # both branches honour the head's `concat`
        bn_cat = getattr(head_cat, branch).features[0].bn1
        bn_sep = getattr(head_sep, branch).features[0].bn1
        assert (int(bn_cat.num_batches_tracked), int(bn_sep.num_batches_tracked)) == (1, 2)


def test_paired_forward_splits_in_order() -> None:
    module = nn.Linear(4, 3)
    x_u, x_r = _randn(5, 4, seed=1), _randn(2, 4, seed=2)
    out_u, out_r = paired_forward(module, x_u, x_r)
    with torch.no_grad():
        torch.testing.assert_close(out_u, module(x_u))
        torch.testing.assert_close(out_r, module(x_r))
    assert paired_forward(module, None, x_r)[0] is None
    assert paired_forward(module, x_u, None)[1] is None


# --- compile, serialisation, construction --------------------------------------------------------


@pytest.mark.parametrize(
    "backend",
    # aot_eager traces like inductor (fullgraph: no graph break) without compiling C++ kernels
    ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)],
)
def test_torch_compile_matches_eager(backend: str) -> None:
    torch._dynamo.reset()
    branch = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
    head = _seeded(lambda: DualBranchHead(branch, 16, NUM_CLASSES))
    _distinct_branches(head)
    compiled = torch.compile(head, fullgraph=True, backend=backend)
    feat_u, feat_r = _randn(4, 8, 5, 5, seed=1), _randn(4, 8, 5, 5, seed=2)
    head.eval()
    with torch.no_grad():
        out_c, out_e = compiled(feat_u, feat_r), head(feat_u, feat_r)
        for name in DualBranchOutput._fields:
            a, b = getattr(out_c, name), getattr(out_e, name)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)
        if backend == "aot_eager":  # the inference form too (a second graph: cheap here only)
            predict = torch.compile(head.predict, fullgraph=True, backend=backend)
            torch.testing.assert_close(predict(feat_u), head.predict(feat_u), rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip() -> None:
    trunk, head = _resnet18_split(seed=0)
    _distinct_branches(head)
    _, fresh = _resnet18_split(seed=1)
    fresh.load_state_dict(head.state_dict())
    assert {k.split(".")[0] for k in head.state_dict()} == {"branch_u", "branch_r"}
    head.eval(), fresh.eval()
    feats = trunk.eval()(_images(3, seed=1)), trunk(_images(2, seed=2))
    with torch.no_grad():
        for a, b in zip(head(*feats), fresh(*feats), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_features_only_head_on_vectors() -> None:
    head = DualBranchHead(nn.Identity(), 6, NUM_CLASSES)
    out = head(_randn(3, 6, seed=1), _randn(2, 6, seed=2))
    assert out.u.shape == (3, NUM_CLASSES)
    assert out.r.shape == (2, NUM_CLASSES)
    assert head.in_channels == 6


def test_branch_pools_every_spatial_dimension() -> None:
    """A branch may output (N, D) or (N, D, *spatial) of any rank, e.g. 1-D sequences."""
    head = DualBranchHead(nn.Identity(), 4, NUM_CLASSES)
    for shape in ((2, 4), (2, 4, 5), (2, 4, 3, 2), (2, 4, 2, 2, 2)):
        feat = _randn(*shape, seed=len(shape))
        pooled = feat.flatten(2).mean(dim=2) if feat.ndim > 2 else feat
        with torch.no_grad():
            expected = head.branch_r.classifier(pooled)
            torch.testing.assert_close(head.predict(feat, mode="r"), expected, msg=str(shape))


def test_head_owns_its_copies_of_the_branch() -> None:
    """The caller's module is copied, not shared: training the head leaves it untouched."""
    branch = nn.Sequential(nn.Linear(4, 4))
    head = DualBranchHead(branch, 4, NUM_CLASSES)
    ptr_given = {p.data_ptr() for p in branch.parameters()}
    for copy_ in (head.branch_u, head.branch_r):
        assert ptr_given.isdisjoint(p.data_ptr() for p in copy_.features.parameters())
    assert head.num_classes == NUM_CLASSES
    assert repr(head).startswith(
        f"DualBranchHead(\n  num_classes={NUM_CLASSES}, in_channels=None, concat=True\n"
    )


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"in_features": 0}, ValueError, r"`in_features` must be an integer >= 1, got 0"),
        ({"in_features": -3}, ValueError, r"`in_features` must be an integer >= 1, got -3"),
        ({"in_features": None}, TypeError, r"`in_features` must be an integer, got None"),
        (
            {"in_features": 0, "classifier": nn.Linear(4, 3)},
            ValueError,
            r"`in_features` must be an integer >= 1, got 0",
        ),
        ({"num_classes": 0}, ValueError, r"`num_classes` must be an integer >= 1, got 0"),
        ({"num_classes": 2.0}, TypeError, r"`num_classes` must be an integer, got float"),
        ({"num_classes": True}, TypeError, r"`num_classes` must be an integer, got bool"),
        ({"in_channels": 0}, ValueError, r"`in_channels` must be an integer >= 1, got 0"),
        ({"branch": "layer4"}, TypeError, r"`branch` must be an nn.Module, got str"),
        ({"concat": "no"}, TypeError, r"`concat` must be True or False, got str 'no'"),
    ],
)
def test_constructor_rejects_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"branch": nn.Identity(), "in_features": 4, "num_classes": 3}
    with pytest.raises(error, match=match):
        DualBranchHead(**{**arguments, **kwargs})  # type: ignore[arg-type]


def test_in_features_may_be_left_out_when_a_classifier_replaces_the_linear_one() -> None:
    head = DualBranchHead(nn.Identity(), None, 3, classifier=nn.Linear(4, 3))
    assert head.in_channels is None  # unchecked: the classifier says nothing of its input
    assert head.eval().predict(torch.randn(2, 4)).shape == (2, 3)


def test_forward_rejects_bad_features() -> None:
    _trunk, head = _resnet18_split()
    feat = _randn(2, 256, 4, 4)
    with pytest.raises(
        ValueError,
        match=r"`feat_u` and `feat_r` must have the same shape except the batch dimension, "
        r"got \(2, 256, 4, 4\) and \(2, 256, 2, 2\)",
    ):
        head(feat, _randn(2, 256, 2, 2))
    with pytest.raises(
        ValueError, match=r"`feat_r` must have 256 channels \(in_channels\).*\(2, 512, 4, 4\)"
    ):
        head(feat, _randn(2, 512, 4, 4))
    with pytest.raises(ValueError, match=r"`feat` must have 256 channels.*\(2, 128, 4, 4\)"):
        head.predict(_randn(2, 128, 4, 4))
    with pytest.raises(ValueError, match=r"at least one of `feat_u` and `feat_r`"):
        head(None, None)
    with (
        pytest.warns(FutureWarning),
        pytest.raises(TypeError, match=r"`feat` must be a torch.Tensor, got NoneType"),
    ):
        head(None)
    with pytest.raises(TypeError, match=r"`feat_u` must be a floating-point tensor, got dtype"):
        head(feat.long(), feat)
    with pytest.raises(TypeError, match=r"`feat_r` must be a torch.Tensor, got ndarray"):
        head(feat, feat.numpy())
    with pytest.raises(ValueError, match=r"`feat` must be at least 2-D"):
        DualBranchHead(nn.Identity(), 4, 3).predict(_randn(4))


def test_forward_rejects_branch_output_not_matching_in_features() -> None:
    head = DualBranchHead(nn.Conv2d(8, 16, 1), in_features=32, num_classes=3)
    with pytest.raises(
        ValueError, match=r"the branch must output \(N, 32\) features.*got shape \(\d+, 16\)"
    ):
        head(_randn(2, 8, 3, 3), _randn(2, 8, 3, 3))


def test_paired_forward_rejects_mismatched_batches() -> None:
    with pytest.raises(ValueError, match=r"`x_u` and `x_r` must have the same shape except"):
        paired_forward(nn.Identity(), _randn(2, 3), _randn(2, 4))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("layer4", _randn(2, 3), _randn(2, 3)), {}, TypeError, r"`module` must be a callable"),
        ((nn.Identity(), _randn(2, 3), _randn(2, 3)), {"concat": 1}, TypeError, r"`concat` must"),
        ((nn.Identity(), [1.0], _randn(2, 3)), {}, TypeError, r"`x_u` must be a torch.Tensor"),
        ((nn.Identity(), _randn(2, 3), [1.0]), {}, TypeError, r"`x_r` must be a torch.Tensor"),
    ],
)
def test_paired_forward_rejects_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        paired_forward(*args, **kwargs)  # type: ignore[call-overload]


def test_forward_rejects_a_non_bool_cross() -> None:
    head = DualBranchHead(nn.Identity(), 4, 3)
    with pytest.raises(TypeError, match=r"`cross` must be True or False, got str 'yes'"):
        head(_randn(2, 4), _randn(2, 4), cross="yes")


def test_predict_rejects_unknown_mode() -> None:
    head = DualBranchHead(nn.Identity(), 4, 3)
    with pytest.raises(
        ValueError,
        match=r"`mode` must be one of 'prob', 'logit', 'u', 'r', got str 'mean'",
    ):
        head.predict(_randn(2, 4), mode="mean")  # type: ignore[arg-type]


def test_a_classifier_reads_the_unpooled_branch_output_in_each_branch():
    from ltml import CSRA

    csra = _seeded(lambda: CSRA(8, NUM_CLASSES))
    head = DualBranchHead(nn.Identity(), 8, NUM_CLASSES, classifier=csra)
    assert head.in_channels is None  # tokens put D last: no check of dimension 1
    tokens = _randn(3, 5, 8, seed=2)
    out = head(tokens, tokens)
    torch.testing.assert_close(out.u, csra(tokens))
    torch.testing.assert_close(out.r, csra(tokens))
    # each branch owns a deep copy: no parameter shared with the other branch or the caller's
    given = {p.data_ptr() for p in csra.parameters()}
    ptr_u = {p.data_ptr() for p in head.branch_u.classifier.parameters()}
    ptr_r = {p.data_ptr() for p in head.branch_r.classifier.parameters()}
    assert ptr_u
    assert ptr_u.isdisjoint(ptr_r)
    assert given.isdisjoint(ptr_u | ptr_r)
