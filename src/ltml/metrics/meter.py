"""Mean average precision and thresholded metrics for multi-label recognition, per class group.

:class:`mAPMeter` accumulates scores over an evaluation run (any batch sizes, any device, several
processes under DDP) and computes per-class AP exactly as scikit-learn's
``average_precision_score``, the mAP over classes, and the mAP of class groups such as the
head / medium / tail split of the long-tailed benchmarks (Wu et al., ECCV 2020); from the same
stored scores, the thresholded metrics (OP, OR, OF1, CP, CR, CF1, with a top-k variant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from .._deprecation import renamed_keyword, warn_renamed
from .._validation import (
    as_class_names,
    as_device_metric_inputs,
    as_metric_inputs,
    as_thresholds,
    check_choice,
    check_groups,
    check_int,
    check_probabilities,
    check_top_k,
    sync_free,
)
from ._counts import ZeroDivision, check_zero_division, thresholded_of_counts
from ._distributed import class_share, gather_classes
from ._empty_classes import (
    EmptyClass,
    check_empty_class,
    json_number,
    nanmean,
    resolve_empty_classes,
)
from ._entries import KnownStore, entries_of_batch, is_mostly_unknown
from ._ranking import keep_fallback
from ._share import Share, share_ap, share_counts, share_positives, share_thresholds
from .thresholded import ThresholdedMetrics

__all__ = ["MAPResult", "mAPMeter"]

ScoreKind = Literal["logits", "probs"]
DEFAULT_THRESHOLD = {"logits": 0.0, "probs": 0.5}  # the same decision: sigmoid(0) = 0.5
# fit_thresholds: a class with fewer validation positives keeps the meter's threshold.
MIN_POSITIVES = 5


@dataclass(frozen=True)
class MAPResult:
    """What :meth:`mAPMeter.compute` returns.

    Attributes
    ----------
    ap : Tensor, shape (C,), float64
        Average precision of each class; NaN for a class with no positive target when
        ``empty_class="nan"``.
    map : float
        Mean of ``ap`` over the classes that have a value.
    groups : dict of str to float
        Mean AP over the classes of each group, in the order the groups were given
        (NaN for a group with no class that has a value).
    num_empty : int
        Number of classes with no positive target in the evaluated data.
    thresholded : ThresholdedMetrics or None
        OP / OR / OF1 / CP / CR / CF1 (overall, per class and per group) at the meter's
        threshold; None when the meter was given neither ``scores`` nor ``threshold``.
    top_k : ThresholdedMetrics or None
        The same with the meter's ``top_k`` rule; None without ``top_k``. (Formerly named
        ``topk``: that name still reads it, with a ``FutureWarning``.)
    """

    ap: Tensor
    map: float
    groups: dict[str, float] = field(default_factory=dict)
    num_empty: int = 0
    thresholded: ThresholdedMetrics | None = None
    top_k: ThresholdedMetrics | None = None

    @property
    def topk(self) -> ThresholdedMetrics | None:
        """Deprecated name of :attr:`top_k`."""
        warn_renamed("topk", "top_k")
        return self.top_k

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A result pickled before the rename holds the field as "topk": read it as "top_k".
        if "topk" in state:
            state = {("top_k" if k == "topk" else k): v for k, v in state.items()}
        self.__dict__.update(state)

    def as_dict(self) -> dict[str, Any]:
        """Plain Python values, ready for ``json.dump`` (NaN becomes ``None``).

        The ``top_k`` metrics are also written under their old key ``"topk"`` until that name
        is removed: a reader that finds no ``"topk"`` would take it for a meter without
        ``top_k``, silently.
        """
        out: dict[str, Any] = {
            "map": json_number(self.map),
            "groups": {k: json_number(v) for k, v in self.groups.items()},
            "ap": [json_number(x) for x in self.ap.tolist()],
            "num_empty": self.num_empty,
        }
        if self.thresholded is not None:
            out["thresholded"] = self.thresholded.as_dict()
        if self.top_k is not None:
            out["top_k"] = out["topk"] = self.top_k.as_dict()
        return out

    def __str__(self) -> str:
        cells = [("mAP", self.map), *self.groups.items()]
        if self.thresholded is not None:
            cells += [("CF1", self.thresholded.CF1), ("OF1", self.thresholded.OF1)]
        if self.top_k is not None:
            k = self.top_k.top_k
            cells += [(f"CF1@{k}", self.top_k.CF1), (f"OF1@{k}", self.top_k.OF1)]
        return "  ".join(f"{name} {100 * value:.2f}" for name, value in cells)


# `topk=`, the keyword of the field's former name, keeps working (dataclasses generate __init__).
MAPResult.__init__ = renamed_keyword("topk", "top_k")(MAPResult.__init__)  # type: ignore[method-assign]


class mAPMeter:  # noqa: N801 - the name users search for
    """Accumulate multi-label scores; compute per-class AP, mAP, group mAP and thresholded metrics.

    AP is computed by :func:`ltml.functional.average_precision`: identical to scikit-learn's
    ``average_precision_score`` per class, ties included. Scores are stored as given (never
    transformed per batch), so logits and probabilities may not be mixed within one run; logits
    are best, since float32 ``sigmoid`` saturates to 1.0 above a logit of about 17 and ties
    confident positives.

    The thresholded metrics (:func:`ltml.functional.thresholded_metrics`: OP, OR, OF1, CP, CR,
    CF1 and the mean of per-class F1, overall and per group) come from the same stored scores.
    Their threshold depends on what the scores are, which the meter never guesses from the
    values: say ``scores="logits"`` (threshold 0) or ``scores="probs"`` (threshold 0.5), or
    give ``threshold`` (e.g. from :meth:`fit_thresholds` on a validation split). With neither,
    only the AP is computed.

    Memory follows what the metrics need, the known labels. A batch with more than a quarter of
    its labels known is stored dense: each sample costs ``C * (s + 1)`` bytes on the device of
    its scores, where ``s`` is the byte size of the score dtype, kept as given (2 for float16 /
    bfloat16, 4 for float32, 8 for float64 or int64, 1 for int8), and targets are kept as int8
    (COCO-LT's 5,000 test images x 80 classes in float32 take 2 MB). A batch with at most a
    quarter known (OpenImages: about 0.1 %) is stored as its known entries only: ``s + 5`` bytes
    each (score, int32 class, int8 label), plus one byte with ``top_k``; OpenImages' 125,000
    test images x 9,605 classes take 10 MB instead of 6 GB. Both forms may mix in one run and
    give identical results (AP over the known labels, as OpenImages evaluates). :meth:`compute`
    adds no copy of dense batches: it reads them a class chunk at a time (a few chunks of ~1M
    elements at any size). The top-k rule needs each image's full row of scores: a batch stored
    as entries applies it when it arrives (``update`` always receives full rows), so ``top_k``
    is exact in both forms.

    Under DDP (``torch.distributed`` initialised with more than one process), :meth:`compute`
    and :meth:`fit_thresholds` shard the classes: process ``r`` of ``W`` ranks the classes
    ``[C r / W, C (r + 1) / W)`` and receives (``all_to_all_single``) only those columns of
    every process's dense rows and its known entries of those classes; only the per-class
    results are gathered, and every process gets the same result as one process would (uneven
    counts, processes with nothing stored, processes with no class and different score dtypes
    included). What a process receives, about ``1 / W`` of what all store, is held in one dtype
    that ranks every score exactly: the widest of float32 (for half types too), float64 and
    int64 (float64 where integers meet floats). With the NCCL backend the scores must be on the
    GPU.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``.
    groups : mapping of str to sequence of int, optional
        Named class groups whose mAP (and thresholded metrics) to report, e.g.
        ``ltml.class_groups(train_counts)`` for head / medium / tail: each a sequence (or 1-D
        integer array) of distinct class indices; boolean masks, floats and strings are refused.
    empty_class : {"nan", "zero"}
        AP (and recall, F1) of a class with no positive target: NaN and left out of every mean
        (default), or 0 and counted, as older published numbers did. One warning lists such
        classes.
    scores : {"logits", "probs"}, optional
        What :meth:`update` receives; sets the default threshold (0 for logits, 0.5 for
        probabilities). With ``"probs"``, :meth:`update` rejects values outside [0, 1].
    threshold : float or sequence of float or Tensor of shape (C,), optional
        The threshold of the thresholded metrics, one for all classes or one per class
        (prediction positive when ``score >= threshold``). Overrides the ``scores`` default.
    top_k : int, optional
        Also report the thresholded metrics with the top-k rule (a class predicted positive
        only among the image's ``top_k`` highest scores, unknown labels' scores included; 3 in
        the literature). Read from each image's full row when its batch arrives.
    zero_division : {"zero", "one", "nan"}
        Precision of a class never predicted positive: 0 (default, as ML-GCN and scikit-learn),
        1, or NaN and left out of CP.
    class_names : sequence of str, optional
        The ``C`` class names (e.g. a dataset's ``classes``): warnings then name the classes
        they list (``'sofa' (17)``) instead of giving their indices alone.

    Examples
    --------
    >>> import torch
    >>> from ltml import mAPMeter
    >>> meter = mAPMeter(3, groups={"head": [0], "tail": [1, 2]}, scores="logits")
    >>> logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 4.0, 1.5], [0.1, 0.2, 2.0]])
    >>> targets = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 1]])
    >>> meter.update(logits[:2], targets[:2])  # any batch sizes
    >>> meter.update(logits[2:], targets[2:])
    >>> result = meter.compute()
    >>> result.ap
    tensor([1.0000, 1.0000, 0.8333], dtype=torch.float64)
    >>> print(result)
    mAP 94.44  head 100.00  tail 91.67  CF1 83.87  OF1 83.33
    >>> print(result.thresholded.groups["tail"])
    CP 83.33  CR 100.00  CF1 90.91  OP 80.00  OR 100.00  OF1 88.89
    """

    def __init__(
        self,
        num_classes: int,
        *,
        groups: Mapping[str, Sequence[int]] | None = None,
        empty_class: EmptyClass = "nan",
        scores: ScoreKind | None = None,
        threshold: float | Sequence[float] | Tensor | None = None,
        top_k: int | None = None,
        zero_division: ZeroDivision = "zero",
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.num_classes = check_int(num_classes, "num_classes")
        self.class_names = None
        if class_names is not None:
            self.class_names = as_class_names(class_names, "class_names")
            if len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"`class_names` must name the {self.num_classes} classes (num_classes), "
                    f"got {len(self.class_names)} names"
                )
        check_empty_class(empty_class)
        check_zero_division(zero_division)
        check_choice(scores, "scores", (None, *DEFAULT_THRESHOLD))
        if threshold is None and scores is not None:
            threshold = DEFAULT_THRESHOLD[scores]
        if top_k is not None and threshold is None:
            raise ValueError(
                "`top_k` needs a threshold: say what the scores are (scores='logits' or "
                "'probs') or give `threshold`"
            )
        top_k = check_top_k(top_k, num_classes)
        self.groups = check_groups({} if groups is None else groups, num_classes)
        self.empty_class = empty_class
        self.score_kind = scores
        self.threshold = None if threshold is None else as_thresholds(threshold, num_classes)
        self.top_k = top_k
        self.zero_division = zero_division
        self._scores: list[Tensor] = []  # dense batches
        self._targets: list[Tensor] = []
        self._known = KnownStore()  # batches kept as their known entries
        self._device: torch.device | None = None

    @property
    def num_stored(self) -> int:
        """Number of rows (images) stored by this process since the last :meth:`reset`."""
        return sum(s.shape[0] for s in self._scores) + self._known.rows

    @property
    def num_samples(self) -> int:
        """Deprecated name of :attr:`num_stored`."""
        warn_renamed("num_samples", "num_stored")
        return self.num_stored

    def reset(self) -> None:
        """Forget every stored sample."""
        self._scores.clear()
        self._targets.clear()
        self._known.clear()
        self._device = None

    def update(self, scores: Any, targets: Any) -> None:
        """Store a batch.

        Parameters
        ----------
        scores : Tensor or ndarray, shape (B, C)
            Logits (best) or any scores that rank the samples of each class; probabilities in
            [0, 1] if the meter was built with ``scores="probs"``.
        targets : Tensor or ndarray, shape (B, C)
            0 / 1 labels, -1 for unknown (ignored for that class).

        Raises
        ------
        ValueError
            On a wrong shape, a label outside {-1, 0, 1}, a NaN / infinite score, or a score
            outside [0, 1] with ``scores="probs"``; nothing of the rejected batch is stored.
            On an accelerator, the score checks are device-side assertions with the same
            words (a ``RuntimeError`` at the next synchronisation).

        Notes
        -----
        Scores on an accelerator are never read back. Targets from a loader (on the CPU) are
        checked and counted there; targets on an accelerator cost one read per batch, the
        number of known entries, which decides whether the batch is stored densely or as its
        known entries (what keeps mostly-unknown labels small).
        """
        why = " (the meter was built with scores='probs')"
        probs = why if self.score_kind == "probs" else None
        if isinstance(scores, Tensor) and sync_free(scores):  # no host read of the scores
            s, y = as_device_metric_inputs(scores, targets, self.num_classes, probs)
        else:
            s, y = as_metric_inputs(scores, targets, self.num_classes)
            if probs is not None:
                check_probabilities(s, "scores", probs)
        if self._device is None:
            self._device = s.device
        # Stored densely or as known entries: decided on the targets where they are. Targets
        # from a loader are on the CPU, and nothing is read from the device; targets on an
        # accelerator cost one read per batch (the count of known entries).
        if is_mostly_unknown(y):  # kept as its known entries (copies)
            self._known.add(entries_of_batch(s.detach().to(self._device), y, self.top_k))
            return
        # Copies: a caller may reuse or modify its buffers after update().
        self._scores.append(s.detach().to(device=self._device, copy=True))
        self._targets.append(y.detach().to(device=self._device, dtype=torch.int8, copy=True))

    def _share(self) -> tuple[Share, int]:
        """Return what this process evaluates (its class share under DDP), its first class."""
        return class_share(
            self._scores,
            self._targets,
            self._known.parts(),
            self.num_classes,
            self.top_k,
            self._device,
        )

    def compute(self) -> MAPResult:
        """Per-class AP, mAP, group mAP and the thresholded metrics over everything stored.

        Under DDP, over what every process stored; every process must call it.
        """
        share, first = self._share()
        threshold = None
        if self.threshold is not None:
            threshold = self.threshold[first : first + share.width]
        rows = [share_ap(share)]
        if threshold is not None:
            rows += [share_counts(share, threshold, None).to(torch.float64)]
            if self.top_k is not None:
                rows += [share_counts(share, threshold, self.top_k).to(torch.float64)]
        # Only per-class results travel between processes (exact: counts stay below 2**53).
        stacked = torch.cat([r.unsqueeze(0) if r.dim() == 1 else r for r in rows])
        results = gather_classes(stacked, self.num_classes)
        ap = results[0]
        num_empty = int(torch.isnan(ap).sum())
        # stacklevel 2: the user's line, which called this method
        ap = resolve_empty_classes(ap, self.empty_class, 2, self.class_names).cpu()

        def thresholded(row: int, top_k: int | None) -> ThresholdedMetrics | None:
            if self.threshold is None:
                return None
            counts = results[row : row + 3].to(torch.int64)
            return thresholded_of_counts(  # a copy: the result's tensor is the caller's
                counts,
                self.threshold.clone(),
                top_k,
                self.zero_division,
                self.empty_class,
                self.groups,
            )

        return MAPResult(
            ap=ap,
            map=nanmean(ap),
            groups={name: nanmean(ap[idx]) for name, idx in self.groups.items()},
            num_empty=num_empty,
            thresholded=thresholded(1, None),
            top_k=None if self.top_k is None else thresholded(4, self.top_k),
        )

    def fit_thresholds(self, *, min_positives: int | None = None) -> Tensor:
        """Per-class thresholds maximising each class's F1 on what is stored.

        Run the meter over a validation split, fit, and build the test meter with
        ``threshold=`` the result; see :func:`ltml.functional.fit_thresholds`. Under DDP, over
        what every process stored (every process must call it and gets the same thresholds);
        each process ranks a share of the classes.

        A class with few validation positives gets a threshold fitted to those few images,
        often far off (see the metrics guide: on a small split this can halve OF1). So a class
        with fewer than ``min_positives`` known positives keeps the meter's own threshold, the
        one :meth:`compute` applies (``scores=`` or ``threshold=``).

        Parameters
        ----------
        min_positives : int, optional
            Default: 5 when the meter has a threshold, else 1 (a class with no positive gets
            ``inf``, never predicted). A class with 5 or more positives is fitted as it always
            was. Above 1, the meter must have a threshold.

        Returns
        -------
        Tensor, shape (C,), float64
            On the CPU; ``inf`` (never predicted) for a class with no positive target when the
            meter has no threshold to keep.

        Examples
        --------
        >>> import torch
        >>> from ltml import mAPMeter
        >>> val = mAPMeter(2)
        >>> val.update(torch.tensor([[2.0, -1.0], [0.5, -0.5], [-1.0, 1.0]]),
        ...            torch.tensor([[1, 0], [1, 1], [0, 1]]))
        >>> val.fit_thresholds()
        tensor([ 0.5000, -0.5000], dtype=torch.float64)
        >>> val = mAPMeter(2, scores="logits")  # 0 kept for classes with < 5 positives
        >>> val.update(torch.tensor([[2.0, -1.0], [0.5, -0.5], [-1.0, 1.0]]),
        ...            torch.tensor([[1, 0], [1, 1], [0, 1]]))
        >>> val.fit_thresholds()
        tensor([0., 0.], dtype=torch.float64)
        >>> val.fit_thresholds(min_positives=2)
        tensor([ 0.5000, -0.5000], dtype=torch.float64)
        """
        if min_positives is None:
            min_positives = 1 if self.threshold is None else MIN_POSITIVES
        min_positives = check_int(min_positives, "min_positives")
        if min_positives > 1 and self.threshold is None:
            raise ValueError(
                f"`min_positives` > 1 (got {min_positives}) needs a threshold to keep: build the "
                "meter with scores='logits' or 'probs', or with threshold="
            )
        share, _ = self._share()
        stacked = torch.stack([share_thresholds(share), share_positives(share).to(torch.float64)])
        thresholds, positives = gather_classes(stacked, self.num_classes).cpu()
        return keep_fallback(thresholds, positives, min_positives, self.threshold)

    def __repr__(self) -> str:
        groups = {k: len(v) for k, v in self.groups.items()}
        return (
            f"mAPMeter(num_classes={self.num_classes}, groups={groups}, "
            f"empty_class={self.empty_class!r}, scores={self.score_kind!r}, "
            f"top_k={self.top_k}, num_stored={self.num_stored})"
        )
