"""The network (shared trunk + two-branch head), the criterion, and one training step's loss.

The trunk, the head and the criterion live in one module whose ``forward`` returns the loss: under
DDP the compensation parameters of ``LogitCompensatedBCE`` then get their gradients averaged over
processes like every other parameter.
"""

from __future__ import annotations

import copy
import urllib.parse
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

import ltml

from .config import (
    TRAINED_BRANCH,
    Branch,
    Config,
    ScoreSpace,
    Unknown,
    loss_args,
    switch_epoch,
)
from .errors import WeightsUnavailableError

# The BatchNorm layers --bn-eval freezes (torch's public classes; ResNets hold BatchNorm2d).
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def weights_file(weights: torchvision.models.WeightsEnum) -> Path:
    """Where torchvision looks for ``weights`` before downloading them.

    ``torch.hub.get_dir() / "checkpoints"`` (``$TORCH_HOME/hub/checkpoints``, by default
    ``~/.cache/torch/hub/checkpoints``), under the name the file has in its URL.
    """
    name = Path(urllib.parse.urlparse(weights.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def build_resnet(cfg: Config) -> nn.Module:
    """Build a torchvision ResNet with ImageNet weights (``--weights``) or none.

    Raises :class:`~ltml_example.errors.WeightsUnavailableError` when the weights are neither
    in torchvision's cache nor downloadable (offline), naming the file to put in the cache.
    """
    weights = None
    if cfg.weights != "none":
        weights = torchvision.models.get_model_weights(cfg.arch)[cfg.weights]
    try:
        resnet: nn.Module = torchvision.models.get_model(cfg.arch, weights=weights)
    except OSError as error:  # urllib's URLError (offline) is an OSError
        if weights is None:
            raise
        path = weights_file(weights)
        raise WeightsUnavailableError(
            f"--weights {cfg.weights}: the ImageNet weights of {cfg.arch} are not in "
            f"torchvision's cache and could not be downloaded from {weights.url} "
            f"({error}). Offline, copy that file to {path} (torchvision looks in "
            "torch.hub.get_dir()/checkpoints, set by $TORCH_HOME), or train from random "
            "weights with --weights none (then nothing is frozen unless --freeze-stem / "
            "--bn-eval ask for it)."
        ) from error
    if not cfg.stem_pool:
        resnet.maxpool = nn.Identity()
    return resnet


class ComicLoss(nn.Module):
    """COMIC on one branch, without its head-tail balance stage: MFM + weight x RLC.

    The Multi-Focal Modifier loss learns from the given labels; the Reflective Label Corrector
    turns confident unknown labels into pseudo-positives and adds its loss on the corrected
    labels (weight 0.2 in the released code). The corrector must be told each epoch's start
    (:meth:`Collaborative.set_epoch`).
    """

    def __init__(self, labels: Tensor, weight: float, unknown: Unknown) -> None:
        super().__init__()
        self.mfm = ltml.MultiFocalModifierLoss.from_labels(labels, unknown=unknown)
        self.rlc = ltml.ReflectiveLabelCorrector(ltml.class_counts(labels), unknown=unknown)
        self.weight = weight

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """MFM loss + weight x the corrector's loss, of ``(N, C)`` logits and targets."""
        loss: Tensor = self.mfm(logits, targets) + self.weight * self.rlc(logits, targets).loss
        return loss


class ComicBalance(nn.Module):
    """COMIC's head-tail balance stage: a third branch, trained through the two experts.

    Branch U (trained on the uniform stream) is the head expert, branch R (on the re-balanced
    stream) the tail expert. The balanced branch, a copy of U's architecture, learns on the
    uniform batch through both experts' fixed probabilities (:class:`ltml.HeadTailBalancer`
    with COMIC's MFM loss), plus the label corrector's loss on its own logits as the released
    code adds one to each network; it is the branch that predicts.
    """

    def __init__(self, branch: nn.Module, labels: Tensor, weight: float, unknown: Unknown):
        super().__init__()
        self.branch = copy.deepcopy(branch)
        mfm = ltml.MultiFocalModifierLoss.from_labels(labels, unknown=unknown)
        self.balancer = ltml.HeadTailBalancer(mfm)
        self.rlc = ltml.ReflectiveLabelCorrector(ltml.class_counts(labels), unknown=unknown)
        self.weight = weight

    def forward(self, feat: Tensor, head: Tensor, tail: Tensor, targets: Tensor) -> Tensor:
        """Loss of the balanced branch on ``feat`` given the experts' logits on the same batch."""
        logits = self.branch(feat)
        loss: Tensor = self.balancer(head, tail, logits, targets)
        corrector: Tensor = self.rlc(logits, targets).loss
        return loss + self.weight * corrector


def build_criterion(cfg: Config, labels: Tensor) -> nn.Module:
    """Build the classification loss of ``--cls-loss`` (one instance, shared by both branches)."""
    if cfg.deferred == "reweight":  # DRW with Cao et al.'s class-balanced weights, beta 0.9999
        counts = ltml.class_counts(labels)
        weight = ltml.class_weights(counts, method="effective_number", beta=0.9999)
        return ltml.DeferredReweightedBCE(weight, switch_epoch(cfg), unknown=cfg.unknown)
    if cfg.cls_loss == "bce":
        return ltml.BCE(unknown=cfg.unknown)
    if cfg.cls_loss == "db-focal":
        preset = "coco" if cfg.dataset == "coco-lt" else "voc"
        return ltml.DistributionBalancedLoss.from_labels(
            labels, preset=preset, unknown=cfg.unknown, **loss_args(cfg)
        )
    if cfg.cls_loss == "asl":
        # --loss-args names the parameters it sets: which ones is known only at run time
        hyper: dict[str, Any] = loss_args(cfg)
        return ltml.AsymmetricLoss(unknown=cfg.unknown, **hyper)
    if cfg.cls_loss == "comic":
        return ComicLoss(labels, cfg.rlc_weight, cfg.unknown)
    if cfg.cls_loss == "hill":
        return ltml.HillLoss(unknown=cfg.unknown)
    if cfg.cls_loss == "splc":
        return ltml.SPLCLoss(unknown=cfg.unknown)
    return ltml.LogitCompensatedBCE.from_labels(
        labels,
        learnable=cfg.cls_loss == "compensated",
        guard=None if cfg.guard == "none" else cfg.guard,
        unknown=cfg.unknown,
    )


def build_head(cfg: Config, in_features: int, num_classes: int) -> nn.Module | None:
    """Build the classifier of ``--head`` on layer4's map (``None``: pooling + linear)."""
    if cfg.head == "csra":
        temperatures = ltml.CSRA_TEMPERATURES[cfg.csra_heads]
        return ltml.CSRA(in_features, num_classes, temperatures=temperatures, lam=cfg.csra_lambda)
    if cfg.head == "ml-decoder":
        return ltml.MLDecoder(in_features, num_classes)
    return None


class Collaborative(nn.Module):
    """Trunk + :class:`ltml.DualBranchHead` + loss; ``forward`` is the loss of one step.

    ``--branches``: ``both`` trains U on the uniform batch and R on the re-balanced one (with the
    cross-branch consistency of Eq. 1 if ``--consistency``); ``u`` / ``r`` train one branch on
    its own stream; ``mixed`` (a control) trains branch U on both batches concatenated.
    """

    def __init__(self, cfg: Config, labels: Tensor) -> None:
        super().__init__()
        resnet = build_resnet(cfg)
        fc = resnet.get_submodule("fc")  # its width is layer4's
        width = fc.in_features if isinstance(fc, nn.Linear) else 2048
        classifier = build_head(cfg, width, labels.shape[1])
        self.trunk, self.head = ltml.resnet_dual_branch(
            resnet, labels.shape[1], classifier=classifier
        )
        cls = build_criterion(cfg, labels)
        consistency = ltml.CrossBranchConsistency(
            space=cfg.consistency_space,
            detach=None if cfg.consistency_detach == "none" else cfg.consistency_detach,
        )
        self.criterion = ltml.LTMLLoss(cls, consistency=consistency, weight=cfg.consistency_weight)
        self.branches, self.consistency = cfg.branches, cfg.consistency
        self.predict_mode: Branch | ScoreSpace = TRAINED_BRANCH.get(cfg.branches, cfg.predict)
        self.balance: ComicBalance | None = None
        if cfg.comic_balance:  # COMIC's third stage; its branch predicts
            self.balance = ComicBalance(self.head.branch_u, labels, cfg.rlc_weight, cfg.unknown)

    def forward(
        self, x_u: Tensor | None, y_u: Tensor | None, x_r: Tensor | None, y_r: Tensor | None
    ) -> Tensor:
        """Return the loss of one step (Eq. 1 with the terms the row uses)."""
        if self.branches == "mixed":  # one branch on both batches, concatenated
            x_u, y_u = torch.cat([x_u, x_r]), torch.cat([y_u, y_r])  # type: ignore[list-item]
            x_r, y_r = None, None
        feat_u, feat_r = ltml.paired_forward(self.trunk, x_u, x_r)
        out = self.head(feat_u, feat_r, cross=self.consistency)
        terms = self.criterion(out, y_u, y_r)
        loss: Tensor = terms.total
        if self.balance is not None and feat_u is not None and out.u is not None:
            with torch.no_grad():  # the tail expert's view of the uniform batch (fixed)
                tail = self.head.branch_r(feat_u)
            loss = loss + self.balance(feat_u, out.u.detach(), tail, y_u)
        return loss

    @torch.no_grad()
    def predict(self, x: Tensor, flip: bool = False) -> Tensor:
        """Test scores (logits, which keep the ranking); with ``flip``, the mean over two views."""
        scores = self._scores(x)
        if flip:
            scores = (scores + self._scores(x.flip(-1))) / 2
        return scores

    def _scores(self, x: Tensor) -> Tensor:
        """Test logits of one view: the balanced branch (COMIC), else the head's ``--predict``."""
        if self.balance is not None:
            logits: Tensor = self.balance.branch(self.trunk(x))
            return logits
        return self.head.predict(self.trunk(x), mode=self.predict_mode)

    def set_epoch(self, epoch: int) -> None:
        """Give the epoch to the losses scheduled by it (DRW, COMIC's label corrector, SPLC)."""
        scheduled = (ltml.DeferredReweightedBCE, ltml.ReflectiveLabelCorrector, ltml.SPLCLoss)
        for m in self.modules():
            if isinstance(m, scheduled):
                m.set_epoch(epoch)

    def set_train_mode(self, cfg: Config) -> None:
        """``train()``, then BatchNorm back to eval mode if ``--bn-eval`` (DB recipe)."""
        self.train()
        if cfg.bn_eval:
            for m in self.modules():
                if isinstance(m, BATCH_NORMS):
                    m.eval()


def build_model(cfg: Config, labels: Tensor) -> Collaborative:
    """Build the model, with the stem and ``layer1`` frozen if ``--freeze-stem``."""
    model = Collaborative(cfg, labels)
    if cfg.freeze_stem:
        for name in ("conv1", "bn1", "layer1"):
            getattr(model.trunk, name).requires_grad_(False)
    return model


def parameter_count(model: nn.Module) -> dict[str, Any]:
    """Trainable and total parameter counts, for the start-of-run summary."""
    params = list(model.parameters())
    return {
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "total": sum(p.numel() for p in params),
    }
