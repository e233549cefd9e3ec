"""Forward + backward time of ltml's losses against what users would otherwise call.

    PYTHONPATH=src python benchmarks/bench_losses.py [--modes eager compile] [--shapes 256x1000]

Each loss is timed against its reference at (N, C) = 32x20, 32x80 and 256x1000, eagerly and
under ``torch.compile`` (both sides compiled), and the pair is first checked to give the same
value (for LogitCompensatedBCE against a torch transcription of Eq. 2: its timing reference is
the plain ``F.binary_cross_entropy_with_logits`` it replaces; the row "[Eq. 2]" times it against
that transcription). References:
``F.binary_cross_entropy_with_logits``, ``torchvision.ops.sigmoid_focal_loss``, and a
transcription of the Distribution-Balanced loss as its authors compute it (BCE evaluated twice,
for p_t and for the loss). ltml's losses also check their inputs and mask -1 targets.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

import ltml

SHAPES = ((32, 20), (32, 80), (256, 1000))


def db_reference_style(z, y, inv_freq, bias, neg_scale=5.0, alpha=0.1, beta=10.0, mu=0.3):
    repeat = (y * inv_freq).sum(1, keepdim=True)
    w = torch.sigmoid(beta * (inv_freq / repeat - mu)) + alpha
    z = z + bias  # (out of place here)
    z = z * (1 - y) * neg_scale + z * y
    w = w / neg_scale * (1 - y) + w * y
    pt = torch.exp(-F.binary_cross_entropy_with_logits(z, y, reduction="none"))
    loss = F.binary_cross_entropy_with_logits(z, y, weight=w, reduction="none")
    return (2.0 * (1 - pt) ** 2 * loss).mean()


def eq2_transcription(z, y, omega, sp, mp, sn, mn):
    x = torch.where(y > 0, z * sp + mp, z * sn + mn)
    return F.binary_cross_entropy_with_logits(x, y, weight=torch.where(y > 0, omega[0], omega[1]))


Pair = tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]


def pairs(counts: Tensor, num_images: int) -> dict[str, tuple[Pair, Callable | None]]:
    """Map each loss name to ((ltml, reference), value check, None: the reference checks)."""
    w = ltml.class_weights(counts)
    cb = ltml.ClassBalancedFocalLoss(counts)
    db = ltml.DistributionBalancedLoss(counts, num_images)
    lc = ltml.LogitCompensatedBCE(counts, num_images)
    con = ltml.CrossBranchConsistency()
    return {
        "BCE": ((ltml.BCE(), F.binary_cross_entropy_with_logits), None),
        "WeightedBCE": (
            (ltml.WeightedBCE(counts), lambda z, y: F.binary_cross_entropy_with_logits(z, y, w)),
            None,
        ),
        "FocalLoss (alpha=0.25)": (
            (
                ltml.FocalLoss(alpha=0.25),
                lambda z, y: sigmoid_focal_loss(z, y, reduction="mean"),
            ),
            None,
        ),
        "ClassBalancedFocalLoss": (
            (
                cb,
                lambda z, y: (
                    sigmoid_focal_loss(z, y, alpha=-1, reduction="none") * cb.weight
                ).mean(),
            ),
            None,
        ),
        "DistributionBalancedLoss": (
            (db, lambda z, y: db_reference_style(z, y, db.inv_freq, db.bias)),
            None,
        ),
        "LogitCompensatedBCE": (
            (lc, F.binary_cross_entropy_with_logits),
            lambda z, y: eq2_transcription(z, y, lc.weight, *lc.compensation()),
        ),
        "LogitCompensatedBCE [Eq. 2]": (
            (lc, lambda z, y: eq2_transcription(z, y, lc.weight, *lc.compensation())),
            None,
        ),
        "CrossBranchConsistency": (
            (con, lambda a, b: F.mse_loss(torch.sigmoid(a), torch.sigmoid(b))),
            None,
        ),
    }


def timed(fn: Callable[[], Tensor], seconds: float) -> float:
    """Median over 5 blocks of the mean CPU time of one call (µs), each block about ``seconds``.

    CPU time of this process (``time.process_time``), which other jobs on a shared machine barely
    move, unlike wall-clock time; with one thread it is the time the work takes.
    """
    for _ in range(3):
        fn().backward()
    start, calls = time.process_time(), 0
    while time.process_time() - start < seconds / 5 or calls < 3:
        fn().backward()
        calls += 1
    per_block = max(3, calls)
    blocks = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(per_block):
            fn().backward()
        blocks.append((time.process_time() - start) / per_block * 1e6)
    return statistics.median(blocks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.5, help="timing budget per measurement")
    parser.add_argument(
        "--modes", nargs="+", choices=("eager", "compile"), default=["eager", "compile"]
    )
    parser.add_argument(
        "--shapes", nargs="+", default=[f"{n}x{c}" for n, c in SHAPES], help="NxC, e.g. 256x1000"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in text.split("x")) for text in args.shapes]
    g = torch.Generator().manual_seed(0)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), CPU time of forward + backward, µs"
    )
    print(f"{'shape':>9} {'loss':>24} {'mode':>8} {'ltml':>9} {'reference':>10} {'ltml/ref':>9}")
    for n, c in shapes:
        counts = torch.randint(1, 500, (c,), generator=g)
        z = torch.randn(n, c, generator=g).requires_grad_(True)
        y = (torch.rand(n, c, generator=g) < 0.1).float()
        for name, ((ours, ref), check) in pairs(counts, 2000).items():
            second = z.detach().flip(0) if name == "CrossBranchConsistency" else y
            torch.testing.assert_close(
                ours(z, second), (check or ref)(z, second), rtol=1e-5, atol=1e-7
            )
            for mode in args.modes:
                f_ours = torch.compile(ours) if mode == "compile" else ours
                f_ref = torch.compile(ref) if mode == "compile" else ref
                t_ours = timed(lambda f=f_ours, a=z, b=second: f(a, b), args.seconds)
                t_ref = timed(lambda f=f_ref, a=z, b=second: f(a, b), args.seconds)
                times = f"{t_ours:9.1f} {t_ref:10.1f} {t_ours / t_ref:9.2f}"
                print(f"{f'{n}x{c}':>9} {name:>24} {mode:>8} {times}")


if __name__ == "__main__":
    main()
