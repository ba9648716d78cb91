"""What a landscape scan computes at each grid point: named per-point quantities.

Each quantity is one function ``quantity(point: Point) -> array`` registered under its
name with ``@quantity``; ``scan_landscape`` returns the ones it is asked for, stored and
checkpointed like the rest (the loss and its first derivatives through ``gradient=``, any
other through ``quantities=``). A ``Point`` holds ``θ``, the axes' tangents ``D`` and the
loss as a function of the flat parameters; what several quantities share (the loss and
its gradient, by the scan's forward or reverse mode; one Lanczos run on the Hessian for
``sharpness``, ``min_curvature`` and their residuals) is computed once per point.

Adding a quantity is one function here, e.g.::

    @quantity
    def axis_curvatures(point):
        ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp

from ..analysis.hessian import lanczos_ritz, ritz_pairs
from ._grid import Layout, unravel

QUANTITIES: dict[str, Callable[[Point], jax.Array]] = {}


def quantity(fn: Callable[[Point], jax.Array]) -> Callable[[Point], jax.Array]:
    """Register ``fn`` as the per-point quantity named ``fn.__name__``."""
    QUANTITIES[fn.__name__] = fn
    return fn


class Point:
    """One grid point while a chunk is traced.

    Attributes:
        f: the loss of the flat parameter vector.
        theta: ``(P,)`` the point's flat parameters ``θ₀ + c @ D``.
        D: ``(k, P)`` the axes' tangents (one row per axis).
        method: ``"forward"``, ``"reverse"`` or ``"none"``: how first derivatives are taken.
        full_gradient: whether forward mode pushes all ``P`` unit tangents (a quantity
            needs ``∇L``) or the ``k`` axes only.
        lanczos_iterations: Lanczos steps for the Hessian's extreme eigenvalues (at most
            ``P`` are taken).
    """

    def __init__(self, f, theta, D, method: str, full_gradient: bool,
                 lanczos_iterations: int = 20):
        self.f, self.theta, self.D = f, theta, D
        self.method, self.full_gradient = method, full_gradient
        self.lanczos_iterations = lanczos_iterations
        self._extremes: dict[str, tuple[jax.Array, jax.Array]] = {}

    @cached_property
    def _first_order(self) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        """``(L, ∂L/∂c, ∇L)`` by the scan's method (``∇L`` None in forward mode along
        the axes only); reverse mode when the method is ``"none"``."""
        f, theta, D = self.f, self.theta, self.D
        if self.method == "forward":
            tangents = D if not self.full_gradient else jnp.eye(theta.shape[0],
                                                                 dtype=theta.dtype)
            loss, derivs = jax.vmap(lambda t: jax.jvp(f, (theta,), (t,)),
                                    out_axes=(None, 0))(tangents)
            if not self.full_gradient:
                return loss, derivs, None
            g = derivs
        else:
            loss, g = jax.value_and_grad(f)(theta)
        return loss, D @ g, g

    @cached_property
    def loss(self) -> jax.Array:
        """``L(θ)`` (no derivative taken when the method is ``"none"``)."""
        return self.f(self.theta) if self.method == "none" else self._first_order[0]

    @property
    def axis_gradients(self) -> jax.Array:
        """``(k,)`` ``∂L/∂c_k``."""
        return self._first_order[1]

    @cached_property
    def gradient(self) -> jax.Array:
        """``(P,)`` ``∇_θ L``."""
        g = self._first_order[2]
        return jax.grad(self.f)(self.theta) if g is None else g

    @cached_property
    def hessian_lanczos(self):
        """Lanczos on ``v -> ∇²L v`` over all ``P`` parameters (``hessian.lanczos_ritz``,
        ``min(P, lanczos_iterations)`` steps from a fixed random start)."""
        _, hvp = jax.linearize(jax.grad(self.f), self.theta)
        m = min(self.theta.shape[0], self.lanczos_iterations)
        return lanczos_ritz(hvp, self.theta, jax.random.key(0), m)

    def hessian_extreme(self, which: str) -> tuple[jax.Array, jax.Array]:
        """``(θ, r)``: the largest (``which="largest"``) or smallest Ritz value of the
        Hessian and its residual ``‖∇²L y − θ y‖`` (NaN both where the Hessian is not
        finite)."""
        if which not in self._extremes:
            run = self.hessian_lanczos
            m = run.values.shape[0]
            idx = jnp.asarray([m - 1 if which == "largest" else 0])
            theta, _, res = ritz_pairs(run, idx)
            nan = jnp.asarray(jnp.nan, theta.dtype)
            self._extremes[which] = (jnp.where(run.finite, theta[0] / run.scale, nan),
                                     jnp.where(run.finite, res[0] / run.scale, nan))
        return self._extremes[which]


@quantity
def loss(point: Point) -> jax.Array:
    """``L(θ)``: ``()``."""
    return point.loss


@quantity
def axis_gradients(point: Point) -> jax.Array:
    """``∂L/∂c_k = ⟨∇L, D_k⟩``: ``(k,)``."""
    return point.axis_gradients


@quantity
def gradient_norm(point: Point) -> jax.Array:
    """``‖∇_θ L‖₂`` over all parameters: ``()``."""
    g = point.gradient
    return jnp.sqrt(jnp.sum(g * g))


@quantity
def axis_curvatures(point: Point) -> jax.Array:
    """``∂²L/∂c_k² = D_kᵀ ∇²L D_k``, the loss's second derivative along each axis (the
    curvature of the landscape's axis sections): ``(k,)``, forward over forward mode."""

    def along(d):
        def slope(theta):
            return jax.jvp(point.f, (theta,), (d,))[1]

        return jax.jvp(slope, (point.theta,), (d,))[1]

    return jax.vmap(along)(point.D)


@quantity
def sharpness(point: Point) -> jax.Array:
    """``λ_max(∇²L)``, the largest (algebraic) eigenvalue of the Hessian over all
    parameters, by Lanczos on Hessian-vector products: ``()``."""
    return point.hessian_extreme("largest")[0]


@quantity
def sharpness_residual(point: Point) -> jax.Array:
    """``‖∇²L y − λ y‖`` of the unit Ritz vector ``y`` of ``sharpness``: an eigenvalue of
    the Hessian lies within it of ``sharpness``: ``()``."""
    return point.hessian_extreme("largest")[1]


@quantity
def min_curvature(point: Point) -> jax.Array:
    """``λ_min(∇²L)``, the smallest (most negative) eigenvalue of the Hessian over all
    parameters, from the same Lanczos run as ``sharpness``: ``()``."""
    return point.hessian_extreme("smallest")[0]


@quantity
def min_curvature_residual(point: Point) -> jax.Array:
    """``‖∇²L y − λ y‖`` for ``min_curvature``, as ``sharpness_residual``: ``()``."""
    return point.hessian_extreme("smallest")[1]


# The quantities that run Lanczos on the Hessian (``lanczos_iterations`` applies).
HESSIAN_QUANTITIES = frozenset({"sharpness", "sharpness_residual", "min_curvature",
                                "min_curvature_residual"})

# The quantities ``gradient=`` selects, in the order of their files, and the ones that
# need the whole gradient ``∇L`` (forward mode then pushes every unit tangent).
BY_GRADIENT = {"full": ("loss", "axis_gradients", "gradient_norm"),
               "axes": ("loss", "axis_gradients"), "none": ("loss",)}
NEED_FULL_GRADIENT = frozenset({"gradient_norm"})


@dataclasses.dataclass(frozen=True)
class LandscapePoint:
    """The per-point function of a landscape scan (hashable: the chunk's static argument,
    equal for equal scans, so a second scan reuses the compiled chunk)."""

    loss_fn: Any
    layout: Layout
    method: str
    quantities: tuple[str, ...]
    lanczos_iterations: int = 20

    def __call__(self, c: jax.Array, base: jax.Array, D: jax.Array) -> dict[str, jax.Array]:
        def f(theta):
            return self.loss_fn(unravel(theta, self.layout))

        full = bool(NEED_FULL_GRADIENT & set(self.quantities))
        point = Point(f, base + c @ D, D, self.method, full, self.lanczos_iterations)
        return {name: QUANTITIES[name](point) for name in self.quantities}
