"""The LTML example: the paper's VOC-LT / COCO-LT setup and the embedded demo, on ``ltml`` parts.

Modules, in the order a run uses them: :mod:`.config` (flags, ``--row`` presets, the paper's
numbers), :mod:`.data` (datasets, the two samplings), :mod:`.model` (trunk, two-branch head, loss
of one step), :mod:`.engine` (the loop, checkpoints, evaluation), :mod:`.report` (table, JSON,
plot).
"""

from .config import Config, resolve
from .engine import run

__all__ = ["Config", "resolve", "run"]
