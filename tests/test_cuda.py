"""CUDA-only checks, skipped without a GPU; ``benchmarks/gpu_check.py`` runs them on one.

What fake tensors (tests/test_fake_cuda.py) cannot check: values computed on the GPU equal the
CPU's, and a training step makes no synchronising call (``torch.cuda.set_sync_debug_mode``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ltml
from ltml import DualBranchHead, paired_forward
from ltml.losses import LogitCompensatedBCE, LTMLLoss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
COUNTS = [40, 12, 3, 1]


def _batch(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 4, generator=g)
    y = (torch.rand(8, 4, generator=g) < 0.4).long()
    y[1, 2] = -1
    return z.to(device), y.to(device)


def test_ltml_step_makes_no_synchronising_call() -> None:
    torch.manual_seed(0)
    trunk = nn.Conv2d(3, 8, 3, padding=1).cuda()
    head = DualBranchHead(nn.Sequential(nn.Conv2d(8, 8, 3), nn.ReLU()), 8, 4).cuda()
    criterion = LTMLLoss(LogitCompensatedBCE(COUNTS, 60)).cuda()
    x_u, x_r = torch.randn(4, 3, 8, 8).cuda(), torch.randn(4, 3, 8, 8).cuda()
    _, y = _batch("cuda")
    for dtype in (torch.float16, torch.bfloat16):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            with torch.autocast("cuda", dtype):
                out = head(*paired_forward(trunk, x_u, x_r))
                loss = criterion(out, y[:4], y[4:]).total
            loss.backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert torch.isfinite(loss).item()


def test_losses_on_the_gpu_equal_the_cpus() -> None:
    z, y = _batch("cpu")
    loss = LogitCompensatedBCE(COUNTS, 60)
    expected = loss(z, y)
    torch.testing.assert_close(loss.cuda()(z.cuda(), y.cuda()).cpu(), expected)


def test_meter_on_the_gpu_equals_the_cpus() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(300, 6, generator=g)
    targets = (torch.rand(300, 6, generator=g) < 0.3).long()
    targets[::7, 2] = -1
    results = []
    for device in ("cpu", "cuda"):
        meter = ltml.mAPMeter(6, scores="logits", top_k=2)
        for k in range(0, 300, 64):
            meter.update(scores[k : k + 64].to(device), targets[k : k + 64])
        results.append(meter.compute().as_dict())
    assert results[0] == pytest.approx(results[1], rel=1e-6, nan_ok=True)


def test_meter_update_makes_no_synchronising_call() -> None:
    meter = ltml.mAPMeter(4, scores="logits", top_k=2)
    z, y = _batch("cuda")
    y_cpu = y.cpu()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        meter.update(z, y_cpu)  # targets from a loader stay on the CPU
    finally:
        torch.cuda.set_sync_debug_mode("default")
