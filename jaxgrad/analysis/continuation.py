"""Pseudo-arclength continuation of fixed points, folds, flips, Hopf points and their curves;
branch points and branch switching.

A fixed-point branch ``g(x, p) = 0`` (``g = f - x`` for a map, ``f`` for a flow) is
followed as a curve ``(x(s), p(s))`` in arclength ``s``: predictor ``z + Δs t`` along the
unit tangent ``t`` (the null vector of ``[∂g/∂x ∂g/∂p]``), corrector Newton on
``g(z) = 0, t·(z - z_pred) = 0`` (Keller 1977). Because ``p`` is an unknown too, the branch
passes through folds, where ``∂p/∂s`` changes sign.

Folds (``∂g/∂x`` singular: μ = +1 for a map, λ = 0 for a flow) and flips (map, μ = -1)
are detected by sign changes along the branch and located by Newton on the extended
system ``g(x, p) = 0, M(x, p) v = 0, c·v = 1`` with ``M = ∂g/∂x`` (fold) or ``∂f/∂x + I``
(flip) (Kuznetsov, *Elements of Applied Bifurcation Theory*, 3rd ed. (2004), §10.2). The
same extended system continued in a second parameter is the fold curve; where that
curve turns back in the second parameter it has a cusp.

Hopf points (a flow's complex pair ``λ = ±iω`` on the imaginary axis) and, for a map,
Neimark-Sacker points (a complex pair of multipliers ``e^{±iθ}`` on the unit circle, also
reported with kind ``"hopf"``) are detected by sign changes of the bialternate test
function ``∏_{i<j} (λ_i + λ_j)`` (flow) or ``∏_{i<j} (μ_i μ_j - 1)`` (map); a sign change
made by a real pair (a neutral saddle, ``λ, -λ`` or ``μ, 1/μ``) is not a Hopf point and is
skipped. They are located by Newton on ``g(x, p) = 0, A q = λ q, ⟨c, q⟩ = 1`` with
``λ = iω`` or ``e^{iθ}`` in real form (Kuznetsov 2004, §10.2.2), and carry the frequency and
the first Lyapunov coefficient (Kuznetsov 2004, eq. (3.20) and §4.7 / §5.4). A flow's
Hopf curve in two parameters (``hopf_curve``) is continued on Kuznetsov's standard system
``(A² + κ I) v = 0`` with ``κ = ω²``, which passes through Bogdanov-Takens points
(``κ = 0``); ``l_1`` is evaluated along it, and its sign changes are generalised Hopf
(Bautin) points, located by regula falsi on ``l_1`` along the curve (Kuznetsov 2004, §8.3,
§10.2.2).

Branch points, where two branches of fixed points cross (a real eigenvalue through
μ = +1 / λ = 0 while the branch goes on: transcritical and pitchfork points), are detected
by sign changes of ``det [[∂g/∂x, ∂g/∂p], [tᵀ]]`` with ``t`` the oriented tangent, which
changes sign at a simple branch point but not at a fold (Allgower & Georg, *Introduction to
Numerical Continuation Methods* (2003), §8.1). They are located by Newton on
``g + βψ = 0, (∂g/∂x)ᵀψ = 0, ψ·∂g/∂p = 0, ψ·ψ = 1`` (Moore 1980), regular at a simple
branch point, and the two branches' tangents are the roots of the algebraic branching
equation; ``switch_branch`` follows the second branch (Kuznetsov 2004, §10.2.4).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_array, check_choice, check_positive_float, check_positive_int
from ._system import (
    as_system,
    check_interval,
    check_output,
    check_param,
    check_params_finite,
    check_state,
    check_system,
    classify,
    default_tol,
    eigenvalues,
    flattened,
    get_param,
    param_label,
    residual,
    restore_state,
    set_param,
)

BIFURCATIONS = ("fold", "flip", "hopf", "branch_point")

#: Largest ``num_steps`` of ``continue_branch`` and ``fold_curve``: the result holds
#: ``num_steps + 1`` rows, allocated up front. A longer branch is continued by calling
#: again from the last valid point.
MAX_CONTINUATION_STEPS = 100_000

# A continuation step is refused when the tangent turns by more than arccos of this (≈ 26°).
_MIN_TANGENT_COS = 0.9


class BifurcationPoint(NamedTuple):
    """A located fold, flip, Hopf or branch point of a fixed-point branch.

    Attributes:
        kind: ``"fold"``, ``"flip"`` (maps), ``"hopf"`` or ``"branch_point"``. For a map
            ``"hopf"`` is a Neimark-Sacker point: a complex pair of multipliers ``e^{±iθ}``
            on the unit circle (``LOSS_OF_STABILITY_LABELS`` calls it
            ``"neimark_sacker"``). A branch point is where two branches of fixed points
            cross (a real eigenvalue through μ = +1 / λ = 0 while the branch goes on):
            ``branch_type`` says which.
        x: ``(*s)`` the fixed point at the bifurcation, a state like the one given (a
            pytree state: that pytree).
        p: ``()`` the parameter value.
        eigenvalues: ``(n,)`` of ``∂f/∂x`` there (one is 1 / -1 for a map fold / flip,
            0 for a flow fold; a pair is ``±iω`` for a flow Hopf, ``e^{±iθ}`` for a map);
            ``n`` is the state's size, and for an N-D or pytree state these and
            ``null_vector``, ``branch_tangents`` belong to the flattened state
            (``ravel_pytree`` order).
        null_vector: ``(n,)`` the critical eigenvector: real ``v`` (fold, flip, branch
            point, ``‖v‖ = 1`` for the last); for a Hopf point the complex ``q`` with
            ``∂f/∂x q = iω q`` (``e^{iθ} q``), ``‖q‖ = 1``.
        converged: whether Newton on the extended system reached ``tol``: the residual is
            below ``tol`` and the next Newton correction of ``(x, p)`` is below ``tol``
            times the larger of ``‖(x, p)‖`` and the guess's (the residual alone does not
            show convergence at tiny scales, where ``g`` is below ``tol`` anywhere); for a
            Hopf point also: the frequency is not ≈ 0, which would be a fold or a
            Bogdanov-Takens point, nor, for a map, ``θ`` ≈ π; for a branch point also: the
            algebraic branching equation has two distinct real roots.
        residual: ``‖(g, M v, c·v - 1)‖`` (Hopf: ``‖(g, A q - λ q, ⟨c, q⟩ - 1)‖``; branch
            point: ``‖(g, (∂g/∂x)ᵀψ, ψ·∂g/∂p, ψ·ψ - 1)‖``) at the returned point.
        frequency: ``()`` a Hopf point's ``ω > 0`` (flow; the period of the small cycles is
            ``2π/ω``) or angle ``θ ∈ (0, π)`` (map); NaN for a fold or flip.
        first_lyapunov_coefficient: ``()`` a Hopf point's ``l_1`` (flow, Kuznetsov 2004,
            eq. (3.20)) or ``d = Re(e^{-iθ} c_1)`` (map, §4.7), with ``⟨q, q⟩ = 1``,
            ``⟨p, q⟩ = 1``: negative for a supercritical point (a stable cycle or invariant
            circle is born), positive for a subcritical one; NaN for a fold or flip.
            For ``ẋ = -ωy + f(x, y), ẏ = ωx + g(x, y)`` it is ``2a/ω`` with ``a`` the
            coefficient of Guckenheimer & Holmes (1983), eq. (3.4.11).
        branch_type: a branch point's ``"transcritical"`` (both branches cross
            ``p = p*``) or ``"pitchfork"`` (one branch turns back in ``p`` there,
            ``dp/ds = 0`` on its tangent, to within ``100 tol``: the symmetric case);
            ``""`` for the other kinds.
        branch_tangents: a branch point's ``(2, n + 1)`` unit tangents of the two branches
            in ``(x, p)`` (``p`` last, ``dp/ds >= 0``), the roots of the algebraic
            branching equation. From ``continue_branch`` the first is the branch that was
            followed; from ``locate_bifurcation`` they are ordered by decreasing
            ``|dp/ds|``. ``switch_branch`` follows the second. ``None`` for the other kinds.
    """

    kind: str
    x: jax.Array
    p: jax.Array
    eigenvalues: jax.Array
    null_vector: jax.Array
    converged: jax.Array
    residual: jax.Array
    frequency: Any = float("nan")
    first_lyapunov_coefficient: Any = float("nan")
    branch_type: str = ""
    branch_tangents: Any = None


class Branch(NamedTuple):
    """A continued fixed-point branch (``S = num_steps + 1`` rows, the start first).

    Attributes:
        x: ``(S, *s)`` states (a pytree state: that pytree with leaves
            ``(S, *leaf_shape)``); ``p``: ``(S,)`` parameter values.
        valid: ``(S,)`` accepted points inside ``p_range`` (the others are rejected
            predictor-corrector attempts or lie past the end of the branch; rows past the
            end are not computed and hold NaN).
        eigenvalues: ``(S, n)`` of ``∂f/∂x``; ``stability``: ``(S,)`` codes into
            ``STABILITY_LABELS``, -1 where the eigenvalues are not finite (rows past the
            end, failed attempts).
        tangent_p: ``(S,)`` ``dp/ds``; it changes sign at a fold.
        residual: ``(S,)`` ``‖g(x, p)‖`` after the corrector.
        bifurcations: located ``BifurcationPoint`` s (kinds ``"fold"``, ``"flip"``,
            ``"hopf"``, ``"branch_point"``), in order along the branch.
    """

    x: jax.Array
    p: jax.Array
    valid: jax.Array
    eigenvalues: jax.Array
    stability: jax.Array
    tangent_p: jax.Array
    residual: jax.Array
    bifurcations: tuple[BifurcationPoint, ...]


class CuspPoint(NamedTuple):
    """A cusp on a fold curve: where the curve turns back in the second parameter."""

    x: jax.Array
    p: jax.Array
    p2: jax.Array
    converged: jax.Array
    residual: jax.Array


class FoldCurve(NamedTuple):
    """A fold curve in two parameters (``S`` rows).

    Attributes:
        x: ``(S, *s)`` the fixed point at the fold (a pytree state: leaves
            ``(S, *leaf_shape)``); ``p``: ``(S,)`` the first parameter;
            ``p2``: ``(S,)`` the second.
        valid: ``(S,)`` accepted points inside ``p2_range``.
        cusps: located ``CuspPoint`` s.
    """

    x: jax.Array
    p: jax.Array
    p2: jax.Array
    valid: jax.Array
    cusps: tuple[CuspPoint, ...]


# --------------------------------------------------------------------------- internals


def _fixed_point_system(f, kind, param, params, shape):
    """``R(y, q) = g(x, p)`` flattened, with ``y = vec(x)`` and ``q`` the parameter."""
    g = residual(f, kind)

    def R(y, q):
        return jnp.reshape(g(jnp.reshape(y, shape), set_param(params, param, q)), (-1,))

    return R


def _singular_system(R, n, c, shift):
    """``E((y, v), q) = (R, (∂R/∂y + shift I) v, c·v - 1)`` over ``y`` of size ``n``."""

    def E(Y, q):
        y, v = Y[:n], Y[n:]
        Jv = jax.jvp(lambda yy: R(yy, q), (y,), (v,))[1] + shift * v
        return jnp.concatenate([R(y, q), Jv, (c @ v - 1.0)[None]])

    return E


def _full_jacobian(R, z, m):
    Jy, Jq = jax.jacfwd(R, argnums=(0, 1))(z[:m], z[m])
    return jnp.concatenate([Jy, Jq[:, None]], axis=1)


def _equilibrated_solve(J, r):
    """``J⁻¹ r`` with the rows and then the columns of ``J`` scaled to max-norm 1.

    The extended systems mix blocks of very different sizes when the state is far from unit
    scale (``g ∼ s``, ``∂²f/∂x² ∼ 1/s`` for states of size ``s``): unscaled, LU loses the
    small block's digits and Newton stalls short of the root.
    """
    one = jnp.ones((), J.dtype)
    rows = jnp.max(jnp.abs(J), axis=1)
    rows = jnp.where(rows > 0, rows, one)
    Jr = J / rows[:, None]
    cols = jnp.max(jnp.abs(Jr), axis=0)
    cols = jnp.where(cols > 0, cols, one)
    return jnp.linalg.solve(Jr / cols[None, :], r / rows) / cols


def _newton(H, z, steps):
    def body(_, z):
        return z - _equilibrated_solve(jax.jacfwd(H)(z), H(z))

    return jax.lax.fori_loop(0, steps, body, z)


def _next_correction(H, z, index):
    """``‖δz[index]‖`` of the next Newton step from ``z``: the error estimate of a root.

    The residual alone does not show convergence where ``H`` is small everywhere (states of
    size 1e-30, where every ``g`` is below any absolute ``tol``); the correction, measured
    against the size of the point, does.
    """
    return jnp.linalg.norm(_equilibrated_solve(jax.jacfwd(H)(z), H(z))[index])


def _newton_converged(res, correction, tol, xb, q, x_guess, q_guess):
    """Whether Newton reached ``tol``: the residual is below ``tol`` and the next correction
    of ``(x, p)`` is below ``tol`` times the larger of ``‖(x, p)‖`` at the point and at the
    guess (the guess's, for a point at the origin).

    Where ``x``, ``p`` and ``g`` are all tiny (states of size 1e-30) the residual is below
    ``tol`` from the start, and only the correction tells a stalled Newton from a converged
    one (a branch point's tangents, a Hopf point 1e-5 off, both seen reported converged).
    """
    size = max(float(np.linalg.norm(np.append(np.ravel(xb), q))),
               float(np.linalg.norm(np.append(np.ravel(x_guess), q_guess))))
    return (res < tol) & (correction <= tol * size)


def _locate(R, y0, q0, shift, steps):
    """Newton on ``R = 0, (∂R/∂y + shift I) v = 0, c·v = 1`` for ``(y, v, q)``."""
    n = y0.shape[0]
    J = jax.jacfwd(R)(y0, q0) + shift * jnp.eye(n, dtype=y0.dtype)
    _, _, vt = jnp.linalg.svd(J)
    c = vt[-1]
    E = _singular_system(R, n, c, shift)

    def H(z):
        return E(z[:-1], z[-1])

    z = _newton(H, jnp.concatenate([y0, c, q0[None]]), steps)
    correction = _next_correction(H, z, jnp.r_[0:n, 2 * n])
    return z[:n], z[n:2 * n], z[-1], jnp.linalg.norm(H(z)), correction


def _arclength(R, y0, q0, *, direction, ds, ds_min, ds_max, num_steps, q_lo, q_hi,
               newton_steps, tol, observe=None, t_start=None):
    """Pseudo-arclength continuation of ``R(y, q) = 0`` with step halving on failure.

    A ``lax.while_loop`` that stops as soon as the branch ends (it leaves ``[q_lo, q_hi]``
    or the step falls below ``ds_min``), writing each attempt into rows of preallocated
    buffers: the rows after the end stay NaN (``accepted`` False), and no work is done
    for them. ``observe(z, t)`` adds per-row outputs (eigenvalues, test functions)
    computed for the rows that ran only.

    A step is also refused (and halved) when the tangent turns by more than
    ``arccos(_MIN_TANGENT_COS)``: at a branch point a long step can land on the other
    branch, a corner that no test function sees (Allgower & Georg, *Introduction to
    Numerical Continuation Methods* (2003), §6.1, control the step by this angle).

    ``t_start``: start at ``(y0, q0)`` as given (no Newton at fixed ``q0``) with this
    tangent, for a start where the tangent is not defined by ``R`` (a branch point).
    """
    m = y0.shape[0]
    e_last = jnp.zeros(m + 1, y0.dtype).at[m].set(1.0)

    def tangent(z, t_prev):
        A = jnp.concatenate([_full_jacobian(R, z, m), t_prev[None]], axis=0)
        t = jnp.linalg.solve(A, e_last)
        return t / jnp.linalg.norm(t)

    if t_start is None:
        y0 = _newton(lambda y: R(y, q0), y0, newton_steps)
        z0 = jnp.concatenate([y0, q0[None]])
        t0 = tangent(z0, direction * e_last)
    else:
        z0 = jnp.concatenate([y0, q0[None]])
        t0 = t_start / jnp.linalg.norm(t_start)

    def step(carry):
        z, t, h, alive = carry
        zp = z + h * t

        def H(zc):
            return jnp.concatenate([R(zc[:m], zc[m]), (t @ (zc - zp))[None]])

        zn = _newton(H, zp, newton_steps)
        res = jnp.linalg.norm(R(zn[:m], zn[m]))
        tn = tangent(zn, t)
        ok = (jnp.isfinite(res) & (res < tol) & jnp.all(jnp.isfinite(zn))
              & (tn @ t > _MIN_TANGENT_COS))
        inside = (zn[m] >= q_lo) & (zn[m] <= q_hi)
        accepted = alive & ok & inside
        h_next = jnp.where(ok, jnp.minimum(1.25 * h, ds_max), 0.5 * h)
        alive_next = alive & (~ok | inside) & (h_next >= ds_min)
        carry = (jnp.where(accepted, zn, z), jnp.where(accepted, tn, t), h_next, alive_next)
        return carry, (zn, tn, accepted, res)

    def with_observed(row):
        return row if observe is None else (*row, observe(row[0], row[1]))

    res0 = jnp.linalg.norm(R(y0, q0))
    row0 = with_observed((z0, t0, res0 < tol, res0))
    # Row i holds attempt i (row 0 the start); rows after the end keep NaN / False.
    buffers = jax.tree_util.tree_map(
        lambda r: jnp.full((num_steps + 1, *r.shape), False if r.dtype == jnp.bool_ else jnp.nan,
                           r.dtype).at[0].set(r), row0)

    def cond(state):
        i, (_, _, _, alive), _ = state
        return (i <= num_steps) & alive

    def body(state):
        i, carry, buffers = state
        carry, row = step(carry)
        buffers = jax.tree_util.tree_map(lambda b, r: b.at[i].set(r), buffers,
                                         with_observed(row))
        return i + 1, carry, buffers

    h0 = jnp.asarray(ds, y0.dtype)
    _, _, buffers = jax.lax.while_loop(
        cond, body, (jnp.asarray(1), (z0, t0, h0, jnp.asarray(True)), buffers))
    return buffers


_STATIC = ("f", "kind", "param", "num_steps", "newton_steps")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _continue(f, x0, params, p_lo, p_hi, direction, ds, ds_min, ds_max, tol, t_start=None, *,
              kind, param, num_steps, newton_steps):
    """The branch's rows: ``x``, ``p``, accepted, eigenvalues, ``dp/ds``, residual, and the
    branch-point test function: the sign of ``det [[∂g/∂x, ∂g/∂p], [tᵀ]]``."""
    shape = x0.shape
    R = _fixed_point_system(f, kind, param, params, shape)
    q0 = jnp.asarray(get_param(params, param), x0.dtype)
    n = int(np.prod(shape, dtype=int))

    def observe(z, t):
        ev = eigenvalues(f, jnp.reshape(z[:n], shape), set_param(params, param, z[n]))
        bordered = jnp.concatenate([_full_jacobian(R, z, n), t[None]], axis=0)
        return ev, jnp.linalg.slogdet(bordered)[0]

    zs, ts, acc, res, (ev, bp_test) = _arclength(
        R, jnp.reshape(x0, (-1,)), q0, direction=direction, ds=ds, ds_min=ds_min,
        ds_max=ds_max, num_steps=num_steps, q_lo=p_lo, q_hi=p_hi,
        newton_steps=newton_steps, tol=tol, observe=observe, t_start=t_start)
    xs = jnp.reshape(zs[:, :n], (zs.shape[0], *shape))
    ps = zs[:, n]
    return xs, ps, acc, ev, ts[:, n], res, bp_test


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "newton_steps", "bifurcation"))
def _locate_fixed(f, x, params, *, kind, param, newton_steps, bifurcation):
    shape = x.shape
    R = _fixed_point_system(f, kind, param, params, shape)
    q0 = jnp.asarray(get_param(params, param), x.dtype)
    shift = 0.0 if bifurcation == "fold" else 2.0
    y, v, q, res, correction = _locate(R, jnp.reshape(x, (-1,)), q0, shift, newton_steps)
    xb = jnp.reshape(y, shape)
    return xb, q, eigenvalues(f, xb, set_param(params, param, q)), v, res, correction


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "newton_steps"))
def _locate_branch_point(f, x, params, *, kind, param, newton_steps):
    """Newton on ``g + βψ = 0, (∂g/∂x)ᵀψ = 0, ψ·∂g/∂p = 0, ψ·ψ = 1`` for ``(x, p, β, ψ)``,
    then the two branch tangents from the algebraic branching equation.

    The system (Moore 1980; the branch-point locator of MATCONT, Dhooge et al. 2003) is
    square and regular at a simple branch point, where ``β = 0``: the unfolding ``βψ`` makes
    a point that is not generic in one parameter an isolated root. ``ψ`` starts as the left
    singular vector of ``∂g/∂x`` at the guess with the smallest singular value. At the root,
    ``[∂g/∂x ∂g/∂p]`` has the two null vectors ``φ_1, φ_2``; a branch tangent
    ``a φ_1 + b φ_2`` solves ``c_11 a² + 2 c_12 ab + c_22 b² = 0`` with
    ``c_ij = ψ·D²g[φ_i, φ_j]`` (Kuznetsov 2004, §10.2.4; Allgower & Georg 2003, §8.3).
    Returns the point, the residual of the unperturbed conditions (``β`` left out), the
    discriminant ``c_12² - c_11 c_22`` and its scale, the tangents ``(2, n+1)`` in
    ``(vec x, p)`` ordered by decreasing ``|dp/ds|`` (``dp/ds >= 0``), and the right null
    vector of ``∂g/∂x``.
    """
    shape = x.shape
    dt = x.dtype
    n = int(np.prod(shape, dtype=int))
    R = _fixed_point_system(f, kind, param, params, shape)
    y0 = jnp.reshape(x, (-1,))
    q0 = jnp.asarray(get_param(params, param), dt)
    u, _, _ = jnp.linalg.svd(jax.jacfwd(R)(y0, q0))

    def conditions(y, q, psi):
        r, vjp = jax.vjp(R, y, q)
        gy, gq = vjp(psi)
        return r, jnp.concatenate([gy, gq[None], (psi @ psi - 1.0)[None]])

    def H(Z):
        y, q, beta, psi = Z[:n], Z[n], Z[n + 1], Z[n + 2:]
        r, rest = conditions(y, q, psi)
        return jnp.concatenate([r + beta * psi, rest])

    Z = _newton(H, jnp.concatenate([y0, q0[None], jnp.zeros((1,), dt), u[:, -1]]),
                newton_steps)
    # The next Newton correction of (x, p): the error estimate of the point. The residual
    # alone does not tell convergence at small scales, where g itself is below tol.
    correction = _next_correction(H, Z, jnp.arange(n + 1))
    y, q, psi = Z[:n], Z[n], Z[n + 2:]
    r, rest = conditions(y, q, psi)
    res = jnp.linalg.norm(jnp.concatenate([r, rest]))
    z = jnp.concatenate([y, q[None]])
    _, _, vt = jnp.linalg.svd(_full_jacobian(R, z, n))
    phi = vt[-2:]

    def Rz(zz):
        return R(zz[:n], zz[n])

    def d2(a, b):
        return psi @ jax.jvp(lambda zz: jax.jvp(Rz, (zz,), (a,))[1], (z,), (b,))[1]

    a, b, c = d2(phi[0], phi[0]), d2(phi[0], phi[1]), d2(phi[1], phi[1])
    disc = b * b - a * c
    scale = a * a + 2 * b * b + c * c
    # Q(θ) = a cos²θ + 2b cosθ sinθ + c sin²θ = (a+c)/2 + ρ cos(2θ - θ0): two roots θ.
    rho = jnp.sqrt(0.25 * (a - c) ** 2 + b * b)
    theta0 = jnp.arctan2(b, 0.5 * (a - c))
    half = jnp.arccos(jnp.clip(-0.5 * (a + c) / rho, -1.0, 1.0))
    theta = 0.5 * (theta0 + jnp.stack([half, -half]))
    tangents = jnp.outer(jnp.cos(theta), phi[0]) + jnp.outer(jnp.sin(theta), phi[1])
    tangents = jnp.where(tangents[:, n:] < 0, -tangents, tangents)
    tangents = tangents[jnp.argsort(-jnp.abs(tangents[:, n]))]
    _, _, vx = jnp.linalg.svd(jax.jacfwd(R)(y, q))
    xb = jnp.reshape(y, shape)
    ev = eigenvalues(f, xb, set_param(params, param, q))
    return xb, q, ev, vx[-1], res, disc, scale, tangents, correction


def _branch_point(f, kind, x0, params, param, newton_steps, tol):
    """``locate_bifurcation(..., bifurcation="branch_point")`` on checked arguments."""
    xb, q, ev, v, res, disc, scale, tangents, correction = _locate_branch_point(
        f, x0, params, kind=kind, param=param, newton_steps=newton_steps)
    eps = float(np.finfo(x0.dtype).eps)
    # Newton converged, and two distinct real branch directions (not an isolated point,
    # not a tangency).
    ok = (_newton_converged(res, correction, tol, xb, q, x0, get_param(params, param))
          & (disc > np.sqrt(eps) * scale) & jnp.all(jnp.isfinite(tangents)))
    # A pitchfork: one branch turns back in p at the point (dp/ds = 0 on its tangent).
    t_p = np.abs(np.asarray(tangents[:, -1]))
    branch_type = "pitchfork" if t_p.min() < 100 * tol else "transcritical"
    nan = jnp.asarray(jnp.nan, x0.dtype)
    return BifurcationPoint("branch_point", xb, q, ev, v, ok, res, nan, nan, branch_type,
                            tangents)


def _complex_form(D, args):
    """A real multilinear form ``D`` applied to complex vectors, by expanding each argument
    into its real and imaginary parts: ``2^k`` real evaluations for ``k`` arguments, one
    ``vmap`` of ``D`` (traced once)."""
    picks = np.array(list(itertools.product((0, 1), repeat=len(args))))
    parts = [jnp.stack([jnp.real(a), jnp.imag(a)])[picks[:, m]] for m, a in enumerate(args)]
    terms = jax.vmap(D)(*parts)
    k = picks.sum(axis=1) % 4  # the factor i^k: 1, i, -1, -i
    re = np.select([k == 0, k == 2], [1.0, -1.0], 0.0).astype(terms.dtype)
    im = np.select([k == 1, k == 3], [1.0, -1.0], 0.0).astype(terms.dtype)
    return jax.lax.complex(re @ terms, im @ terms)


def _hopf_coefficient(F, y, w, q, kind):
    """The first Lyapunov coefficient at a Hopf (flow) or Neimark-Sacker (map) point.

    ``F`` is the (flattened) ``f`` at the critical parameter, ``y`` the fixed point,
    ``w`` the frequency ``ω`` or angle ``θ`` and ``q`` the eigenvector with ``‖q‖ = 1``.
    ``B``, ``C`` are the second and third derivatives of ``F`` as multilinear forms
    (nested ``jax.jvp``); ``p`` solves ``Aᵀ p = λ̄ p`` with ``⟨p, q⟩ = p̄ᵀ q = 1``. Flow
    (Kuznetsov 2004, eq. (3.20)): ``h11 = -A⁻¹ B(q, q̄)``, ``h20 = (2iω - A)⁻¹ B(q, q)``,
    ``c1 = ⟨p, C(q, q, q̄) + 2 B(q, h11) + B(q̄, h20)⟩ / 2``, ``l1 = Re c1 / ω``. Map
    (§4.7): ``h11 = (I - A)⁻¹ B(q, q̄)``, ``h20 = (e^{2iθ} - A)⁻¹ B(q, q)``, the same
    ``c1``, ``d = Re(e^{-iθ} c1)``.
    """
    n = y.shape[0]
    cdt = q.dtype
    A = jax.jacfwd(F)(y)
    eye = jnp.eye(n, dtype=cdt)

    def d1(a):
        return lambda x: jax.jvp(F, (x,), (a,))[1]

    def d2(a, b):
        return jax.jvp(d1(a), (y,), (b,))[1]

    def d3(a, b, c):
        return jax.jvp(lambda x: jax.jvp(d1(a), (x,), (b,))[1], (y,), (c,))[1]

    def B(u, v):
        return _complex_form(d2, (u, v))

    def C(u, v, z):
        return _complex_form(d3, (u, v, z))

    lam = (jax.lax.complex(jnp.zeros_like(w), w) if kind == "flow"
           else jax.lax.complex(jnp.cos(w), jnp.sin(w)))
    Ac = A.astype(cdt)
    _, _, vh = jnp.linalg.svd(Ac.T - jnp.conj(lam) * eye)
    p = jnp.conj(vh[-1])
    p = p / jnp.conj(jnp.vdot(p, q))
    qb = jnp.conj(q)
    if kind == "flow":
        h11 = -jnp.linalg.solve(Ac, B(q, qb))
        h20 = jnp.linalg.solve(2 * lam * eye - Ac, B(q, q))
    else:
        h11 = jnp.linalg.solve(eye - Ac, B(q, qb))
        h20 = jnp.linalg.solve(lam * lam * eye - Ac, B(q, q))
    c1 = 0.5 * jnp.vdot(p, C(q, q, qb) + 2 * B(q, h11) + B(qb, h20))
    if kind == "flow":
        return jnp.real(c1) / w
    return jnp.real(jnp.conj(lam) * c1)


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "newton_steps"))
def _locate_hopf(f, x, params, *, kind, param, newton_steps):
    """Newton on ``g = 0, A q = λ q, ⟨c, q⟩ = 1`` in real form for ``(x, q_r, q_i, w, p)``.

    ``λ = iω`` (flow) or ``e^{iθ}`` (map) with ``w`` = ω or θ; ``c`` is the eigenvector of
    the guess's pair nearest the imaginary axis (unit circle), with ``Im λ > 0``.
    """
    shape = x.shape
    dt = x.dtype
    n = int(np.prod(shape, dtype=int))
    g = residual(f, kind)

    def F(y, q):
        return jnp.reshape(f(jnp.reshape(y, shape), set_param(params, param, q)), (-1,))

    def G(y, q):
        return jnp.reshape(g(jnp.reshape(y, shape), set_param(params, param, q)), (-1,))

    y0 = jnp.reshape(x, (-1,))
    q0 = jnp.asarray(get_param(params, param), dt)
    lam, vecs = jnp.linalg.eig(jax.jacfwd(F)(y0, q0))
    distance = jnp.abs(jnp.real(lam)) if kind == "flow" else jnp.abs(jnp.abs(lam) - 1)
    k = jnp.argmin(jnp.where(jnp.imag(lam) > 0, distance, jnp.inf))
    c = vecs[:, k] / jnp.linalg.norm(vecs[:, k]).astype(vecs.dtype)
    w0 = jnp.imag(lam[k]) if kind == "flow" else jnp.angle(lam[k])
    cr, ci = jnp.real(c).astype(dt), jnp.imag(c).astype(dt)

    def H(Z):
        y, qr, qi, w, q = Z[:n], Z[n:2 * n], Z[2 * n:3 * n], Z[3 * n], Z[3 * n + 1]
        Aqr = jax.jvp(lambda yy: F(yy, q), (y,), (qr,))[1]
        Aqi = jax.jvp(lambda yy: F(yy, q), (y,), (qi,))[1]
        if kind == "flow":
            er, ei = Aqr + w * qi, Aqi - w * qr
        else:
            cs, sn = jnp.cos(w), jnp.sin(w)
            er, ei = Aqr - (cs * qr - sn * qi), Aqi - (sn * qr + cs * qi)
        norm = jnp.stack([cr @ qr + ci @ qi - 1.0, cr @ qi - ci @ qr])
        return jnp.concatenate([G(y, q), er, ei, norm])

    Z = _newton(H, jnp.concatenate([y0, cr, ci, w0.astype(dt)[None], q0[None]]), newton_steps)
    res = jnp.linalg.norm(H(Z))
    correction = _next_correction(H, Z, jnp.r_[0:n, 3 * n + 1])
    y, qr, qi, w, q = Z[:n], Z[n:2 * n], Z[2 * n:3 * n], Z[3 * n], Z[3 * n + 1]
    if kind == "map":
        w = jnp.arctan2(jnp.sin(w), jnp.cos(w))
    # (q̄, -w) solves the same equations: report the pair member with w > 0.
    qi = jnp.where(w < 0, -qi, qi)
    w = jnp.abs(w)
    qv = jax.lax.complex(qr, qi)
    qv = qv / jnp.linalg.norm(qv).astype(qv.dtype)
    l1 = _hopf_coefficient(lambda yy: F(yy, q), y, w, qv, kind)
    xb = jnp.reshape(y, shape)
    ev = eigenvalues(f, xb, set_param(params, param, q))
    return xb, q, ev, qv, res, w, l1.astype(dt), correction


def _check_common(f, kind, x0, params, param, *, name="x0"):
    """``(f_flat, x0_flat, unravel, p0)``: the state checked and flattened (``unravel`` for
    ``restore_state``; ``None`` for a scalar or 1-D state), ``f`` checked on it."""
    check_system(f, kind)
    x0, flat, unravel = check_state(name, x0)
    check_param(params, param)
    check_params_finite(params)
    check_output(f, x0, params, name=name)
    p0 = get_param(params, param)
    if np.ndim(p0) != 0:
        raise ValueError(f"`{param_label(param)}` must be a scalar to be continued, got shape "
                         f"{np.shape(p0)}")
    return flattened(f, unravel), flat, unravel, float(p0)


def _check_steps(direction, ds, ds_min, ds_max, num_steps, newton_steps):
    """The step controls shared by ``continue_branch`` and ``fold_curve``."""
    if isinstance(direction, bool) or direction not in (1, -1):
        raise ValueError(f"`direction` must be 1 or -1, got {direction!r}")
    ds = check_positive_float("ds", ds)
    ds_min = ds / 1000 if ds_min is None else check_positive_float("ds_min", ds_min)
    ds_max = 10 * ds if ds_max is None else check_positive_float("ds_max", ds_max)
    if ds_min > ds_max:
        raise ValueError(f"`ds_min`={ds_min} must be <= `ds_max`={ds_max}")
    if not ds_min <= ds <= ds_max:
        raise ValueError(
            f"`ds`={ds} must lie in [`ds_min`, `ds_max`] = [{ds_min}, {ds_max}]"
        )
    num_steps = check_positive_int("num_steps", num_steps)
    if num_steps > MAX_CONTINUATION_STEPS:
        raise ValueError(
            f"`num_steps` must be <= {MAX_CONTINUATION_STEPS} (the result holds num_steps + 1 "
            f"rows, allocated up front), got {num_steps}; continue a longer branch by "
            "calling again from its last valid point"
        )
    newton_steps = check_positive_int("newton_steps", newton_steps)
    return ds, ds_min, ds_max, num_steps, newton_steps


def locate_bifurcation(
    f: Callable,
    x_guess: Any,
    *,
    params: Any,
    param: str | tuple,
    kind: str | None = None,
    bifurcation: str = "fold",
    newton_steps: int = 30,
    tol: float | None = None,
) -> BifurcationPoint:
    """Locate a fold, flip, Hopf or branch point near ``(x_guess, params[param])`` by Newton.

    Solves ``g(x, p) = 0, M(x, p) v = 0, c·v = 1`` for ``(x, v, p)``, with ``M = ∂g/∂x``
    for a fold (μ = +1 for a map, λ = 0 for a flow) and ``M = ∂f/∂x + I`` for a flip of a
    map (μ = -1); ``c`` is the null vector of ``M`` at the guess (Kuznetsov 2004, §10.2).

    A Hopf point (``bifurcation="hopf"``; for a map the Neimark-Sacker point) solves
    ``g(x, p) = 0, A q = λ q, ⟨c, q⟩ = 1`` with ``A = ∂f/∂x`` and ``λ = iω`` (flow) or
    ``e^{iθ}`` (map), split into real and imaginary parts: ``3n + 2`` real equations in
    ``(x, Re q, Im q, ω or θ, p)`` (Kuznetsov 2004, §10.2.2); ``c`` is the eigenvector at
    the guess of the complex pair nearest the imaginary axis (unit circle). The result
    carries ``frequency`` (ω or θ) and ``first_lyapunov_coefficient``; the state must have
    at least two components.

    A branch point (``bifurcation="branch_point"``: two branches of fixed points cross,
    ``[∂g/∂x ∂g/∂p]`` loses rank) solves ``g + βψ = 0, (∂g/∂x)ᵀψ = 0, ψ·∂g/∂p = 0,
    ψ·ψ = 1`` for ``(x, p, β, ψ)``, square and regular at a simple branch point, where
    ``β = 0`` (Moore 1980; Kuznetsov 2004, §10.2.4). The two branch tangents, roots of the
    algebraic branching equation ``ψ·D²g[t, t] = 0`` on the null space of
    ``[∂g/∂x ∂g/∂p]``, give ``branch_tangents`` and ``branch_type``.

    Arguments:
        f: a map as a step ``f(x, u, params)`` (``jaxgrad.autonomous(g)`` for ``g(x, p)``;
            ``u`` is a ``(0,)`` array), a flow as ``jaxgrad.vector_field(F)``, or
            (deprecated) ``f(x, p)`` with ``kind``; the state a scalar, an array of any
            shape or a pytree of arrays (see ``jaxgrad.analysis._system``).
        x_guess: a point near the bifurcation; ``params[param]`` is the guess for ``p``.
        params: parameters (a dict, NamedTuple or dataclass).
        param: the parameter solved for: a field name of ``params`` or a path of keys into
            it (``("cell", "b")``).
        kind: deprecated, for ``f(x, p)`` only: ``"map"`` or ``"flow"`` (default ``"flow"``).
        bifurcation: ``"fold"``, ``"flip"`` (maps only), ``"hopf"`` (state of at least
            two components; Neimark-Sacker for a map) or ``"branch_point"``.
        newton_steps: Newton iterations; ``tol``: residual for ``converged`` (``sqrt(eps)``).

    Returns:
        ``BifurcationPoint`` (``frequency`` and ``first_lyapunov_coefficient`` NaN but for
        a Hopf point; ``branch_type`` and ``branch_tangents`` set for a branch point).

    Example:
        >>> flow = lambda x, p: jaxgrad.models.doya_vector_field(x, 0.0, p)
        >>> bp = locate_bifurcation(flow, 0.3, params=jaxgrad.DoyaParams(5.0, -2.3), param="b")
        >>> round(float(bp.p), 3)   # ln(x/(1-x)) - 1/(1-x) at x = (1 - sqrt(1 - 4/5))/2
        -2.344

        A Hopf point of ``ẋ = -x + g [[1, -1], [1, 1]] tanh(x)``: ``λ = g - 1 ± ig``, so
        ``g = 1``, ``ω = 1``, and ``l_1 = -1/2`` (supercritical):

        >>> rate = jaxgrad.vector_field(lambda x, u, p: -x + p["g"] * jnp.stack(
        ...     [jnp.tanh(x[0]) - jnp.tanh(x[1]), jnp.tanh(x[0]) + jnp.tanh(x[1])]))
        >>> bp = locate_bifurcation(rate, jnp.array([0.01, 0.0]), params={"g": 0.9},
        ...                         param="g", bifurcation="hopf")
        >>> [round(float(v), 3) for v in (bp.p, bp.frequency, bp.first_lyapunov_coefficient)]
        [1.0, 1.0, -0.5]

        The logistic map's branches ``x = 0`` and ``x = 1 - 1/r`` cross at ``r = 1``:

        >>> logistic = jaxgrad.autonomous(lambda x, p: p["r"] * x * (1 - x))
        >>> bp = locate_bifurcation(logistic, 0.02, params={"r": 1.05}, param="r",
        ...                         bifurcation="branch_point")
        >>> bp.branch_type, round(float(bp.p), 4), bool(bp.converged)
        ('transcritical', 1.0, True)
    """
    f, kind = as_system(f, kind, "flow")
    f, x0, unravel, _ = _check_common(f, kind, x_guess, params, param, name="x_guess")
    check_choice("bifurcation", bifurcation, BIFURCATIONS)
    if bifurcation == "flip" and kind != "map":
        raise ValueError("`bifurcation`='flip' (μ = -1) exists only for kind='map'")
    if bifurcation == "hopf" and x0.size < 2:
        raise ValueError("`bifurcation`='hopf' needs a complex pair of eigenvalues: "
                         f"`x_guess` must have at least 2 components, got shape {x0.shape}")
    newton_steps = check_positive_int("newton_steps", newton_steps)
    tol = default_tol(x0.dtype) if tol is None else check_positive_float("tol", tol)
    if bifurcation == "branch_point":
        point = _branch_point(f, kind, x0, params, param, newton_steps, tol)
        return point._replace(x=restore_state(unravel, point.x))
    if bifurcation == "hopf":
        xb, q, ev, v, res, w, l1, correction = _locate_hopf(
            f, x0, params, kind=kind, param=param, newton_steps=newton_steps)
        # A root with w ≈ 0 is a fold (a Bogdanov-Takens point), one with θ ≈ π (map) a
        # flip with a double -1: not Hopf points.
        margin = 100 * tol
        proper = (w > margin) & ((w < np.pi - margin) if kind == "map" else True)
        ok = (_newton_converged(res, correction, tol, xb, q, x0, get_param(params, param))
              & proper & jnp.isfinite(l1))
        return BifurcationPoint("hopf", restore_state(unravel, xb), q, ev, v, ok, res, w, l1)
    xb, q, ev, v, res, correction = _locate_fixed(
        f, x0, params, kind=kind, param=param, newton_steps=newton_steps,
        bifurcation=bifurcation)
    ok = _newton_converged(res, correction, tol, xb, q, x0, get_param(params, param))
    nan = jnp.asarray(jnp.nan, x0.dtype)
    return BifurcationPoint(bifurcation, restore_state(unravel, xb), q, ev, v, ok, res, nan,
                            nan)


def continue_branch(
    f: Callable,
    x0: Any,
    *,
    params: Any,
    param: str | tuple,
    p_range: tuple[float, float],
    kind: str | None = None,
    direction: int = 1,
    ds: float = 0.01,
    ds_min: float | None = None,
    ds_max: float | None = None,
    num_steps: int = 500,
    newton_steps: int = 8,
    tol: float | None = None,
    locate: bool = True,
) -> Branch:
    """Follow a fixed-point branch in the parameter ``param`` by pseudo-arclength continuation.

    Starts from ``x0`` (corrected by Newton) at ``p = params[param]`` and moves in the
    direction of increasing (``direction=1``) or decreasing (``-1``) ``p``. The step is
    halved when the corrector fails and grown by 1.25 (up to ``ds_max``) when it succeeds;
    the branch ends when it leaves ``p_range`` or the step falls below ``ds_min``; a step
    whose tangent turns by more than about 26° is halved too, so that the branch does not
    jump onto another one where two cross. Then (``locate=True``) these are located with
    ``locate_bifurcation``:

    - branch points (kind ``"branch_point"``, ``branch_type`` ``"transcritical"`` or
      ``"pitchfork"``): a real eigenvalue through μ = +1 (map) / λ = 0 (flow) while the
      branch goes on, where a second branch crosses; sign change of the test function
      ``det [[∂g/∂x, ∂g/∂p], [tᵀ]]`` (``t`` the oriented tangent), which changes sign at a
      simple branch point but not at a fold (Allgower & Georg 2003, §8.1).
      ``switch_branch`` follows the other branch;
    - folds (kind ``"fold"``): sign change of ``dp/ds`` with no branch point in the same
      step (a pitchfork's bifurcating branch also turns back in ``p``: a branch point);
    - for maps flips (kind ``"flip"``): sign change of ``det(∂f/∂x + I)``;
    - for a state of two or more components Hopf points (kind ``"hopf"``; for a map the
      Neimark-Sacker point, a complex pair through the unit circle): sign change of the
      bialternate product ``∏_{i<j} (λ_i + λ_j)``, or ``∏_{i<j} (μ_i μ_j - 1)`` for a map,
      made by a complex pair; a neutral saddle, a real pair ``λ, -λ`` or ``μ, 1/μ``, is not
      reported.

    Arguments:
        f: a map as a step ``f(x, u, params)`` (``jaxgrad.autonomous(g)`` for ``g(x, p)``;
            ``u`` is a ``(0,)`` array), a flow as ``jaxgrad.vector_field(F)``, or
            (deprecated) ``f(x, p)`` with ``kind``; the state a scalar, an array of any
            shape or a pytree of arrays (see ``jaxgrad.analysis._system``).
        x0: a fixed point (or a guess) at ``params[param]``.
        params: parameters (dict, NamedTuple or dataclass); ``param`` names the one varied.
        p_range: ``(lo, hi)``, containing ``params[param]``.
        ds: initial arclength step in ``(x, p)``; ``ds_min`` (``ds/1000``), ``ds_max``
            (``10 ds``) bound it (``ds_min <= ds <= ds_max``).
        num_steps: the most predictor-corrector steps (static, at most
            ``MAX_CONTINUATION_STEPS``); the loop stops early when the branch ends.
        newton_steps: corrector iterations; ``tol``: residual ``‖g‖`` accepted
            (``sqrt(eps)``).

    Returns:
        ``Branch`` with ``num_steps + 1`` rows and the located bifurcations (each a
        ``BifurcationPoint`` of kind ``"fold"``, ``"flip"``, ``"hopf"`` or
        ``"branch_point"``).

    Example:
        >>> flow = lambda x, p: jaxgrad.models.doya_vector_field(x, 0.0, p)
        >>> br = continue_branch(flow, 0.05, params=jaxgrad.DoyaParams(5.0, -3.0), param="b",
        ...                      p_range=(-3.0, -2.0))
        >>> [(bp.kind, round(float(bp.p), 3)) for bp in br.bifurcations]
        [('fold', -2.344), ('fold', -2.656)]
    """
    f, kind = as_system(f, kind, "flow")
    f, x0, unravel, p0 = _check_common(f, kind, x0, params, param)
    lo, hi = check_interval("p_range", p_range)
    if not lo <= p0 <= hi:
        raise ValueError(f"`{param_label(param)}`={p0} must lie inside `p_range` ({lo}, {hi})")
    ds, ds_min, ds_max, num_steps, newton_steps = _check_steps(
        direction, ds, ds_min, ds_max, num_steps, newton_steps)
    tol = default_tol(x0.dtype) if tol is None else check_positive_float("tol", tol)
    dt = x0.dtype
    xs, ps, valid, ev, tp, res, bp_test = _continue(
        f, x0, params, jnp.asarray(lo, dt), jnp.asarray(hi, dt), jnp.asarray(direction, dt),
        jnp.asarray(ds, dt), jnp.asarray(ds_min, dt), jnp.asarray(ds_max, dt),
        jnp.asarray(tol, dt), kind=kind, param=param, num_steps=num_steps,
        newton_steps=newton_steps)
    return _branch_result(f, kind, params, param, tol, locate, xs, ps, valid, ev, tp, res,
                          bp_test, unravel)


def _branch_result(f, kind, params, param, tol, locate, xs, ps, valid, ev, tp, res, bp_test,
                   unravel):
    """The ``Branch`` of continued rows, with its bifurcations located (``locate``).

    Between consecutive valid rows: a sign change of the branch-point test function
    ``det [[∂g/∂x, ∂g/∂p], [tᵀ]]`` (``bp_test``, its sign; rows where it is 0 are stepped
    over) is a branch point, and it changes sign at a simple one only; a sign change of
    ``dp/ds`` is a fold unless a branch point lies in the same bracket (a pitchfork's
    bifurcating branch turns back in ``p`` at the branch point; Allgower & Georg 2003,
    §8.1; Kuznetsov 2004, §10.2.4); for maps a sign change of ``det(∂f/∂x + I)`` is a flip;
    a complex pair through the imaginary axis (unit circle) a Hopf point.

    ``f`` and the rows ``xs`` are on flat states; the states of the result are restored
    with ``unravel`` (``restore_state``).
    """
    dt = xs.dtype
    stability, _ = classify(ev, kind)
    stability = jnp.where(jnp.all(jnp.isfinite(ev), axis=-1), stability, -1)
    found: list[BifurcationPoint] = []
    if locate:
        idx = np.flatnonzero(np.asarray(valid))
        tp_h = np.asarray(tp)
        ev_h = np.asarray(ev)
        test_h = np.asarray(bp_test)
        flip_test = np.real(np.prod(ev_h + 1.0, axis=-1))
        signed = idx[test_h[idx] != 0]
        brackets = [(i, j, "branch_point") for i, j in zip(signed[:-1], signed[1:], strict=False)
                    if test_h[i] * test_h[j] < 0]
        spans = [(i, j) for i, j, _ in brackets]
        for i, j in zip(idx[:-1], idx[1:], strict=False):
            inside_bp = any(a <= i and j <= b for a, b in spans)
            if np.sign(tp_h[i]) * np.sign(tp_h[j]) < 0 and not inside_bp:
                brackets.append((i, j, "fold"))
            if kind == "map" and np.sign(flip_test[i]) * np.sign(flip_test[j]) < 0:
                brackets.append((i, j, "flip"))
        brackets += [(i, j, "hopf") for i, j in _hopf_brackets(ev_h, idx, kind)]
        for i, j, b in sorted(brackets, key=lambda br: br[0]):
            p_mid = set_param(params, param, jnp.asarray(0.5 * (ps[i] + ps[j]), dt))
            point = locate_bifurcation(
                f, 0.5 * (xs[i] + xs[j]), params=p_mid, param=param, kind=kind,
                bifurcation=b, tol=tol)
            if b == "branch_point":
                # The followed branch first: the tangent nearer the bracket's secant.
                secant = jnp.concatenate([jnp.reshape(xs[j] - xs[i], (-1,)),
                                          (ps[j] - ps[i])[None]])
                t = point.branch_tangents
                if abs(float(t[1] @ secant)) > abs(float(t[0] @ secant)):
                    point = point._replace(branch_tangents=t[::-1])
            found.append(point._replace(x=restore_state(unravel, point.x)))
    return Branch(restore_state(unravel, xs), ps, valid, ev, stability, tp, res, tuple(found))


def switch_branch(
    f: Callable,
    point: BifurcationPoint,
    *,
    params: Any,
    param: str | tuple,
    p_range: tuple[float, float],
    kind: str | None = None,
    ds: float = 0.01,
    ds_min: float | None = None,
    ds_max: float | None = None,
    num_steps: int = 500,
    newton_steps: int = 8,
    tol: float | None = None,
    locate: bool = True,
) -> Branch:
    """Follow the other branch through a branch point, in both directions.

    From a located branch point ``z* = (x*, p*)`` (``point``, kind ``"branch_point"``, from
    ``continue_branch`` or ``locate_bifurcation``), pseudo-arclength continuation as in
    ``continue_branch`` starts along ``±t``, ``t = point.branch_tangents[1]``: the root of
    the algebraic branching equation that is not the branch ``point`` was found on
    (Allgower & Georg 2003, §8.3; Kuznetsov 2004, §10.2.4). The first step is a predictor
    ``z* ± Δs t`` and the usual corrector; a step that would land back on the first branch
    turns the tangent too far and is refused (halved). To follow the first branch instead,
    pass ``point._replace(branch_tangents=point.branch_tangents[::-1])``.

    Arguments:
        f, params, param, kind: as in ``continue_branch``; ``params[param]`` is replaced
            by ``point.p``.
        point: a converged ``BifurcationPoint`` of kind ``"branch_point"`` of ``f``.
        p_range: ``(lo, hi)``, containing ``point.p``; each direction ends where the
            branch leaves it.
        ds, ds_min, ds_max, num_steps, newton_steps, tol, locate: as in ``continue_branch``
            (``num_steps`` in each direction).

    Returns:
        ``Branch`` with ``2 num_steps + 1`` rows, along the new branch from one end to
        the other: the rows of the direction ``-t`` in reverse (its end first), the branch
        point at row ``num_steps`` (``tangent_p`` there is ``dp/ds`` of ``t``), then the
        direction ``+t``. ``bifurcations`` lists those of the new branch, the branch point
        it came from among them.

    Example:
        >>> logistic = jaxgrad.autonomous(lambda x, p: p["r"] * x * (1 - x))
        >>> br = continue_branch(logistic, 0.0, params={"r": 0.5}, param="r",
        ...                      p_range=(0.5, 1.5), ds=0.05)
        >>> [(bp.kind, bp.branch_type) for bp in br.bifurcations]
        [('branch_point', 'transcritical')]
        >>> new = switch_branch(logistic, br.bifurcations[0], params={"r": 0.5}, param="r",
        ...                     p_range=(0.5, 1.5), ds=0.05)
        >>> x, r = new.x[new.valid], new.p[new.valid]
        >>> bool(jnp.allclose(x, 1 - 1 / r, atol=1e-5)), bool(r.min() < 0.6 and r.max() > 1.4)
        (True, True)
    """
    f, kind = as_system(f, kind, "flow")
    if not isinstance(point, BifurcationPoint) or point.kind != "branch_point":
        what = (f"kind {point.kind!r}" if isinstance(point, BifurcationPoint)
                else type(point).__name__)
        raise ValueError("`point` must be a BifurcationPoint of kind 'branch_point' (from "
                         f"continue_branch or locate_bifurcation), got {what}")
    if not bool(point.converged):
        raise ValueError("`point` is a branch point that did not converge "
                         f"(residual {float(point.residual):.3g}); locate it first")
    check_param(params, param)
    p_star = check_array("point.p", point.p, ndim=0)
    params = set_param(params, param, p_star)
    f, x0, unravel, p0 = _check_common(f, kind, point.x, params, param, name="point.x")
    lo, hi = check_interval("p_range", p_range)
    if not lo <= p0 <= hi:
        raise ValueError(f"`point.p`={p0} must lie inside `p_range` ({lo}, {hi})")
    ds, ds_min, ds_max, num_steps, newton_steps = _check_steps(
        1, ds, ds_min, ds_max, num_steps, newton_steps)
    tol = default_tol(x0.dtype) if tol is None else check_positive_float("tol", tol)
    dt = x0.dtype
    tangents = check_array("point.branch_tangents", point.branch_tangents, ndim=2)
    if tangents.shape != (2, x0.size + 1):
        raise ValueError(f"`point.branch_tangents` must have shape {(2, x0.size + 1)} for "
                         f"the state of `point.x`, got {tangents.shape}")
    t = tangents[1].astype(dt)
    sides = [_continue(
        f, x0, params, jnp.asarray(lo, dt), jnp.asarray(hi, dt), jnp.asarray(1.0, dt),
        jnp.asarray(ds, dt), jnp.asarray(ds_min, dt), jnp.asarray(ds_max, dt),
        jnp.asarray(tol, dt), sign * t, kind=kind, param=param, num_steps=num_steps,
        newton_steps=newton_steps) for sign in (-1.0, 1.0)]
    back, ahead = sides
    # Row 0 of each side is the branch point; the side along -t is reversed, so its
    # orientation (dp/ds, the test function's sign) is negated. The test function is 0 at
    # the branch point itself (rounding gives it a random sign there): set so.
    tp_back, test_back = -back[4], -back[6]
    test_back = test_back.at[0].set(0.0)
    rows = [jnp.concatenate([b[::-1], a[1:]]) for b, a in zip(
        (back[0], back[1], back[2], back[3], tp_back, back[5], test_back), ahead, strict=True)]
    xs, ps, valid, ev, tp, res, bp_test = rows
    tp = tp.at[num_steps].set(t[-1])
    return _branch_result(f, kind, params, param, tol, locate, xs, ps, valid, ev, tp, res,
                          bp_test, unravel)


def _hopf_brackets(ev: np.ndarray, idx: np.ndarray, kind: str) -> list[tuple[int, int]]:
    """Rows ``(i, j)`` of ``idx`` between which a complex pair crosses the imaginary axis
    (flow) or the unit circle (map).

    The bialternate test function ``ψ = ∏_{i<j} (λ_i + λ_j)`` (flow) or
    ``∏_{i<j} (μ_i μ_j - 1)`` (map) is real and changes sign where a factor passes through
    zero (Kuznetsov 2004, §10.2.2); its sign is taken as the product of the factors'
    phases, free of overflow. The factor nearest zero tells a Hopf point (a complex
    conjugate pair, ``Im λ ≠ 0``) from a neutral saddle (a real pair ``λ, -λ`` or
    ``μ, 1/μ``), which is skipped. Rows where ``ψ`` is exactly zero are stepped over.
    """
    n = ev.shape[-1]
    if n < 2 or idx.size < 2:
        return []
    a_idx, b_idx = np.triu_indices(n, 1)
    eps = np.finfo(np.real(ev).dtype).eps
    sign = np.zeros(idx.size)
    nearest = []  # per row: (|factor| nearest zero, its pair (λ_a, λ_b))
    for r, row in enumerate(idx):  # one row at a time: n(n-1)/2 factors in memory
        a, b = ev[row, a_idx], ev[row, b_idx]
        factor = a + b if kind == "flow" else a * b - 1.0
        size = np.abs(factor)
        if np.all(size > 0):
            sign[r] = np.sign(np.round(np.real(np.prod(factor / size)), 6))
        k = int(np.argmin(size))
        nearest.append((size[k], a[k], b[k]))
    rows = np.flatnonzero(sign != 0)
    out = []
    for r, s in zip(rows[:-1], rows[1:], strict=False):
        if sign[r] * sign[s] >= 0:
            continue
        # The pair nearest its crossing, at the end of the bracket where it is nearer.
        _, la, lb = min(nearest[r], nearest[s], key=lambda t: t[0])
        scale = max(1.0, abs(la))
        if abs(la.imag) > 1e3 * eps * scale and la.imag * lb.imag < 0:
            out.append((int(idx[r]), int(idx[s])))
    return out


def fold_curve(
    f: Callable,
    x0: Any,
    *,
    params: Any,
    param: str | tuple,
    param2: str | tuple,
    p2_range: tuple[float, float],
    kind: str | None = None,
    direction: int = 1,
    ds: float = 0.02,
    ds_min: float | None = None,
    ds_max: float | None = None,
    num_steps: int = 300,
    newton_steps: int = 10,
    tol: float | None = None,
) -> FoldCurve:
    """The fold curve of fixed points in two parameters, with its cusps.

    The fold near ``(x0, params[param])`` is located at ``params[param2]``; the extended
    system ``g = 0, ∂g/∂x v = 0, c·v = 1`` in the unknowns ``(x, v, param)`` is then
    continued by pseudo-arclength in ``param2``. Where ``d param2/ds`` changes sign the
    curve has a cusp (two folds meet and disappear), located by Newton as a fold of the
    extended system. For Doya's neuron the fold curve is
    ``w = 1/(x(1-x)), b = ln(x/(1-x)) - 1/(1-x)`` with its cusp at ``(w, b) = (4, -2)``.

    Arguments:
        f, x0, params, kind: as in ``continue_branch``; ``x0`` near a fold in ``param``.
        param: the first parameter (solved for on the curve), ``param2``: the second
            (continued), each a field name of ``params`` or a path of keys into it.
        p2_range: ``(lo, hi)`` of ``param2``, containing ``params[param2]``.
        direction, ds, ds_min, ds_max, num_steps, newton_steps, tol: as in
            ``continue_branch`` (steps in ``(x, v, param, param2)``).

    Returns:
        ``FoldCurve`` with ``num_steps + 1`` rows.

    Example:
        >>> flow = lambda x, p: jaxgrad.models.doya_vector_field(x, 0.0, p)
        >>> fc = fold_curve(flow, 0.28, params=jaxgrad.DoyaParams(5.0, -2.34), param="b",
        ...                 param2="w", p2_range=(3.0, 8.0), direction=-1)
        >>> round(float(fc.cusps[0].p2), 2), round(float(fc.cusps[0].p), 2)   # w = 4, b = -2
        (4.0, -2.0)
    """
    f, kind = as_system(f, kind, "flow")
    f, x0, unravel, _ = _check_common(f, kind, x0, params, param)
    if param2 is None or param2 == param:
        raise ValueError(f"`param2` must name a second parameter other than {param!r}, "
                         f"got {param2!r}")
    check_param(params, param2, name="param2")
    p2 = get_param(params, param2)
    if np.ndim(p2) != 0:
        raise ValueError(f"`{param_label(param2)}` must be a scalar, got shape {np.shape(p2)}")
    lo, hi = check_interval("p2_range", p2_range)
    if not lo <= float(p2) <= hi:
        raise ValueError(f"`{param_label(param2)}`={float(p2)} must lie inside `p2_range` "
                         f"({lo}, {hi})")
    ds, ds_min, ds_max, num_steps, newton_steps = _check_steps(
        direction, ds, ds_min, ds_max, num_steps, newton_steps)
    tol = default_tol(x0.dtype) if tol is None else check_positive_float("tol", tol)
    dt = x0.dtype
    zs, tq, acc, res = _fold_curve_arrays(
        f, x0, params, jnp.asarray(lo, dt), jnp.asarray(hi, dt), jnp.asarray(direction, dt),
        jnp.asarray(ds, dt), jnp.asarray(ds_min, dt), jnp.asarray(ds_max, dt),
        jnp.asarray(tol, dt), kind=kind, param=param, param2=param2, num_steps=num_steps,
        newton_steps=newton_steps)
    shape = x0.shape
    n = int(np.prod(shape, dtype=int))
    xs = jnp.reshape(zs[:, :n], (zs.shape[0], *shape))
    cusps: list[CuspPoint] = []
    idx = np.flatnonzero(np.asarray(acc))
    tq_h = np.asarray(tq)
    for i, j in zip(idx[:-1], idx[1:], strict=False):
        if np.sign(tq_h[i]) * np.sign(tq_h[j]) < 0:
            z_mid = 0.5 * (zs[i] + zs[j])
            Y, q, r = _locate_cusp(f, z_mid, params, kind=kind, param=param, param2=param2,
                                   shape=shape, newton_steps=newton_steps)
            cusps.append(CuspPoint(restore_state(unravel, jnp.reshape(Y[:n], shape)), Y[2 * n],
                                   q, r < tol, r))
    return FoldCurve(restore_state(unravel, xs), zs[:, 2 * n], zs[:, -1], acc, tuple(cusps))


def _extended_fold_system(f, kind, param, param2, params, shape, c):
    n = int(np.prod(shape, dtype=int))
    g = residual(f, kind)

    def E(Y, q):
        xx, vv, pp = Y[:n], Y[n:2 * n], Y[2 * n]

        def r(z):
            p = set_param(set_param(params, param2, q), param, pp)
            return jnp.reshape(g(jnp.reshape(z, shape), p), (-1,))

        return jnp.concatenate([r(xx), jax.jvp(r, (xx,), (vv,))[1], (c @ vv - 1.0)[None]])

    return E


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "param2", "num_steps",
                                             "newton_steps"))
def _fold_curve_arrays(f, x, params, p2_lo, p2_hi, direction, ds, ds_min, ds_max, tol, *,
                       kind, param, param2, num_steps, newton_steps):
    shape = x.shape
    dt = x.dtype
    q0 = jnp.asarray(get_param(params, param2), dt)
    R1 = _fixed_point_system(f, kind, param, set_param(params, param2, q0), shape)
    p1 = jnp.asarray(get_param(params, param), dt)
    y, v, p, _, _ = _locate(R1, jnp.reshape(x, (-1,)), p1, 0.0, newton_steps)
    # Normalise so that c·v = 1 holds with c = v / ‖v‖², the same c in _locate_cusp.
    c = v / jnp.dot(v, v)
    E = _extended_fold_system(f, kind, param, param2, params, shape, c)
    Y0 = jnp.concatenate([y, v, p[None]])
    zs, ts, acc, res = _arclength(
        E, Y0, q0, direction=direction, ds=ds, ds_min=ds_min, ds_max=ds_max,
        num_steps=num_steps, q_lo=p2_lo, q_hi=p2_hi, newton_steps=newton_steps, tol=tol)
    return zs, ts[:, -1], acc, res


@functools.partial(jax.jit, static_argnames=("f", "kind", "param", "param2", "shape",
                                             "newton_steps"))
def _locate_cusp(f, z, params, *, kind, param, param2, shape, newton_steps):
    n = int(np.prod(shape, dtype=int))
    v = z[n:2 * n]
    c = v / jnp.dot(v, v)
    E = _extended_fold_system(f, kind, param, param2, params, shape, c)
    Y, _, q, res, _ = _locate(E, z[:-1], z[-1], 0.0, newton_steps)
    return Y, q, res


class BogdanovTakensPoint(NamedTuple):
    """A Bogdanov-Takens point on a Hopf curve: where ``ω → 0`` (a double zero eigenvalue)
    and the Hopf curve turns into a neutral-saddle curve.

    Attributes:
        x: ``(*s)`` the fixed point; ``p``, ``p2``: ``()`` the two parameters.
        converged: whether Newton on the extended system (``κ = ω² = 0``) reached ``tol``.
        residual: its residual.
    """

    x: jax.Array
    p: jax.Array
    p2: jax.Array
    converged: jax.Array
    residual: jax.Array


class GeneralizedHopfPoint(NamedTuple):
    """A generalised Hopf (Bautin) point on a Hopf curve: where the first Lyapunov
    coefficient ``l_1`` changes sign, and the Hopf bifurcation turns from supercritical
    (``l_1 < 0``, a stable cycle is born) to subcritical (``l_1 > 0``). A fold curve of
    limit cycles starts there (Kuznetsov 2004, §8.3).

    Attributes:
        x: ``(*s)`` the fixed point; ``p``, ``p2``: ``()`` the two parameters.
        frequency: ``()`` ``ω > 0`` of the critical pair ``±iω``.
        first_lyapunov_coefficient: ``()`` ``l_1`` at the located point (≈ 0; in the
            normalisation of ``BifurcationPoint.first_lyapunov_coefficient``).
        converged: whether the point lies on the Hopf curve (residual of the standard
            system below ``tol``, ``κ = ω² > 0``) with ``|l_1| <= tol · max|l_1|`` of the
            two curve points that bracket it (a sign change through a pole of ``l_1``,
            e.g. at a zero-Hopf point, is not converged).
        residual: ``‖(f, A² v + κ v, v·v - 1, v·v0)‖`` at the point.
    """

    x: jax.Array
    p: jax.Array
    p2: jax.Array
    frequency: jax.Array
    first_lyapunov_coefficient: jax.Array
    converged: jax.Array
    residual: jax.Array


class HopfCurve(NamedTuple):
    """A Hopf curve of a flow in two parameters (``S`` rows).

    Attributes:
        x: ``(S, *s)`` the fixed point (a pytree state: leaves ``(S, *leaf_shape)``);
            ``p``: ``(S,)`` the first parameter; ``p2``:
            ``(S,)`` the second.
        kappa: ``(S,)`` ``κ = ω²``: positive on the Hopf curve, negative where it has
            become a neutral-saddle curve (real eigenvalues ``±√-κ``).
        frequency: ``(S,)`` ``ω = √κ``, NaN where ``κ < 0``.
        valid: ``(S,)`` accepted points inside ``p2_range``.
        bogdanov_takens: located ``BogdanovTakensPoint`` s (sign changes of ``κ``).
        first_lyapunov_coefficient: ``(S,)`` ``l_1`` at each Hopf point of the curve (as
            ``BifurcationPoint.first_lyapunov_coefficient``; negative: supercritical); NaN
            where ``κ <= 0`` (no Hopf point) or the row is not valid.
        generalized_hopf: located ``GeneralizedHopfPoint`` s (sign changes of ``l_1``), in
            order along the curve.
    """

    x: jax.Array
    p: jax.Array
    p2: jax.Array
    kappa: jax.Array
    frequency: jax.Array
    valid: jax.Array
    bogdanov_takens: tuple[BogdanovTakensPoint, ...]
    first_lyapunov_coefficient: jax.Array = None
    generalized_hopf: tuple[GeneralizedHopfPoint, ...] = ()


def _standard_hopf_system(f, param, param2, params, shape, v0):
    """``E((x, v, p, κ), p2) = (f, A² v + κ v, v·v - 1, v·v0)`` (Kuznetsov 2004, §10.2.2):
    regular through a Bogdanov-Takens point, where ``κ = ω²`` changes sign."""
    n = int(np.prod(shape, dtype=int))

    def E(Y, q):
        y, v, p, kappa = Y[:n], Y[n:2 * n], Y[2 * n], Y[2 * n + 1]

        def F(z):
            pp = set_param(set_param(params, param2, q), param, p)
            return jnp.reshape(f(jnp.reshape(z, shape), pp), (-1,))

        Av = jax.jvp(F, (y,), (v,))[1]
        AAv = jax.jvp(F, (y,), (Av,))[1]
        return jnp.concatenate([F(y), AAv + kappa * v, (v @ v - 1.0)[None],
                                (v @ v0)[None]])

    return E


@functools.partial(jax.jit, static_argnames=("f", "param", "param2", "num_steps",
                                             "newton_steps"))
def _hopf_curve_arrays(f, x, params, p2_lo, p2_hi, direction, ds, ds_min, ds_max, tol, *,
                       param, param2, num_steps, newton_steps):
    shape = x.shape
    q0 = jnp.asarray(get_param(params, param2), x.dtype)
    start = set_param(params, param2, q0)
    xb, p, _, qv, _, w, _, _ = _locate_hopf(f, x, start, kind="flow", param=param,
                                            newton_steps=newton_steps)
    v = jnp.real(qv) / jnp.linalg.norm(jnp.real(qv))
    u = jnp.imag(qv) - (jnp.imag(qv) @ v) * v
    v0 = u / jnp.linalg.norm(u)  # in the eigenplane, orthogonal to v
    E = _standard_hopf_system(f, param, param2, params, shape, v0)
    Y0 = jnp.concatenate([jnp.reshape(xb, (-1,)), v, p[None], (w * w)[None]])
    zs, ts, acc, res = _arclength(
        E, Y0, q0, direction=direction, ds=ds, ds_min=ds_min, ds_max=ds_max,
        num_steps=num_steps, q_lo=p2_lo, q_hi=p2_hi, newton_steps=newton_steps, tol=tol)
    l1 = jax.vmap(lambda z: _curve_coefficient(f, param, param2, params, shape, z))(zs)
    l1 = jnp.where(acc & (zs[:, 2 * xb.size + 1] > 0), l1, jnp.nan)
    return zs, acc, v0, l1


def _curve_coefficient(f, param, param2, params, shape, z):
    """``l_1`` at a row ``z = (x, v, p, κ, p2)`` of the standard Hopf system (NaN where
    ``κ <= 0``): ``q = v - i A v / ω`` solves ``A q = iω q`` when ``A² v = -ω² v``."""
    n = int(np.prod(shape, dtype=int))
    y, v, p, kappa, q = z[:n], z[n:2 * n], z[2 * n], z[2 * n + 1], z[-1]

    def F(yy):
        pp = set_param(set_param(params, param2, q), param, p)
        return jnp.reshape(f(jnp.reshape(yy, shape), pp), (-1,))

    w = jnp.sqrt(jnp.where(kappa > 0, kappa, 1.0))
    Av = jax.jvp(F, (y,), (v,))[1]
    qv = jax.lax.complex(v, -Av / w)
    qv = qv / jnp.linalg.norm(qv).astype(qv.dtype)
    l1 = _hopf_coefficient(F, y, w, qv, "flow").astype(z.dtype)
    return jnp.where(kappa > 0, l1, jnp.nan)


#: Most regula-falsi (Illinois) iterations locating a generalised Hopf point.
_GH_ITERATIONS = 100


@functools.partial(jax.jit, static_argnames=("f", "param", "param2", "shape", "newton_steps"))
def _locate_generalized_hopf(f, za, zb, fa, fb, v0, params, *, param, param2, shape,
                             newton_steps):
    """The zero of ``l_1`` on the Hopf curve between its rows ``za`` and ``zb``, where it
    is ``fa`` and ``fb`` (of opposite signs).

    Points of the curve are parametrised by ``s = t·(z - za)`` along the chord
    ``t = (zb - za)/‖zb - za‖`` (Newton on the standard system and the hyperplane), and
    ``l_1(s)`` is solved by regula falsi with the Illinois modification (Dowell & Jarratt
    1971), which keeps a sign-changing bracket and converges superlinearly.
    Returns ``(z, l_1, residual)`` at the last point tried.
    """
    E = _standard_hopf_system(f, param, param2, params, shape, v0)
    d = zb - za
    length = jnp.linalg.norm(d)
    t = d / length
    eps = jnp.finfo(za.dtype).eps

    def cond(state):
        i, a, _, b, _, _, _, fc = state
        return (i < _GH_ITERATIONS) & (b - a > 8 * eps * length) & (fc != 0)

    def body(state):
        i, a, fa, b, fb, side, _, _ = state
        c = jnp.clip(b - fb * (b - a) / (fb - fa), a, b)
        c = jnp.where(jnp.isfinite(c), c, 0.5 * (a + b))
        zp = za + c * t

        def H(z):
            return jnp.concatenate([E(z[:-1], z[-1]), (t @ (z - zp))[None]])

        zc = _newton(H, zp, newton_steps)
        fc = _curve_coefficient(f, param, param2, params, shape, zc)
        right = fc * fb > 0  # the zero lies in [a, c]: c replaces b
        left = fc * fa > 0   # in [c, b]: c replaces a
        fa_new = jnp.where(right, jnp.where(side == -1, 0.5 * fa, fa), jnp.where(left, fc, fa))
        fb_new = jnp.where(left, jnp.where(side == 1, 0.5 * fb, fb), jnp.where(right, fc, fb))
        a = jnp.where(left, c, a)
        b = jnp.where(right, c, b)
        side = jnp.where(right, -1, jnp.where(left, 1, side))
        return i + 1, a, fa_new, b, fb_new, side, zc, fc

    state = (jnp.asarray(0), jnp.zeros_like(length), fa, length, fb, jnp.asarray(0), za,
             jnp.ones_like(fa))
    _, _, _, _, _, _, z, l1 = jax.lax.while_loop(cond, body, state)
    return z, l1, jnp.linalg.norm(E(z[:-1], z[-1]))


@functools.partial(jax.jit, static_argnames=("f", "param", "param2", "shape", "newton_steps"))
def _locate_bogdanov_takens(f, z, v0, params, *, param, param2, shape, newton_steps):
    """Newton on the standard system with ``κ = 0`` for ``(x, v, p, p2)``."""
    n = int(np.prod(shape, dtype=int))
    E = _standard_hopf_system(f, param, param2, params, shape, v0)

    def H(Z):
        zero = jnp.zeros((1,), Z.dtype)
        return E(jnp.concatenate([Z[:2 * n + 1], zero]), Z[-1])

    Z0 = jnp.concatenate([z[:2 * n + 1], z[-1:]])
    Z = _newton(H, Z0, newton_steps)
    return Z, jnp.linalg.norm(H(Z))


def hopf_curve(
    f: Callable,
    x0: Any,
    *,
    params: Any,
    param: str | tuple,
    param2: str | tuple,
    p2_range: tuple[float, float],
    kind: str | None = None,
    direction: int = 1,
    ds: float = 0.02,
    ds_min: float | None = None,
    ds_max: float | None = None,
    num_steps: int = 300,
    newton_steps: int = 10,
    tol: float | None = None,
) -> HopfCurve:
    """The Hopf curve of a flow's fixed points in two parameters, with its Bogdanov-Takens
    and generalised Hopf points.

    The Hopf point near ``(x0, params[param])`` is located at ``params[param2]``
    (``locate_bifurcation(..., bifurcation="hopf")``); Kuznetsov's standard defining system
    ``f(x, p) = 0, (A² + κ I) v = 0, v·v = 1, v·v0 = 0`` (``A = ∂f/∂x``, ``κ = ω²``,
    ``v0`` a fixed vector of the starting eigenplane; Kuznetsov 2004, §10.2.2) in the
    unknowns ``(x, v, param, κ)`` is then continued by pseudo-arclength in ``param2``.
    It stays regular where ``ω → 0``: there (``κ`` changes sign) the curve has a
    Bogdanov-Takens point, located by Newton with ``κ = 0``, and continues as a curve of
    neutral saddles (``κ < 0``). For FitzHugh-Nagumo ``v' = v - v³/3 - w + I``,
    ``w' = ε(v + a - b w)`` the Hopf curve is ``v = -√(1 - εb)``,
    ``I = v³/3 - v + (v + a)/b``, ``ω² = ε(1 - εb²)``, with its Bogdanov-Takens point at
    ``b = 1/√ε``.

    The first Lyapunov coefficient ``l_1`` is evaluated at every Hopf point of the curve
    (``κ > 0``; the eigenvector ``q = v - i A v/ω``, as in ``locate_bifurcation``). Where it
    changes sign between two rows the curve has a generalised Hopf (Bautin) point: the
    Hopf bifurcation turns from supercritical to subcritical and a fold curve of limit
    cycles is born. It is located by regula falsi (Illinois) on ``l_1`` along the curve,
    each trial point corrected onto the curve by Newton; for the Bautin normal form
    ``r' = β₁ r + β₂ r³ - r⁵, θ' = 1`` the Hopf curve is ``β₁ = 0`` with ``l_1 = 2 β₂`` and
    the point is ``β₁ = β₂ = 0``. Only flows are continued: maps (Neimark-Sacker curves,
    and their analogue of the generalised Hopf point, the Chenciner point) are refused.

    Arguments:
        f, x0, params: as in ``continue_branch``; a flow (``jaxgrad.vector_field(F)`` or
            ``f(x, p)`` with ``kind="flow"``) with a state of at least two components;
            ``x0`` near a Hopf point in ``param``.
        param: the first parameter (solved for on the curve), ``param2``: the second
            (continued), each a field name of ``params`` or a path of keys into it.
        p2_range: ``(lo, hi)`` of ``param2``, containing ``params[param2]``.
        direction, ds, ds_min, ds_max, num_steps, newton_steps, tol: as in
            ``continue_branch`` (steps in ``(x, v, param, κ, param2)``).

    Returns:
        ``HopfCurve`` with ``num_steps + 1`` rows, ``l_1`` along them, the
        ``BogdanovTakensPoint`` s and the ``GeneralizedHopfPoint`` s.

    Example:
        >>> def fhn(z, u, p):
        ...     return jnp.stack([z[0] - z[0] ** 3 / 3 - z[1] + p["I"],
        ...                       0.08 * (z[0] + 0.7 - p["b"] * z[1])])
        >>> hc = hopf_curve(jaxgrad.vector_field(fhn), jnp.array([-1.0, -0.4]),
        ...                 params={"I": 0.33, "b": 0.8}, param="I", param2="b",
        ...                 p2_range=(0.8, 4.0), ds=0.05)
        >>> round(float(hc.bogdanov_takens[0].p2), 3)   # 1/sqrt(0.08)
        3.536

        The Bautin normal form, continued in ``β₂`` from ``β₂ = -0.5``:

        >>> def bautin(z, u, p):
        ...     r2 = z[0] ** 2 + z[1] ** 2
        ...     a = p["b1"] + p["b2"] * r2 - r2 * r2
        ...     return jnp.stack([a * z[0] - z[1], z[0] + a * z[1]])
        >>> hc = hopf_curve(jaxgrad.vector_field(bautin), jnp.zeros(2),
        ...                 params={"b1": 0.0, "b2": -0.5}, param="b1", param2="b2",
        ...                 p2_range=(-0.5, 0.5), ds=0.05)
        >>> gh = hc.generalized_hopf[0]
        >>> bool(gh.converged), abs(float(gh.p)) < 1e-6, abs(float(gh.p2)) < 1e-6
        (True, True, True)
    """
    f, kind = as_system(f, kind, "flow")
    f, x0, unravel, _ = _check_common(f, kind, x0, params, param)
    if kind != "flow":
        raise ValueError("`hopf_curve` continues Hopf points of a flow; `f` is a map "
                         "(Neimark-Sacker curves are not supported)")
    if x0.size < 2:
        raise ValueError("a Hopf point needs a complex pair of eigenvalues: `x0` must have "
                         f"at least 2 components, got shape {x0.shape}")
    if param2 is None or param2 == param:
        raise ValueError(f"`param2` must name a second parameter other than {param!r}, "
                         f"got {param2!r}")
    check_param(params, param2, name="param2")
    p2 = get_param(params, param2)
    if np.ndim(p2) != 0:
        raise ValueError(f"`{param_label(param2)}` must be a scalar, got shape {np.shape(p2)}")
    lo, hi = check_interval("p2_range", p2_range)
    if not lo <= float(p2) <= hi:
        raise ValueError(f"`{param_label(param2)}`={float(p2)} must lie inside `p2_range` "
                         f"({lo}, {hi})")
    ds, ds_min, ds_max, num_steps, newton_steps = _check_steps(
        direction, ds, ds_min, ds_max, num_steps, newton_steps)
    tol = default_tol(x0.dtype) if tol is None else check_positive_float("tol", tol)
    dt = x0.dtype
    zs, acc, v0, l1 = _hopf_curve_arrays(
        f, x0, params, jnp.asarray(lo, dt), jnp.asarray(hi, dt), jnp.asarray(direction, dt),
        jnp.asarray(ds, dt), jnp.asarray(ds_min, dt), jnp.asarray(ds_max, dt),
        jnp.asarray(tol, dt), param=param, param2=param2, num_steps=num_steps,
        newton_steps=newton_steps)
    shape = x0.shape
    n = int(np.prod(shape, dtype=int))
    xs = jnp.reshape(zs[:, :n], (zs.shape[0], *shape))
    kappa = zs[:, 2 * n + 1]
    points: list[BogdanovTakensPoint] = []
    idx = np.flatnonzero(np.asarray(acc))
    kappa_h = np.asarray(kappa)
    for i, j in zip(idx[:-1], idx[1:], strict=False):
        if np.sign(kappa_h[i]) * np.sign(kappa_h[j]) < 0:
            Z, r = _locate_bogdanov_takens(f, 0.5 * (zs[i] + zs[j]), v0, params, param=param,
                                           param2=param2, shape=shape,
                                           newton_steps=newton_steps)
            points.append(BogdanovTakensPoint(restore_state(unravel, jnp.reshape(Z[:n], shape)),
                                              Z[2 * n], Z[-1], r < tol, r))
    frequency = jnp.where(kappa >= 0, jnp.sqrt(jnp.maximum(kappa, 0.0)), jnp.nan)
    # Generalised Hopf points: sign changes of l_1 between consecutive rows where it is
    # defined (κ > 0) and not exactly zero.
    gh: list[GeneralizedHopfPoint] = []
    l1_h = np.asarray(l1)
    rows = np.flatnonzero(np.isfinite(l1_h) & (l1_h != 0))
    for i, j in zip(rows[:-1], rows[1:], strict=False):
        if np.sign(l1_h[i]) * np.sign(l1_h[j]) < 0:
            z, l1_z, r = _locate_generalized_hopf(
                f, zs[i], zs[j], l1[i], l1[j], v0, params, param=param, param2=param2,
                shape=shape, newton_steps=newton_steps)
            kz = z[2 * n + 1]
            scale = max(abs(l1_h[i]), abs(l1_h[j]))
            ok = (r < tol) & (kz > 0) & (jnp.abs(l1_z) <= tol * scale)
            gh.append(GeneralizedHopfPoint(restore_state(unravel, jnp.reshape(z[:n], shape)),
                                           z[2 * n], z[-1], jnp.sqrt(jnp.maximum(kz, 0.0)),
                                           l1_z, ok, r))
    return HopfCurve(restore_state(unravel, xs), zs[:, 2 * n], zs[:, -1], kappa, frequency,
                     acc, tuple(points), l1, tuple(gh))
