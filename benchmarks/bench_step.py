"""Cost of a two-branch training step against a plain single-branch ResNet step.

One training step = forward + backward + SGD step. Variants, at the same batch size per sampling:

* ``single``: the ResNet as users train it (one batch, one classifier, BCE with logits);
* ``dual``: ``ltml`` two-branch model: the trunk once over ``cat([x_u, x_r])``
  (:func:`ltml.paired_forward`), each branch once over both batches (``concat=True``), BCE with
  logits summed over the four outputs ``u, u_hat, r, r_hat``;
* ``dual-sep``: the same model run without concatenation (trunk twice, each branch twice).

The time ratio dual / single is compared with the ratio of floating-point operations, counted
by ``torch.utils.flop_counter`` on the same steps: the compute lower bound (about 2.4x for
ResNet-50, whose trunk does about 4/5 of the work: 2 x trunk + 4 x layer4). Variants run
round-robin so that load changes on a shared machine hit all of them alike; the ratio of the
medians is reported, and the ratio of the minima (less sensitive to other processes' load).

    PYTHONPATH=src python benchmarks/bench_step.py --threads 2
    PYTHONPATH=src python benchmarks/bench_step.py --threads 1 --clock cpu  # on a busy machine
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision import models

from ltml import paired_forward, resnet_dual_branch

NUM_CLASSES = 20


def _optimizer(params: list[nn.Parameter]) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)


def single_step(arch: str, x: Tensor, y: Tensor) -> Callable[[], None]:
    model = getattr(models, arch)(weights=None, num_classes=NUM_CLASSES).train()
    opt = _optimizer(list(model.parameters()))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(model(x), y).backward()
        opt.step()

    return step


def dual_step(arch: str, x: Tensor, y: Tensor, concat: bool) -> Callable[[], None]:
    trunk, head = resnet_dual_branch(
        getattr(models, arch)(weights=None), NUM_CLASSES, concat=concat
    )
    trunk.train(), head.train()
    opt = _optimizer([*trunk.parameters(), *head.parameters()])
    x_u, x_r = x, x.flip(0)  # two batches of the same size, as from the paired sampler
    y_u, y_r = y, y.flip(0)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = head(*paired_forward(trunk, x_u, x_r, concat=concat))
        loss = (
            F.binary_cross_entropy_with_logits(out.u, y_u)
            + F.binary_cross_entropy_with_logits(out.u_hat, y_u)
            + F.binary_cross_entropy_with_logits(out.r, y_r)
            + F.binary_cross_entropy_with_logits(out.r_hat, y_r)
        )
        loss.backward()
        opt.step()

    return step


def _flops(step: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def bench(
    arch: str, batch: int, size: int, steps: int, warmup: int, clock: Callable[[], float]
) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g)
    y = (torch.rand(batch, NUM_CLASSES, generator=g) < 0.2).float()
    torch.manual_seed(0)
    variants = {
        "single": single_step(arch, x, y),
        "dual": dual_step(arch, x, y, concat=True),
        "dual-sep": dual_step(arch, x, y, concat=False),
    }
    flops = {name: _flops(step) for name, step in variants.items()}  # also a warm-up step
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(warmup + steps):
        for name, step in variants.items():
            start = clock()
            step()
            if i >= warmup:
                times[name].append(clock() - start)
    base_med, base_min = statistics.median(times["single"]), min(times["single"])
    print(f"\n{arch}, batch {batch} per sampling, {size}x{size}, {steps} timed steps")
    print(
        f"{'variant':<10} {'median s':>9} {'min s':>7} {'max s':>7} "
        f"{'ratio (median)':>14} {'ratio (min)':>11} {'FLOP ratio':>10}"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{name:<10} {med:9.3f} {min(ts):7.3f} {max(ts):7.3f} {med / base_med:14.2f} "
            f"{min(ts) / base_min:11.2f} {flops[name] / flops['single']:10.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds after the FLOP count")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["resnet50:8:224", "resnet18:8:112"],
        help="arch:batch:size entries",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: time.perf_counter; cpu: time.process_time, the CPU time of this process "
        "(robust to other processes' load on a shared machine; use it with --threads 1)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(
        f"torch {torch.__version__}, CPU, torch.set_num_threads({torch.get_num_threads()}), "
        f"{args.clock} clock"
    )
    for config in args.configs:
        arch, batch, size = config.split(":")
        bench(arch, int(batch), int(size), args.steps, args.warmup, clock)


if __name__ == "__main__":
    main()
