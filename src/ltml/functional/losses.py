"""Loss functionals: the multi-label losses of :mod:`ltml.losses` as stateless functions.

Each is defined beside its module in the family's file of :mod:`ltml.losses`, whose docstring
gives what they share (unknown labels, soft targets, dtypes, value checks); re-exported here.
"""

from ..losses import Reduction, Unknown
from ..losses.asymmetric import asymmetric_loss
from ..losses.balance import head_tail_balance_loss
from ..losses.bce import bce, focal_loss
from ..losses.collaborative import cross_branch_consistency
from ..losses.comic import multi_focal_modifier_loss
from ..losses.compensated import logit_compensated_bce
from ..losses.correction import reflective_label_correction
from ..losses.distribution_balanced import distribution_balanced_loss
from ..losses.robust import hill_loss, splc_loss

__all__ = [
    "Reduction",
    "Unknown",
    "asymmetric_loss",
    "bce",
    "cross_branch_consistency",
    "distribution_balanced_loss",
    "focal_loss",
    "head_tail_balance_loss",
    "hill_loss",
    "logit_compensated_bce",
    "multi_focal_modifier_loss",
    "reflective_label_correction",
    "splc_loss",
]
