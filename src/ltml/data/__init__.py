"""Data: class statistics, head / medium / tail groups, and multi-label datasets."""

from ._stats import class_counts, class_groups
from .longtail import cooccurrence_rank, make_long_tailed, pareto_quotas

__all__ = [
    "class_counts",
    "class_groups",
    "cooccurrence_rank",
    "make_long_tailed",
    "pareto_quotas",
]
