"""ltml: PyTorch components for long-tailed multi-label image recognition.

Drop-in parts for your own training loop: re-balanced samplers, the two-branch head and losses of
Guo & Wang (CVPR 2021), baseline losses, and a reference-exact mean-average-precision meter.
"""

from .heads import DualBranchHead, DualBranchOutput, paired_forward, resnet_dual_branch

__version__ = "0.1.0.dev0"

__all__ = [
    "DualBranchHead",
    "DualBranchOutput",
    "__version__",
    "paired_forward",
    "resnet_dual_branch",
]
