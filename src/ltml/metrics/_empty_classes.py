"""Classes with no positive target, whose metrics are undefined: the value they get, one warning.

With ``empty_class="nan"`` such a class's values are NaN, left out of every mean and written
``None`` in JSON; with ``"zero"`` they are 0 and counted. Either way one warning lists the classes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from .._validation import check_choice

EmptyClass = Literal["nan", "zero"]


def check_empty_class(empty_class: Any) -> None:
    """Check an ``empty_class`` argument: what a metric undefined for a class reports."""
    check_choice(empty_class, "empty_class", get_args(EmptyClass))


def warn_empty_classes(
    empty: Tensor,
    what: str,
    empty_class: EmptyClass,
    stacklevel: int,
    class_names: Sequence[str] | None = None,
) -> None:
    """One warning listing the classes with no known positive (``empty``, a bool mask).

    ``stacklevel`` is the user's line as :func:`warnings.warn` counts it from the caller of this
    function (2: the caller's caller), so that the warning points at the line that called ltml.
    With ``class_names``, each class is shown by its name and index (``'sofa' (17)``).
    """
    if bool(empty.any()):
        idx = torch.nonzero(empty).flatten().tolist()
        named = [f"{class_names[k]!r} ({k})" if class_names else str(k) for k in idx[:10]]
        shown = ", ".join(named) + (", ..." if len(idx) > 10 else "")
        value = "NaN and left out of means" if empty_class == "nan" else "0"
        message = (
            f"{len(idx)} class(es) have no positive target (classes {shown}): their {what} "
            f"undefined and reported as {value} (empty_class={empty_class!r})"
        )
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)


def resolve_empty_classes(
    ap: Tensor,
    empty_class: EmptyClass,
    stacklevel: int,
    class_names: Sequence[str] | None = None,
) -> Tensor:
    """Warn once about classes with no known positive, and give their AP the chosen value.

    ``stacklevel`` and ``class_names`` as for :func:`warn_empty_classes`, ``stacklevel`` counted
    from the caller of this function.
    """
    empty = torch.isnan(ap)
    warn_empty_classes(empty, "AP is", empty_class, stacklevel + 1, class_names)
    return ap.masked_fill(empty, 0.0) if empty_class == "zero" else ap


def nanmean(x: Tensor) -> float:
    """Mean of the non-NaN entries of ``x``; NaN if there are none."""
    kept = x[~torch.isnan(x)]
    return float(kept.mean()) if kept.numel() else math.nan


def json_number(x: float) -> float | None:
    """``x`` for ``json.dump``: NaN (an undefined value) becomes ``None``."""
    return None if math.isnan(x) else x
