"""The fit behind :class:`ltml.BalancedSampler`: maximum-entropy image probabilities within a band.

Given the positives ``y`` of ``N_d`` images over ``C_d`` classes, target shares ``t`` and a band
``r >= 1``, find

    min_p KL(p || u)   s.t.   t_k / r <= s_k(p) <= r t_k,   p_i <= m / N_d,   sum_i p_i = 1,

with ``s_k(p) = sum_i p_i y_ik / sum_i p_i |y_i|``. The band constraints are linear in ``p``
(``sum_i p_i (y_ik - r t_k |y_i|) <= 0`` and the like), so the problem is strictly convex; its dual
has one multiplier per class bound, maximised here by projected Newton steps (the Hessian is a
``C x C`` covariance, cheap next to the ``N``-long sums). The smallest reachable ``r`` is found by
bisection, each ``r`` either met or proven out of reach by the dual.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np

from .._validation import check_int, check_scalar

_SEARCH_PRECISION = 1.01  # the smallest reachable ratio is found to within 1 % (bisection)
_MAX_STEP = 10.0  # initial reach: largest change of a multiplier (a log factor) in a step


class _Problem(NamedTuple):
    """The fit on the drawable images (a positive label) and the classes with a positive.

    Every image and every class has a positive, so a ``bincount`` over ``images`` or ``classes``
    has one entry per image or class without a ``minlength``.
    """

    images: np.ndarray  # (nnz,) image of each positive label, image-major
    classes: np.ndarray  # (nnz,) its class
    sizes: np.ndarray  # (N_d,) positive labels per image, float64
    targets: np.ndarray  # (C_d,) target shares t_k, summing to 1
    log_cap: float  # log of the largest allowed p_i (0 = no cap)
    pair_images: np.ndarray  # image of each pair k < k' of its positives, for the curvature
    pair_keys: np.ndarray  # k * C_d + k' of that pair


class _Dual(NamedTuple):
    value: float
    scores: np.ndarray  # (N_d,) g_i
    grad: np.ndarray  # (2 C_d,) band constraints at p, upper then lower (all <= 0 when met)
    p: np.ndarray
    shares: np.ndarray


def _problem(
    counts: np.ndarray, image_ids: np.ndarray, power: float, max_weight: float | None
) -> tuple[_Problem, np.ndarray]:
    """Build the problem from class-major positives; also return the drawable images' indices."""
    active = np.flatnonzero(counts)
    slots = np.repeat(np.arange(active.size), counts[active])
    drawable, images = np.unique(image_ids, return_inverse=True)
    order = np.argsort(images.ravel(), kind="stable")
    images, classes = images.ravel()[order], slots[order]
    sizes = np.bincount(images)
    # Every pair k < k' of each image's positives (the curvature sums over them), built per
    # label count s, where the images' classes form an (images, s) block.
    starts = np.cumsum(sizes) - sizes
    pair_images, pair_keys = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for size in np.unique(sizes):  # size 1: no pair
        ids = np.flatnonzero(sizes == size)
        block = classes[starts[ids][:, None] + np.arange(size)]
        first, second = np.triu_indices(size, 1)
        pair_images.append(np.repeat(ids, first.size))
        pair_keys.append((block[:, first] * active.size + block[:, second]).ravel())
    targets = counts[active].astype(np.float64) ** power
    log_cap = 0.0 if max_weight is None else min(math.log(max_weight / drawable.size), 0.0)
    problem = _Problem(
        images, classes, sizes.astype(np.float64), targets / targets.sum(), log_cap,
        np.concatenate(pair_images), np.concatenate(pair_keys),
    )  # fmt: skip
    return problem, drawable


def _capped(z: np.ndarray, log_cap: float) -> np.ndarray:
    """Return ``p = min(exp(log_cap), exp(z - shift))`` with ``shift`` such that ``sum(p) = 1``."""
    shift = float(z.max()) + math.log(float(np.exp(z - z.max()).sum()))
    # Newton on the scale exp(-shift) from below: the sum is concave and piecewise linear in it,
    # so no iterate overshoots and each is exact once the capped set stops growing. In log space,
    # so that images far below the cap do not underflow. (z is never empty: p gets set.)
    for _ in range(z.size):
        p = np.exp(np.minimum(z - shift, log_cap))
        deficit = 1.0 - p.sum()
        free = z[z - shift < log_cap]
        if deficit <= 1e-14 or not free.size:  # done; or all at the cap (max_weight = 1: uniform)
            break
        # The free images' mass, in log space (it may underflow): a Newton step on the scale.
        top = float(free.max())
        log_free = top - shift + math.log(float(np.exp(free - top).sum()))
        shift -= float(np.logaddexp(0.0, math.log(deficit) - log_free))
    normalised: np.ndarray = p / p.sum()
    return normalised


def _scores(problem: _Problem, lam: np.ndarray, ratio: float) -> np.ndarray:
    """Return ``g_i = sum_j lam_j a_ij``, the multiplier-weighted band constraint terms of image i.

    ``lam`` holds the multipliers of the upper bounds, then those of the lower bounds.
    """
    num_classes = problem.targets.size
    up, low = lam[:num_classes], lam[num_classes:]
    per_label = ratio * float(problem.targets @ up) - float(problem.targets @ low) / ratio
    by_class = np.bincount(problem.images, (up - low)[problem.classes])
    return by_class - problem.sizes * per_label


def _dual(problem: _Problem, lam: np.ndarray, ratio: float) -> _Dual:
    """Evaluate the Lagrange dual ``min_p KL(p || u) + sum_i p_i g_i`` over the capped simplex."""
    g = _scores(problem, lam, ratio)
    p = _capped(-g, problem.log_cap)
    drawn = np.bincount(problem.classes, p[problem.images])
    total = drawn.sum()
    grad = np.concatenate(
        [drawn - ratio * problem.targets * total, problem.targets * total / ratio - drawn]
    )
    positive = p > 0
    # Sums of products rather than ``@``: a BLAS dot of N-vectors can stall on busy threads.
    kl = float((p[positive] * np.log(p[positive] * p.size)).sum())
    return _Dual(kl + float((p * g).sum()), g, grad, p, drawn / total)


def _curvature(
    problem: _Problem, p: np.ndarray, ratio: float, up: np.ndarray, low: np.ndarray
) -> np.ndarray:
    """Return minus the dual's Hessian in the free multipliers.

    It is the covariance of the images' constraint coefficients under ``p`` on the images below
    the cap (the capped ones do not move).
    """
    num_classes = problem.targets.size
    weight = np.where(p < math.exp(problem.log_cap) * (1 - 1e-12), p, 0.0)
    labelled = np.bincount(problem.classes, weight[problem.images])
    pairs = np.bincount(
        problem.pair_keys, weight[problem.pair_images], num_classes * num_classes
    ).reshape(num_classes, num_classes)
    second = pairs + pairs.T + np.diag(labelled)
    sized = np.bincount(problem.classes, (weight * problem.sizes)[problem.images])
    # Coefficient of multiplier j (class k, sign σ, ρ = ratio or 1/ratio) on image i:
    # σ (y_ik - ρ t_k |y_i|).
    k = np.concatenate([np.flatnonzero(up), np.flatnonzero(low)])
    sign = np.where(np.arange(k.size) < up.sum(), 1.0, -1.0)
    rt = np.where(sign > 0, ratio, 1 / ratio) * problem.targets[k]
    moment = (
        second[np.ix_(k, k)]
        - np.outer(sized[k], rt)
        - np.outer(rt, sized[k])
        + np.outer(rt, rt) * float((weight * problem.sizes**2).sum())
    ) * np.outer(sign, sign)
    mean = sign * (labelled[k] - rt * float((weight * problem.sizes).sum()))
    covariance = moment - np.outer(mean, mean) / max(weight.sum(), 1e-300)
    # A small ridge: with ratio = 1 a common shift of all multipliers changes nothing. Without
    # curvature (the images that tell the free multipliers apart all at the cap, where the dual is
    # linear) a long gradient step, which the caller cuts to its reach and the line search backs
    # off: a step the size of the gradient would creep along the cap for many iterations.
    trace = float(np.trace(covariance))
    ridge = 1e-10 * trace / k.size if trace > 0 else 1e-12
    curvature: np.ndarray = covariance + ridge * np.eye(k.size)
    return curvature


def _separated(problem: _Problem, g: np.ndarray) -> bool:
    """Whether scores ``g`` (of some ``lam >= 0``) prove the band out of reach.

    For any ``p`` meeting the band, ``sum_i p_i g_i`` is a ``lam``-weighted sum of constraint
    values, hence ``<= 0``; this checks that it is ``> 0`` for every ``p`` of the capped simplex,
    whose smallest value puts the cap on the smallest ``g_i``.
    """
    cap = math.exp(problem.log_cap)
    whole = min(int(1 / cap), g.size - 1)
    smallest = np.partition(g, whole)  # the whole smallest first, then the next one
    return bool(cap * smallest[:whole].sum() + (1 - whole * cap) * smallest[whole] > 0)


def _solve(
    problem: _Problem, ratio: float, lam: np.ndarray, tol: float, max_iter: int
) -> tuple[bool | None, np.ndarray, _Dual]:
    """Maximise the concave dual over ``lam >= 0`` by projected Newton steps, from ``lam``.

    Returns ``True`` once the band holds to ``tol`` with a duality gap ``<= tol``; ``False`` once
    the band is proven out of reach, by weak duality (the dual above ``log(max_i N_d p_i)``, an
    upper bound of ``KL(p || u)``) or by a separating multiplier; ``None`` after ``max_iter``
    steps. Also returns the last multipliers and the dual there.
    """
    num_classes = problem.targets.size
    bound = min(problem.log_cap, 0.0) + math.log(problem.sizes.size)
    state, reach = _dual(problem, lam, ratio), _MAX_STEP
    for _ in range(max_iter):
        excess = state.shares / problem.targets
        with np.errstate(divide="ignore"):
            violation = max(excess.max() / ratio, 1 / (ratio * excess.min())) - 1
        if violation <= tol and -float(lam @ state.grad) <= tol:
            return True, lam, state
        if state.value > bound + tol or _separated(problem, state.scores):
            return False, lam, state
        # One multiplier per class moves: the side already positive, else the one whose bound
        # is broken (both bounds cannot be, as ratio >= 1); the others stay at 0.
        upper, lower = lam[:num_classes], lam[num_classes:]
        up = (upper > 0) | ((lower == 0) & (state.grad[:num_classes] > 0))
        low = ~up & ((lower > 0) | (state.grad[num_classes:] > 0))
        free = np.concatenate([up, low])
        direction = np.zeros_like(lam)
        direction[free] = np.linalg.solve(
            _curvature(problem, state.p, ratio, up, low), state.grad[free]
        )
        # Out of reach, the multipliers grow without bound along a separating direction.
        if _separated(problem, _scores(problem, np.maximum(direction, 0.0), ratio)):
            return False, lam, state
        longest = float(np.abs(direction).max())
        if longest > reach:
            direction *= reach / longest
        step = 1.0
        while step > 1e-10:
            new = np.maximum(lam + step * direction, 0.0)
            trial = _dual(problem, new, ratio)
            if trial.value >= state.value + 1e-4 * float(state.grad @ (new - lam)):
                break
            step /= 2
        else:
            return None, lam, state
        # A clipped step taken in full widens the reach: out of reach, the multipliers then grow
        # geometrically, and the dual soon passes its bound.
        reach = 2 * reach if step == 1.0 and longest > reach else _MAX_STEP
        lam, state = new, trial
    return None, lam, state


class Fit(NamedTuple):
    """The fitted probabilities, the expected shares and the band they meet."""

    weights: np.ndarray  # (N,) probabilities, 0 for the images without a positive
    shares: np.ndarray  # (C,) expected shares of the positive draws
    ratio: float  # the band met: max_k max(s_k / t_k, t_k / s_k)


def fit_probabilities(
    counts: np.ndarray,
    image_ids: np.ndarray,
    num_images: int,
    power: Any,
    max_ratio: Any,
    max_weight: Any,
    tol: Any,
    max_iter: Any,
    who: str,
) -> Fit:
    """Fit the probabilities from the class-major positives (``image_ids`` grouped by class).

    ``who`` (the public caller) starts the warnings.
    """
    power = check_scalar(power, "power", low=0.0, high=1.0)
    if max_ratio is not None:
        max_ratio = check_scalar(max_ratio, "max_ratio", low=1.0)
    if max_weight is not None:
        max_weight = check_scalar(max_weight, "max_weight", low=1.0)
    tol = check_scalar(tol, "tol", low=0.0, high=1.0, low_open=True)
    max_iter = check_int(max_iter, "max_iter")
    problem, drawable = _problem(counts, image_ids, power, max_weight)
    active = counts > 0
    # Uniform sampling gives class k the share n_k / sum n: any band this wide holds it.
    uniform = counts[active] / counts.sum() / problem.targets
    widest = max(float(uniform.max()), float(1 / uniform.min()))
    wanted = 1.0 if max_ratio is None else max_ratio
    start = np.zeros(2 * problem.targets.size)
    found, _, state = _solve(problem, min(wanted, widest), start, tol, max_iter)
    if not found:
        # Bisection on log(ratio), each fit starting from the multipliers of the last band met. A
        # fit that has not met its band within max_iter steps counts as out of reach, so
        # ``floor`` keeps the largest ratio proven out of reach.
        proven = found is False
        low, high, floor = wanted, widest, wanted if proven else 1.0
        _, best, state = _solve(problem, high, start, tol, max_iter)
        while high / low > _SEARCH_PRECISION:
            middle = math.sqrt(low * high)
            found, lam, trial = _solve(problem, middle, best, tol, max_iter)
            if found:
                high, best, state = middle, lam, trial
            else:
                low, floor = middle, middle if found is False else floor
        if high / floor > _SEARCH_PRECISION**2:
            warnings.warn(
                f"{who}: some fits did not converge within max_iter={max_iter} Newton "
                f"steps; the ratio found, {high:.4g}, may be up to {high / floor:.3g} times the "
                "smallest the data allow",
                UserWarning,
                stacklevel=3,
            )
        if max_ratio is not None:
            reason = "is out of reach for these labels" if proven else "was not met"
            warnings.warn(
                f"{who}: max_ratio={max_ratio:g} {reason}; using the smallest ratio found, "
                f"{high:.4g}",
                UserWarning,
                stacklevel=3,
            )
    weights = np.zeros(num_images)
    weights[drawable] = state.p
    shares = np.zeros(counts.size)
    shares[active] = state.shares
    excess = state.shares / problem.targets
    return Fit(weights, shares, float(max(excess.max(), 1 / excess.min())))
