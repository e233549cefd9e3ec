"""The LTML example: the paper's VOC-LT / COCO-LT setup and the embedded demo, on ``ltml`` parts.

Modules, in the order a run uses them: :mod:`.presets` (the ``--row`` presets, the dataset
defaults, the paper's numbers), :mod:`.config` (:class:`Config`, what a run depends on),
:mod:`.flags` (the command line, resolved into a :class:`Config`), :mod:`.runtime` (device, DDP,
checkpoints), :mod:`.data` (datasets, the two samplings), :mod:`.model` (trunk, two-branch head,
loss of one step), :mod:`.engine` (the loop, evaluation), :mod:`.decoupled` (stage 2 of the
decoupled rows), :mod:`.report` (tables, JSON, plot); :mod:`.sweep` runs rows x seeds for
``demo.py`` and ``leaderboard.py``.
"""

from .config import Config
from .engine import run
from .flags import resolve

__all__ = ["Config", "resolve", "run"]
