"""ltml: PyTorch components for long-tailed multi-label image recognition.

Drop-in parts for your own training loop: re-balanced samplers, the two-branch head and losses of
Guo & Wang (CVPR 2021), baseline losses, and a reference-exact mean-average-precision meter.
"""

__version__ = "0.1.0.dev0"

from .samplers import ClassAwareSampler, PairedDataset, PairedSampler

__all__ = [
    "ClassAwareSampler",
    "PairedDataset",
    "PairedSampler",
    "__version__",
]
