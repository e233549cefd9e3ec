"""LTML in your own training loop: the whole method on the demo dataset, in one file to copy.

The method of Guo & Wang (CVPR 2021) for long-tailed multi-label recognition: two samplings of the
training set in lockstep (uniform and class-aware), a shared trunk with two branches, the
collaborative loss (Eq. 1) with the logit-compensated BCE (Eq. 2), and an evaluation with mAP per
head / medium / tail group and thresholded metrics. Plain functions on public ``ltml`` names, no
config system; about a minute on a CPU:

    python examples/minimal.py               # 6 epochs, seed 0
    python examples/minimal.py --epochs 1    # a quick check

For your data, replace ``make_demo`` with your dataset (items ``(image, label_vector)``, and the
``(N, C)`` training label matrix: 0 / 1, -1 for unknown) and ``resnet18`` with your backbone
(``ltml.split_dual_branch`` cuts other backbones). The paper's full setup (VOC-LT, COCO-LT, every
ablation row, the baselines, checkpoints, seeds) is the reproduction harness, examples/reproduce/.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torchvision.models import resnet18
from torchvision.transforms import v2

import ltml


def paired_loader(
    train_set: Any, labels: Tensor, seed: int, batch_size: int = 32
) -> tuple[DataLoader[Any], ltml.PairedSampler]:
    """Batches ``((x_u, y_u), (x_r, y_r))``: a uniform and a class-aware draw, in lockstep.

    ``train_set``: any dataset of ``(image, label_vector)`` items; ``labels`` its ``(N, C)``
    label matrix.
    """
    uniform = RandomSampler(train_set, generator=torch.Generator().manual_seed(seed))
    balanced = ltml.ClassAwareSampler(labels, seed=seed)  # every class equally likely
    # An epoch is as long as the class-aware stream; the uniform one reshuffles when it wraps.
    sampler = ltml.PairedSampler(uniform, balanced)
    dataset = ltml.PairedDataset(train_set)  # index pair -> (item_u, item_r)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True)
    return loader, sampler


def train(
    trunk: nn.Module,
    head: ltml.DualBranchHead,
    criterion: ltml.LTMLLoss,
    loader: DataLoader[Any],
    sampler: ltml.PairedSampler,
    epochs: int,
    lr: float = 0.05,
) -> None:
    """Train trunk, both branches and the loss's compensation with SGD, one-cycle schedule."""
    # The logit compensation is learnt: its parameters go to the optimizer too, without weight
    # decay (which would pull its scales towards 0).
    groups: list[dict[str, Any]] = [
        {"params": [*trunk.parameters(), *head.parameters()]},
        {"params": list(criterion.parameters()), "weight_decay": 0.0},
    ]
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=1e-4)
    steps = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # a new class-aware draw every epoch
        trunk.train()
        head.train()
        for (x_u, y_u), (x_r, y_r) in loader:
            # The trunk runs once on both batches. Branch U scores the uniform batch and branch
            # R the re-balanced one (the classification terms); each also scores the other's
            # batch, for the cross-branch consistency terms.
            out = head(*ltml.paired_forward(trunk, x_u, x_r))  # u, u_hat, r, r_hat
            loss = criterion(out, y_u, y_r)  # total and its four terms
            optimizer.zero_grad()
            loss.total.backward()
            optimizer.step()
            scheduler.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.total.item():.4f}", flush=True)


@torch.no_grad()
def evaluate(
    trunk: nn.Module, head: ltml.DualBranchHead, test_set: Dataset[Any], train_labels: Tensor
) -> dict[str, float]:
    """Test mAP (total, head, medium, tail) and CF1 / OF1 at logit 0, in %."""
    # Groups by training images per class: head >= 100, medium 20-99, tail < 20.
    groups = ltml.class_groups(ltml.class_counts(train_labels))
    # scores="logits": the thresholded metrics predict a class where its logit is >= 0.
    meter = ltml.mAPMeter(train_labels.shape[1], groups=groups, scores="logits")
    trunk.eval()
    head.eval()
    for x, y in DataLoader(test_set, batch_size=256):
        # Both branches: the logit of their mean probability (ranks as the paper's average of
        # the two sigmoids, but never saturates). Logits keep the ranking that mAP needs.
        meter.update(head.predict(trunk(x)), y)
    result = meter.compute()
    thresholded = result.thresholded
    assert thresholded is not None  # the meter has a threshold: scores="logits"
    return {
        "mAP": 100 * result.map,
        **{group: 100 * value for group, value in result.groups.items()},
        "CF1": 100 * thresholded.CF1,  # F1 of precision and recall averaged over classes
        "OF1": 100 * thresholded.OF1,  # F1 of the decisions pooled over all classes
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="training epochs [6]")
    parser.add_argument("--seed", type=int, default=0, help="data, samplers, initialisation [0]")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)  # initialisation and augmentation

    # Your data here. The demo: ~1,100 long-tailed 32x32 mosaics of handwritten digits (800
    # images hold digit 0, 4 digit 9) and a balanced test set; 10 classes. Training images are
    # shifted by up to 4 pixels (a mirrored or rescaled digit would be another glyph).
    shift = v2.RandomCrop(32, padding=4)
    train_set = ltml.data.make_demo("train", seed=args.seed, transform=shift)
    test_set = ltml.data.make_demo("test", seed=args.seed)
    labels = train_set.labels  # (N, C): 0 / 1, -1 = unknown
    loader, sampler = paired_loader(train_set, labels, args.seed)

    # A shared trunk (ResNet stem..layer3) and two branches (layer4 + classifier each).
    trunk, head = ltml.resnet_dual_branch(resnet18(weights=None), num_classes=labels.shape[1])
    # Eq. 1 (both branches' classification terms + 0.1 x the consistency terms), each branch
    # with the logit-compensated BCE of Eq. 2. guard="tied" keeps the compensation from
    # collapsing, as the paper's free form does here, a network trained from scratch at this
    # learning rate (examples/reproduce/README.md; VOC-LT / COCO-LT keep the paper's form).
    criterion = ltml.LTMLLoss(ltml.LogitCompensatedBCE.from_labels(labels, guard="tied"))

    train(trunk, head, criterion, loader, sampler, args.epochs)
    results = evaluate(trunk, head, test_set, labels)
    print("test %: " + "  ".join(f"{name} {value:.2f}" for name, value in results.items()))
    return results


if __name__ == "__main__":
    main()
