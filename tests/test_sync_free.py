"""The training path never makes the host wait for the device.

On a GPU, every ``.item()``, ``bool(tensor)``, ``torch.equal`` or ``nonzero`` in a training step
stalls the host until the device has caught up. CUDA tensors take the sync-free path of the
losses by default (:func:`ltml._validation.sync_free`); here that decision is forced on CPU
tensors, and every ATen operator of a forward + backward pass is recorded with a
``TorchDispatchMode``: none may be one that reads a value back to the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from ltml import CSRA, DeferredReweightedBCE, DualBranchHead, MLDecoder, paired_forward
from ltml.losses import (
    BCE,
    AsymmetricLoss,
    ClassBalancedFocalLoss,
    CrossBranchConsistency,
    DistributionBalancedLoss,
    FocalLoss,
    HeadTailBalancer,
    HillLoss,
    LogitCompensatedBCE,
    LTMLLoss,
    MultiFocalModifierLoss,
    SPLCLoss,
    WeightedBCE,
)
from ltml.losses import _core as loss_core

# What .item() / bool(tensor) / torch.equal / boolean indexing reach on the host.
HOST_READS = {"aten._local_scalar_dense", "aten.nonzero", "aten.equal"}
COUNTS = [40, 12, 3, 1]


class OpRecorder(TorchDispatchMode):
    """Records the name of every ATen operator that runs while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.fixture
def accelerator_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU tensors take the path that accelerator tensors take by default."""
    monkeypatch.setattr(loss_core, "sync_free", lambda x: True)


def _batch(unknown: bool = True) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 4, generator=g)
    y = (torch.rand(8, 4, generator=g) < 0.4).long()
    if unknown:
        y[1, 2] = -1
    return z, y


LOSSES: dict[str, Callable[[], nn.Module]] = {
    "bce": BCE,
    "weighted_bce": lambda: WeightedBCE(COUNTS),
    "focal": lambda: FocalLoss(alpha=0.25),
    "focal_gamma_half": lambda: FocalLoss(gamma=0.5),
    "cb_focal": lambda: ClassBalancedFocalLoss(COUNTS),
    "db": lambda: DistributionBalancedLoss(COUNTS, 60),
    "lcbce": lambda: LogitCompensatedBCE(COUNTS, 60),
    "lcbce_tied": lambda: LogitCompensatedBCE(COUNTS, 60, guard="tied"),
    "bce_negative": lambda: BCE(unknown="negative"),
    "asl": AsymmetricLoss,
    "asl_detached": lambda: AsymmetricLoss(gamma_pos=1.0, detach_focal_weight=True),
    "mfm": lambda: MultiFocalModifierLoss(COUNTS, torch.ones(4, 4)),
    "drw": lambda: _drw_active(),
    "hill": HillLoss,
    "hill_negative": lambda: HillLoss(unknown="negative"),
    "splc": lambda: SPLCLoss(start_epoch=0),
    "splc_negative": lambda: SPLCLoss(start_epoch=0, unknown="negative"),
    "htb": lambda: _Balanced(),
}


class _Balanced(nn.Module):
    """COMIC's head-tail balance on fixed expert logits, called as a loss of (logits, targets)."""

    def __init__(self) -> None:
        super().__init__()
        self.balancer = HeadTailBalancer(MultiFocalModifierLoss(COUNTS, torch.ones(4, 4)))
        g = torch.Generator().manual_seed(1)
        self.head, self.tail = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)

    @property
    def reduction(self) -> str:
        return str(self.balancer.criterion.reduction)

    @reduction.setter
    def reduction(self, value: str) -> None:
        self.balancer.criterion.reduction = value

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.balancer(self.head, self.tail, logits, targets)


def _drw_active() -> DeferredReweightedBCE:
    loss = DeferredReweightedBCE(torch.tensor([1.0, 2.0, 3.0, 4.0]), start_epoch=0)
    loss.set_epoch(1)
    return loss


def _loss_step(make: Callable[[], nn.Module], reduction: str) -> Callable[[], None]:
    z, y = _batch()
    module = make()
    module.reduction = reduction

    def step() -> None:
        logits = z.clone().requires_grad_(True)
        module(logits, y).sum().backward()

    return step


def _consistency_step(reduction: str) -> Callable[[], None]:
    a, _ = _batch()

    def step() -> None:
        x = a.clone().requires_grad_(True)
        CrossBranchConsistency(reduction=reduction)(x, x.flip(0)).sum().backward()

    return step


def _ltml_step() -> Callable[[], None]:
    """DualBranchHead.forward, paired_forward and LTMLLoss: one step of the method."""
    torch.manual_seed(0)
    trunk = nn.Conv2d(3, 8, 3, padding=1)
    head = DualBranchHead(nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()), 8, 4)
    criterion = LTMLLoss(LogitCompensatedBCE(COUNTS, 60))
    x_u, x_r = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    _, y = _batch()

    def step() -> None:
        out = head(*paired_forward(trunk, x_u, x_r))
        criterion(out, y[:4], y[4:]).total.backward()

    return step


STEPS: dict[str, Callable[[], Callable[[], None]]] = {
    **{
        f"{name}-{reduction}": (lambda m=make, r=reduction: _loss_step(m, r))
        for name, make in LOSSES.items()
        for reduction in ("mean", "sum", "none")
    },
    **{f"consistency-{r}": (lambda r=r: _consistency_step(r)) for r in ("mean", "none")},
    "ltml_step": _ltml_step,
}


def _attention_step(make: Callable[[], nn.Module], tokens: bool) -> Callable[[], None]:
    """A two-branch step whose branches end in an attention head, on a map or on tokens."""
    torch.manual_seed(0)
    head = DualBranchHead(nn.Identity(), 8, 4, classifier=make())
    criterion = LTMLLoss(BCE())
    shape = (4, 6, 8) if tokens else (4, 8, 3, 3)
    x_u, x_r = torch.randn(shape), torch.randn(shape)
    _, y = _batch()

    def step() -> None:
        feat_u, feat_r = x_u.clone().requires_grad_(True), x_r.clone().requires_grad_(True)
        criterion(head(feat_u, feat_r), y[:4], y[4:]).total.backward()

    return step


ATTENTION_HEADS: dict[str, Callable[[], nn.Module]] = {
    "csra": lambda: CSRA(8, 4, temperatures=(1.0, math.inf)),
    "ml_decoder": lambda: MLDecoder(8, 4, num_groups=2, embed_dim=8, num_heads=2),
}
STEPS.update(
    {
        f"{name}-{'tokens' if tokens else 'map'}": (lambda m=make, t=tokens: _attention_step(m, t))
        for name, make in ATTENTION_HEADS.items()
        for tokens in (False, True)
    }
)


def _recorded(step: Callable[[], None]) -> set[str]:
    with OpRecorder() as recorder:
        step()
    return recorder.ops


@pytest.mark.usefixtures("accelerator_mode")
@pytest.mark.parametrize("name", list(STEPS))
def test_training_path_reads_nothing_back(name: str) -> None:
    ops = _recorded(STEPS[name]())
    assert not ops & HOST_READS, f"host reads in the training path: {sorted(ops & HOST_READS)}"
    assert "aten._assert_async" in ops  # the value checks are still there, on the device


def test_cpu_tensors_are_checked_eagerly() -> None:
    """Control: without forcing, CPU tensors take the eager checks, which read values back."""
    ops = _recorded(_loss_step(BCE, "mean"))
    assert "aten._local_scalar_dense" in ops
    assert "aten._assert_async" not in ops


@pytest.mark.usefixtures("accelerator_mode")
@pytest.mark.parametrize("name", list(LOSSES))
def test_sync_free_path_gives_the_eager_values(name: str) -> None:
    z, y = _batch()
    for targets in (y, y.clamp(min=0)):  # with and without unknown labels
        for reduction in ("mean", "sum", "none"):
            module = LOSSES[name]()
            module.reduction = reduction
            a = z.clone().requires_grad_(True)
            got = module(a, targets)
            (grad,) = torch.autograd.grad(got.sum(), a)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(loss_core, "sync_free", lambda x: False)
                b = z.clone().requires_grad_(True)
                expected = module(b, targets)
                (grad_expected,) = torch.autograd.grad(expected.sum(), b)
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(grad, grad_expected, rtol=1e-6, atol=1e-7)


@pytest.mark.usefixtures("accelerator_mode")
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda z, y: BCE()(z * float("nan"), y), "`logits` must be finite"),
        (lambda z, y: LogitCompensatedBCE(COUNTS, 60)(z, y * 2), "`targets` must contain only"),
        (lambda z, y: FocalLoss()(z, y.float() / 2), "`targets` must contain only"),
        (lambda z, y: CrossBranchConsistency()(z, z / 0), "`second` must be finite"),
    ],
)
def test_bad_values_fail_as_device_assertions(call: Callable[..., Tensor], match: str) -> None:
    z, y = _batch()
    with pytest.raises(RuntimeError, match=match):
        call(z, y)


def _meter_batches() -> list[tuple[Tensor, Tensor]]:
    """Dense batches and one mostly-unknown batch (stored as its known entries)."""
    z, y = _batch()
    sparse = torch.full_like(y, -1)
    sparse[0, 1], sparse[2, 3], sparse[5, 0] = 1, 0, 1
    return [(z, y), (z.flip(0), y.clamp(min=0)), (z * 2, sparse)]


@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_meter_sync_free_path_gives_the_eager_values(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from ltml import mAPMeter
    from ltml.metrics import meter as meter_module

    results = []
    for forced in (False, True):
        monkeypatch.setattr(meter_module, "sync_free", lambda x, f=forced: f)
        meter = mAPMeter(4, scores=kind, top_k=2)
        for z, y in _meter_batches():
            meter.update(z.sigmoid() if kind == "probs" else z, y)
        results.append(meter.compute().as_dict())
    assert results[0] == results[1]


def test_meter_update_checks_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced onto the device path, the meter's value checks are device assertions."""
    from ltml import mAPMeter
    from ltml.metrics import meter as meter_module

    monkeypatch.setattr(meter_module, "sync_free", lambda x: True)
    z, y = _batch()
    ops = _recorded(lambda: mAPMeter(4).update(z, y.clamp(min=0)))
    assert "aten._assert_async" in ops
    assert not ops & {"aten.nonzero", "aten.equal"}
    with pytest.raises(RuntimeError, match="`scores` must be finite"):
        mAPMeter(4).update(z / 0, y)
    with pytest.raises(RuntimeError, match=r"`scores` must be probabilities in \[0, 1\]"):
        mAPMeter(4, scores="probs").update(z, y)
    with pytest.raises(ValueError, match="`targets` must contain only"):
        mAPMeter(4).update(z, y * 2)  # CPU targets: checked eagerly, nothing to wait for


def test_mix_batch_checks_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import ltml.mixup
    from ltml import mix_batch

    x, (_, y) = torch.randn(8, 3), _batch()
    g = torch.Generator
    eager = mix_batch(x, y, 0.4, generator=g().manual_seed(0))
    monkeypatch.setattr(ltml.mixup, "sync_free", lambda t: True)
    ops = _recorded(lambda: mix_batch(x, y, 0.4, generator=g().manual_seed(0)))
    assert "aten._assert_async" in ops
    forced = mix_batch(x, y, 0.4, generator=g().manual_seed(0))
    torch.testing.assert_close(forced.targets, eager.targets)
    with pytest.raises(RuntimeError, match="`targets` must contain only"):
        mix_batch(x, y * 2, 0.4)
