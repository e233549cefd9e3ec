"""Data: class statistics, head / medium / tail groups, and multi-label datasets."""

from ._stats import class_counts, class_groups

__all__ = ["class_counts", "class_groups"]
