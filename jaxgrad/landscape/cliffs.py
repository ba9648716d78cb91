"""Cliffs in a scanned loss landscape: where the loss jumps and where the gradient peaks.

A jump between two neighbouring grid points ``i, i+1`` along axis ``k`` is a change of
the loss that the derivatives at both ends cannot explain: by the mean value theorem
``|ΔL| = h |∂L/∂c_k(ξ)|`` for some ``ξ`` between them, so

    |ΔL| > r · h · max(|∂_k L(i)|, |∂_k L(i+1)|)   (r = ``taylor_ratio``)

means the slope in between was more than ``r`` times steeper than at both ends: a
wall narrower than the grid spacing (Pascanu, Mikolov & Bengio 2013, section 3.2; seed
001, "Geometric model"). Gradient peaks are local maxima of the gradient norm that stand
far above its median.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import check_positive_float, check_positive_int
from .scan import LandscapeScan


class Cliffs(NamedTuple):
    """Cliffs found by ``find_cliffs``, largest first.

    Attributes:
        jump_points: ``(m, k)`` coordinates of the midpoint between the two neighbours.
        jump_axis: ``(m,)`` the axis along which the neighbours lie.
        jump_sizes: ``(m,)`` signed ``L(i+1) - L(i)``.
        peak_points: ``(p, k)`` coordinates of gradient-norm peaks.
        peak_gradient_norms: ``(p,)`` the gradient norm there.
        median_gradient_norm: the median over finite points (the peaks' yardstick).
    """

    jump_points: np.ndarray
    jump_axis: np.ndarray
    jump_sizes: np.ndarray
    peak_points: np.ndarray
    peak_gradient_norms: np.ndarray
    median_gradient_norm: float


def find_cliffs(
    scan: LandscapeScan,
    *,
    min_jump: float | None = None,
    taylor_ratio: float = 4.0,
    peak_ratio: float = 100.0,
    max_points: int = 1000,
) -> Cliffs:
    """Loss jumps and gradient-norm peaks of a ``scan_landscape`` result, with coordinates.

    Arguments:
        scan: a ``LandscapeScan``; non-finite points are skipped.
        min_jump: the smallest ``|ΔL|`` that counts; default 1% of the finite loss range
            (10% when the scan has no gradients, where the Taylor test is unavailable).
        taylor_ratio: ``r`` in ``|ΔL| > r h max|∂_k L|`` (ignored without gradients).
        peak_ratio: a peak must exceed ``peak_ratio`` times the median gradient norm.
        max_points: the most jumps and peaks returned (largest first).

    Returns:
        ``Cliffs``.

    Example:
        >>> loss = lambda p: jnp.where(p["b"] < -2.53, 0.0, 1.0) + 0.1 * p["b"]  # a wall
        >>> scan = jaxgrad.scan_landscape(loss, {"b": 0.0}, {"b": (-3.0, -2.0, 11)},
        ...                               progress=False)
        >>> cliffs = find_cliffs(scan)
        >>> [round(float(b), 2) for b in cliffs.jump_points[0]]   # where the loss jumps most
        [-2.55]
    """
    if not isinstance(scan, LandscapeScan):
        raise TypeError(f"`scan` must be a LandscapeScan, got {type(scan).__name__}")
    taylor_ratio = check_positive_float("taylor_ratio", taylor_ratio)
    peak_ratio = check_positive_float("peak_ratio", peak_ratio)
    max_points = check_positive_int("max_points", max_points)
    loss = np.asarray(scan.loss, np.float64)
    finite = np.asarray(scan.finite, bool)
    grads = None if scan.axis_gradients is None else np.asarray(scan.axis_gradients, np.float64)
    k = loss.ndim
    if min_jump is None:
        span = float(np.ptp(loss[finite])) if finite.any() else 0.0
        min_jump = (0.01 if grads is not None else 0.1) * span
    else:
        min_jump = check_positive_float("min_jump", min_jump, allow_zero=True)

    points, axes_, sizes = [], [], []
    for j in range(k):
        n = loss.shape[j]
        if n < 2:
            continue
        lo = [slice(None)] * k
        hi = [slice(None)] * k
        lo[j], hi[j] = slice(0, n - 1), slice(1, n)
        lo, hi = tuple(lo), tuple(hi)
        dL = loss[hi] - loss[lo]
        ok = finite[hi] & finite[lo]
        shape = [1] * k
        shape[j] = n - 1
        h = np.diff(np.asarray(scan.coords[j], np.float64)).reshape(shape)
        jump = ok & (np.abs(dL) > min_jump)
        if grads is not None:
            slope = np.maximum(np.abs(grads[lo + (j,)]), np.abs(grads[hi + (j,)]))
            jump &= np.abs(dL) > taylor_ratio * h * slope
        idx = np.argwhere(jump)
        for i in idx:
            coord = [float(scan.coords[a][i[a]]) for a in range(k)]
            coord[j] = 0.5 * (float(scan.coords[j][i[j]]) + float(scan.coords[j][i[j] + 1]))
            points.append(coord)
            axes_.append(j)
            sizes.append(float(dL[tuple(i)]))
    order = np.argsort(-np.abs(np.asarray(sizes)), kind="stable")[:max_points]
    jump_points = np.asarray(points, np.float64).reshape(-1, k)[order]
    jump_axis = np.asarray(axes_, np.int64)[order]
    jump_sizes = np.asarray(sizes, np.float64)[order]

    if scan.gradient_norm is not None:
        G = np.asarray(scan.gradient_norm, np.float64)
    elif grads is not None:
        G = np.sqrt(np.sum(grads**2, axis=-1))
    else:
        G = None
    if G is None or not finite.any():
        peak_points = np.zeros((0, k))
        peak_norms = np.zeros((0,))
        median = float("nan")
    else:
        G = np.where(finite, G, -np.inf)
        median = float(np.median(G[finite]))
        is_peak = finite & (G > peak_ratio * median)
        for j in range(k):
            padded = np.pad(G, [(1, 1) if a == j else (0, 0) for a in range(k)],
                            constant_values=-np.inf)
            n = G.shape[j]
            before = np.take(padded, np.arange(0, n), axis=j)
            after = np.take(padded, np.arange(2, n + 2), axis=j)
            is_peak &= (G >= before) & (G >= after)
        idx = np.argwhere(is_peak)
        values = G[is_peak]
        order = np.argsort(-values, kind="stable")[:max_points]
        peak_points = np.asarray(
            [[float(scan.coords[a][i[a]]) for a in range(k)] for i in idx], np.float64
        ).reshape(-1, k)[order]
        peak_norms = values[order]
    return Cliffs(jump_points, jump_axis, jump_sizes, peak_points, peak_norms, median)
