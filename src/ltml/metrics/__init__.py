"""Multi-label metrics: average precision, the thresholded metrics, and the meter of them all.

- :mod:`ltml.metrics.average_precision`: per-class AP, the mAP's terms (a function).
- :mod:`ltml.metrics.thresholded`: OP, OR, OF1, CP, CR, CF1 at a threshold, and thresholds fitted
  per class (functions and their result types).
- :mod:`ltml.metrics.meter`: :class:`mAPMeter`, which accumulates scores over an evaluation run
  (any batch sizes, any device, several processes under DDP) and computes all of them, per
  class group too, as a :class:`MAPResult`.

The functions are also in :mod:`ltml.functional`; every public name is in :mod:`ltml`.
"""

from .meter import MAPResult, mAPMeter

__all__ = ["MAPResult", "mAPMeter"]
