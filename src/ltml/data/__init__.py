"""Data: class statistics, long-tail reports, stratified splits, datasets and the demo dataset."""

from ..stats import class_counts, class_groups, cooccurrence
from .coco import COCOMultiLabel
from .demo import DemoMosaics, make_demo
from .image_list import read_image_list
from .longtail import cooccurrence_rank, make_long_tailed, pareto_quotas
from .openimages import OpenImagesLabels, OpenImagesMultiLabel, read_openimages_labels
from .partial import PLT_PROFILES, PLTSubset, drop_labels, make_plt
from .report import LabelReport, describe_labels
from .split import split_deviation, stratified_split
from .table import LabelTable, TableMultiLabel, read_label_table
from .voc import VOC_CLASSES, VOCMultiLabel

__all__ = [
    "PLT_PROFILES",
    "VOC_CLASSES",
    "COCOMultiLabel",
    "DemoMosaics",
    "LabelReport",
    "LabelTable",
    "OpenImagesLabels",
    "OpenImagesMultiLabel",
    "PLTSubset",
    "TableMultiLabel",
    "VOCMultiLabel",
    "class_counts",
    "class_groups",
    "cooccurrence",
    "cooccurrence_rank",
    "describe_labels",
    "drop_labels",
    "make_demo",
    "make_long_tailed",
    "make_plt",
    "pareto_quotas",
    "read_image_list",
    "read_label_table",
    "read_openimages_labels",
    "split_deviation",
    "stratified_split",
]
