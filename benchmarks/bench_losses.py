"""Forward + backward time of ltml's losses against what users would otherwise call.

    PYTHONPATH=src python benchmarks/bench_losses.py [--threads 1] [--repeat 200]

References: torch's BCEWithLogitsLoss, torchvision.ops.sigmoid_focal_loss, and a transcription of
the Distribution-Balanced loss as the authors compute it (BCE evaluated twice, for p_t and for the
loss). Ours also validate their inputs (one device sync) and mask -1 targets.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

import ltml


def db_reference_style(z, y, inv_freq, bias, neg_scale=5.0, alpha=0.1, beta=10.0, mu=0.3):
    repeat = (y * inv_freq).sum(1, keepdim=True)
    w = torch.sigmoid(beta * (inv_freq / repeat - mu)) + alpha
    z = z + bias  # (out of place here)
    z = z * (1 - y) * neg_scale + z * y
    w = w / neg_scale * (1 - y) + w * y
    pt = torch.exp(-F.binary_cross_entropy_with_logits(z, y, reduction="none"))
    loss = F.binary_cross_entropy_with_logits(z, y, weight=w, reduction="none")
    return (2.0 * (1 - pt) ** 2 * loss).mean()


def timed(fn: Callable[[], torch.Tensor], repeat: int) -> float:
    for _ in range(10):
        fn().backward()
    start = time.perf_counter()
    for _ in range(repeat):
        fn().backward()
    return (time.perf_counter() - start) / repeat * 1e6


def bench_shape(n: int, c: int, g: torch.Generator, repeat: int) -> None:
    counts = torch.randint(1, 500, (c,), generator=g)
    z = torch.randn(n, c, generator=g).requires_grad_(True)
    y = (torch.rand(n, c, generator=g) < 0.1).float()
    db = ltml.DistributionBalancedLoss(counts, 2000)
    rows = [
        (
            "BCE",
            lambda: ltml.functional.bce(z, y),
            lambda: F.binary_cross_entropy_with_logits(z, y),
        ),
        (
            "focal (alpha=0.25)",
            lambda: ltml.functional.focal_loss(z, y, alpha=0.25),
            lambda: sigmoid_focal_loss(z, y, reduction="mean"),
        ),
        (
            "DB-Focal",
            lambda: db(z, y),
            lambda: db_reference_style(z, y, db.inv_freq, db.bias),
        ),
    ]
    for name, ours, ref in rows:
        torch.testing.assert_close(ours(), ref(), rtol=1e-5, atol=1e-7)
        t_ours, t_ref = timed(ours, repeat), timed(ref, repeat)
        print(f"{f'{n}x{c}':>12} {name:>22} {t_ours:9.1f} {t_ref:10.1f} {t_ref / t_ours:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU, forward + backward, µs")
    print(f"{'shape':>12} {'loss':>22} {'ltml':>9} {'reference':>10} {'ratio':>6}")
    for n, c in ((32, 20), (32, 80), (256, 1000)):
        bench_shape(n, c, g, args.repeat)


if __name__ == "__main__":
    main()
