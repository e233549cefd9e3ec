"""Exercise the parts of ltml that exist so far on random data (replaced by the real demo)."""

import torch

import ltml


def main() -> None:
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([775, 479, 249, 100, 82, 48, 20, 11, 7, 4])
    targets = (torch.rand(2000, 10, generator=g) < counts / counts.sum()).long()
    logits = torch.randn(2000, 10, generator=g) + 2.0 * targets
    meter = ltml.mAPMeter(10, groups=ltml.class_groups(counts))
    for i in range(0, 2000, 128):
        meter.update(logits[i : i + 128], targets[i : i + 128])
    print(meter.compute())


if __name__ == "__main__":
    main()
