"""The training path on CUDA tensors, checked without a GPU (fake tensors).

``torch._subclasses.fake_tensor.FakeTensorMode`` makes tensors that say ``device='cuda'`` and
carry shapes and dtypes but no data; operators run their meta functions and refuse what a real
GPU refuses: mixing a CUDA tensor with a CPU one (``FakeTensorDeviceMismatchError``). A value
read back to the host (``.item()``, ``bool(t)``) has no value to read and raises
``DataDependentOutputException``. So a CPU tensor created inside a step, or a host read in it,
fails here on the CPU, in CI. Modules built outside the mode move to the fake device with
``torch.__future__.set_overwrite_module_params_on_conversion(True)``; autocast on 'cuda' is
allowed by telling torch's Python check that CUDA is there (the dispatcher's autocast works on
fake CUDA tensors). Only forward passes: the autograd engine asks the CUDA driver for a context.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import (
    FakeTensorDeviceMismatchError,
    FakeTensorMode,
    unset_fake_temporarily,
)

import ltml
from ltml import DualBranchHead, LearnableWeightScaling, NearestClassMean, paired_forward
from ltml.decoupling import tau_normalize
from ltml.losses import (
    BCE,
    AsymmetricLoss,
    ClassBalancedFocalLoss,
    CrossBranchConsistency,
    DeferredReweightedBCE,
    DistributionBalancedLoss,
    FocalLoss,
    HillLoss,
    LogitCompensatedBCE,
    LTMLLoss,
    MultiFocalModifierLoss,
    ReflectiveLabelCorrector,
    SPLCLoss,
    WeightedBCE,
)
from ltml.metrics import meter as meter_module

HARNESS = Path(__file__).resolve().parents[1] / "examples" / "reproduce"
sys.path.insert(0, str(HARNESS))

from ltml_example import resolve  # noqa: E402
from ltml_example.model import build_model  # noqa: E402

COUNTS = [40, 12, 3, 1]
CUDA = torch.device("cuda", 0)


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTensorMode]:
    """A fake-tensor mode in which 'cuda' tensors exist and autocast on 'cuda' is on.

    Enter it after building the modules: inside it, CPU tensors are fake too, and a
    constructor's checks of its arguments (on the CPU, before training) would find no values.
    """
    monkeypatch.setattr("torch.cuda.amp.common.amp_definitely_not_available", lambda: False)
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda *a, **k: True)
    before = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        yield FakeTensorMode(allow_non_fake_inputs=True)
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(before)


def _batch(n: int = 8) -> tuple[Tensor, Tensor]:
    """Logits and 0 / 1 / -1 targets on the fake device (random values: only shapes matter)."""
    z = torch.randn(n, 4, device=CUDA)
    y = torch.randint(-1, 2, (n, 4), device=CUDA)
    return z, y


def _drw() -> DeferredReweightedBCE:
    loss = DeferredReweightedBCE(torch.tensor([1.0, 2.0, 3.0, 4.0]), start_epoch=0)
    loss.set_epoch(1)
    return loss


LOSSES: dict[str, Callable[[], nn.Module]] = {
    "bce": BCE,
    "bce_negative": lambda: BCE(unknown="negative"),
    "weighted_bce": lambda: WeightedBCE(COUNTS),
    "focal": lambda: FocalLoss(alpha=0.25),
    "cb_focal": lambda: ClassBalancedFocalLoss(COUNTS),
    "db": lambda: DistributionBalancedLoss(COUNTS, 60),
    "lcbce": lambda: LogitCompensatedBCE(COUNTS, 60),
    "lcbce_tied": lambda: LogitCompensatedBCE(COUNTS, 60, guard="tied"),
    "asl": AsymmetricLoss,
    "mfm": lambda: MultiFocalModifierLoss(COUNTS, torch.ones(4, 4)),
    "drw": _drw,
    "hill": HillLoss,
    "hill_negative": lambda: HillLoss(unknown="negative"),
    "splc": lambda: SPLCLoss(start_epoch=0),
}


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_losses_stay_on_the_device(fake_cuda: FakeTensorMode, name: str, reduction: str) -> None:
    module = LOSSES[name]()  # built on the CPU, as a user does, then moved
    module.reduction = reduction
    with fake_cuda:
        module = module.to(CUDA)
        z, y = _batch()
        out = module(z, y)
    assert out.device == CUDA
    assert out.shape == (() if reduction == "mean" else (8, 4))


def test_corrector_and_consistency_stay_on_the_device(fake_cuda: FakeTensorMode) -> None:
    corrector, consistency = ReflectiveLabelCorrector(COUNTS), CrossBranchConsistency()
    with fake_cuda:
        z, y = _batch()
        corrected = corrector.to(CUDA)(z, y.clamp(min=0))
        assert corrected.loss.device == CUDA
        assert corrected.targets.device == CUDA
        assert consistency(z, z.flip(0)).device == CUDA


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ltml_step_under_autocast(fake_cuda: FakeTensorMode, dtype: torch.dtype) -> None:
    """DualBranchHead, paired_forward and LTMLLoss: one step of the method, autocast on 'cuda'."""
    trunk = nn.Conv2d(3, 8, 3, padding=1)
    head = DualBranchHead(nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()), 8, 4)
    criterion = LTMLLoss(LogitCompensatedBCE(COUNTS, 60))
    with fake_cuda:
        trunk, head, criterion = trunk.to(CUDA), head.to(CUDA), criterion.to(CUDA)
        x_u, x_r = torch.randn(4, 3, 8, 8, device=CUDA), torch.randn(4, 3, 8, 8, device=CUDA)
        _, y = _batch()
        loss = _ltml_step(trunk, head, criterion, x_u, x_r, y, dtype)
    assert loss.total.device == CUDA
    assert loss.total.dtype == torch.float32


def _ltml_step(
    trunk: nn.Module,
    head: nn.Module,
    criterion: nn.Module,
    x_u: Tensor,
    x_r: Tensor,
    y: Tensor,
    dtype: torch.dtype,
) -> Any:
    with torch.autocast("cuda", dtype):
        out = head(*paired_forward(trunk, x_u, x_r))
        assert out.u is not None
        assert out.u.dtype == dtype  # autocast did run on the fake device
        return criterion(out, y[:4], y[4:])


def test_decoupled_heads_stay_on_the_device(fake_cuda: FakeTensorMode) -> None:
    linear = nn.Linear(5, 4)
    normed, lws = tau_normalize(linear, 0.5), LearnableWeightScaling(linear)
    ncm = NearestClassMean(torch.zeros(5), torch.randn(4, 5))
    with fake_cuda:
        features = torch.randn(6, 5, device=CUDA)
        for head in (normed, lws, ncm):
            assert head.to(CUDA)(features).device == CUDA


def _real(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` run outside the fake mode (CPU work that needs values)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        with unset_fake_temporarily():
            return function(*args, **kwargs)

    return run


def test_mix_batch_stays_on_the_device(
    fake_cuda: FakeTensorMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mix_batch on device tensors: its label check on the device (it read them back before).

    Its draws (lambda, the CutMix box) are host reads of CPU tensors, which a GPU run makes too:
    they run on real tensors here.
    """
    for name in ("_beta", "_cut_box"):
        monkeypatch.setattr(ltml.mixup, name, _real(getattr(ltml.mixup, name)))
    with fake_cuda:
        x = torch.randn(4, 3, 8, 8, device=CUDA)
        _, y = _batch(4)
        for method in ("mixup", "cutmix"):
            mixed = ltml.mix_batch(x, y.clamp(min=0), 0.4, method=method)
            assert mixed.inputs.device == mixed.targets.device == CUDA


@pytest.mark.parametrize(
    "row",
    ["ltml", "erm", "db-focal", "comic", "mixup", "u-only", "csra", "ml-decoder", "hill", "splc"],
)
def test_example_rows_forward_on_the_device(fake_cuda: FakeTensorMode, row: str) -> None:
    """The harness's model and criterion of a row, channels-last and autocast, as on a GPU."""
    flags = ["--row", row, "--arch", "resnet18", "--weights", "none", "--image-size", "32"]
    cfg = resolve(flags)
    labels = torch.tensor([[1, 0, 1, 0]] * 3 + [[0, 1, 0, 1]] * 2 + [[1, 1, 0, 0]] * 3)
    model = build_model(cfg, labels)
    model.set_train_mode(cfg)
    with fake_cuda:
        model = model.to(CUDA, memory_format=torch.channels_last)
        x = torch.randn(2, 3, 32, 32, device=CUDA).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 2, (2, 4), device=CUDA).float()
        streams: tuple[Any, ...] = (x, y, x, y)
        if cfg.branches == "u":
            streams = (x, y, None, None)
        elif cfg.branches == "r":
            streams = (None, None, x, y)
        with torch.autocast("cuda", torch.bfloat16):
            loss = model(*streams)
    assert loss.device == CUDA
    assert loss.shape == ()


class _Careless(nn.Module):
    """A forward that creates a CPU tensor: the bug these tests exist to catch."""

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.ones(x.shape[1])


def test_a_cpu_tensor_in_a_step_fails(fake_cuda: FakeTensorMode) -> None:
    """Control: a device mismatch raises here, as it would on a GPU."""
    with fake_cuda, pytest.raises(FakeTensorDeviceMismatchError):
        _Careless()(torch.randn(2, 3, device=CUDA))


def test_meter_update_reads_nothing_back(
    fake_cuda: FakeTensorMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mAPMeter.update on device scores and targets: checks on the device, no host read.

    The one read that remains (how many entries a device target batch knows, which decides
    dense or known-entry storage) is replaced: targets from a loader are on the CPU, where it
    reads nothing from the device.
    """
    monkeypatch.setattr(meter_module, "is_mostly_unknown", lambda y: False)
    for kind in ("logits", "probs"):
        meter = ltml.mAPMeter(4, scores=kind, top_k=2)
        with fake_cuda:
            z, y = _batch()
            meter.update(z.sigmoid() if kind == "probs" else z, y)
            assert meter._scores[0].device == CUDA


def test_eager_metric_checks_would_read_back(fake_cuda: FakeTensorMode) -> None:
    """Control: the CPU path's checks read values, which fake tensors refuse."""
    from torch._subclasses.fake_tensor import DataDependentOutputException

    from ltml._validation import as_metric_inputs

    with fake_cuda:
        z, y = _batch()
        with pytest.raises(DataDependentOutputException):
            as_metric_inputs(z, y)
