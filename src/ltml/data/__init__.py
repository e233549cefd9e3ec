"""Data: class statistics, long-tailed subsets, multi-label datasets and the demo dataset."""

from .._stats import class_counts, class_groups, cooccurrence
from .coco import COCOMultiLabel
from .demo import DemoMosaics, make_demo
from .image_list import read_image_list
from .longtail import cooccurrence_rank, make_long_tailed, pareto_quotas
from .partial import PLT_PROFILES, PLTSubset, drop_labels, make_plt
from .voc import VOC_CLASSES, VOCMultiLabel

__all__ = [
    "PLT_PROFILES",
    "VOC_CLASSES",
    "COCOMultiLabel",
    "DemoMosaics",
    "PLTSubset",
    "VOCMultiLabel",
    "class_counts",
    "class_groups",
    "cooccurrence",
    "cooccurrence_rank",
    "drop_labels",
    "make_demo",
    "make_long_tailed",
    "make_plt",
    "pareto_quotas",
    "read_image_list",
]
