"""Systems as the bifurcation tools see them, ``f(x, p)``, and their shared checks.

The tools take a system in the form of ``jaxgrad.systems``: a map as a step
``step(x, u, params)`` (``jaxgrad.autonomous(g)`` for ``g(x, params)``; the input ``u`` is
a ``(0,)`` array, as for an autonomous system in the trajectory analyzers), a flow as an
explicit ``jaxgrad.vector_field(F)``; ``as_system`` turns either into ``f(x, p)`` and a
kind. The older form, ``f(x, p)`` with ``kind="map"``/``"flow"``, still works but is
deprecated: ``kind=`` is where forgetting ``kind="map"`` silently ran a flow analysis.

A *map* is ``x_{t+1} = f(x, p)``; a *flow* is ``dx/dt = f(x, p)``. The state ``x`` is a
scalar or a 1-D array; ``p`` is a scalar or a pytree of parameters (a ``NamedTuple`` such
as ``DoyaParams``, a ``dict`` or a dataclass), and the parameter that a sweep or a
continuation varies is named by a field (``param="b"``) or by a path into ``params``
(``param=("cell", "b")``: ``params.cell.b`` or ``params["cell"]["b"]``; an integer key
indexes a tuple or list).

Fixed points solve ``g(x, p) = 0`` with ``g = f - x`` (map) or ``g = f`` (flow); their
stability is read from the eigenvalues of ``∂f/∂x``: ``|μ| < 1`` (map), ``Re λ < 0`` (flow).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import (
    check_array,
    check_choice,
    check_finite,
    check_positive_float,
    is_concrete,
)
from ..systems import (
    Autonomous,
    Discretized,
    Iterated,
    VectorField,
    autonomous,
    discretize,
    vector_field,
)

KINDS = ("map", "flow")

#: Stability codes used in results: ``STABILITY_LABELS[code]``.
STABILITY_LABELS = ("stable", "unstable", "saddle")
#: How a fixed point loses (or gains) stability through its critical eigenvalue (the one
#: nearest the stability boundary): a real eigenvalue through μ = +1 / λ = 0 is a fold, a
#: real multiplier through μ = -1 a flip (period doubling, maps only), a complex pair a
#: Hopf (flow) or Neimark-Sacker (map) bifurcation. ``LOSS_OF_STABILITY_LABELS[code]``.
LOSS_OF_STABILITY_LABELS = ("fold", "flip", "hopf", "neimark_sacker")


def check_system(f: Any, kind: Any) -> None:
    """``f`` callable and ``kind`` in ``("map", "flow")``."""
    if not callable(f):
        raise TypeError(f"`f` must be callable as f(x, p), got {type(f).__name__}")
    check_choice("kind", kind, KINDS)


@dataclasses.dataclass(frozen=True)
class StepAsFunction:
    """``f(x, p) = step(x, u0, p)`` with ``u0`` a ``(0,)`` array: a step (or the function of
    a ``VectorField``) in the form the bifurcation tools use inside; equal for equal steps,
    so jitted tools reuse their code."""

    step: Callable

    def __call__(self, x: Any, p: Any) -> Any:
        return self.step(x, jnp.zeros((0,), jnp.result_type(x)), p)


def _required_positional(f: Callable) -> int | None:
    """How many positional arguments ``f`` requires (``None`` when unknown or ``*args``)."""
    try:
        signature = inspect.signature(f)
    except (TypeError, ValueError):
        return None
    count = 0
    for arg in signature.parameters.values():
        if arg.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if (arg.kind in (inspect.Parameter.POSITIONAL_ONLY,
                         inspect.Parameter.POSITIONAL_OR_KEYWORD)
                and arg.default is inspect.Parameter.empty):
            count += 1
    return count


def as_system(f: Any, kind: Any, default_kind: str) -> tuple[Callable, str]:
    """``(f(x, p), kind)`` from a system in the form of ``jaxgrad.systems`` or the old one.

    - a ``VectorField`` (``jaxgrad.vector_field(F)``): a flow ``dx/dt = F(x, u0, p)``;
    - a step ``step(x, u, params)`` (``jaxgrad.autonomous(g)``, ``jaxgrad.discretize(...)``,
      ``jaxgrad.iterate(step, k)``, or any callable with three required positional
      arguments): a map;
    - otherwise the deprecated form ``f(x, p)`` with ``kind`` (``default_kind`` when
      ``kind`` is ``None``, the tool's former default).

    A ``kind`` that contradicts the form (``kind="flow"`` with a step, ``"map"`` with a
    vector field) is refused.
    """
    if kind is not None:
        check_choice("kind", kind, KINDS)
    if isinstance(f, VectorField):
        if kind == "map":
            raise ValueError("`kind`='map' contradicts `f`, a VectorField (a flow); drop "
                             "`kind`, or pass the map as a step")
        return StepAsFunction(f.f), "flow"
    is_step = isinstance(f, (Autonomous, Discretized, Iterated)) or (
        callable(f) and _required_positional(f) == 3)
    if is_step:
        if kind == "flow":
            raise ValueError("`kind`='flow' contradicts `f`, a step f(x, u, params) (a map); "
                             "wrap the right-hand side of a flow with jaxgrad.vector_field")
        return StepAsFunction(f), "map"
    kind = default_kind if kind is None else kind
    check_system(f, kind)
    return f, kind


def _field_names(params: Any) -> list[str] | None:
    if isinstance(params, dict):
        return sorted(str(k) for k in params)
    if hasattr(params, "_fields"):
        return list(params._fields)
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return [fl.name for fl in dataclasses.fields(params)]
    return None


def _path(param: Any) -> tuple:
    """``param`` as a tuple of keys (a name is a path of one key)."""
    return param if isinstance(param, tuple) else (param,)


def _child(params: Any, key: Any) -> Any:
    if isinstance(params, dict):
        return params[key]
    if isinstance(key, int):
        return params[key]
    return getattr(params, key)


def _replace(params: Any, key: Any, value: Any) -> Any:
    if isinstance(params, dict):
        return {**params, key: value}
    if hasattr(params, "_replace") and isinstance(key, str):
        return params._replace(**{key: value})
    if isinstance(key, int) and isinstance(params, (tuple, list)):
        items = list(params)
        items[key] = value
        return type(params)(items) if isinstance(params, list) else tuple(items)
    return dataclasses.replace(params, **{key: value})


def check_param(params: Any, param: Any, *, name: str = "param") -> None:
    """``param`` names a field of ``params``, or is a path of keys into it (or is ``None``
    for a scalar ``params``).

    ``name`` is the argument the messages name (``"param2"`` for a second parameter).
    """
    if param is None:
        if _field_names(params) is not None:
            raise ValueError(
                f"`{name}` must name the parameter to vary, one of "
                f"{_field_names(params)}; got None"
            )
        return
    if isinstance(param, list):
        raise TypeError(f"`{name}` must be a name or a tuple of keys (hashable), got a list "
                        f"{param!r}")
    if isinstance(param, tuple):
        if not param:
            raise ValueError(f"`{name}` must be a non-empty path of keys into `params`, got ()")
        node = params
        for depth, key in enumerate(param):
            where = "params" + "".join(f"[{k!r}]" for k in param[:depth])
            if isinstance(key, int) and not isinstance(key, bool):
                if not isinstance(node, (tuple, list)) or hasattr(node, "_fields"):
                    raise TypeError(f"`{name}` key {key!r} indexes `{where}`, which is not a "
                                    f"tuple or list (got {type(node).__name__})")
                if not -len(node) <= key < len(node):
                    raise ValueError(f"`{name}` key {key} is out of range for `{where}` of "
                                     f"length {len(node)}")
            else:
                _check_name(node, key, name, where)
            node = _child(node, key)
        return
    _check_name(params, param, name, "params")


def _check_name(params: Any, param: Any, name: str, where: str) -> None:
    if not isinstance(param, str):
        raise TypeError(f"`{name}` must be a parameter name (str) or a path of keys (tuple), "
                        f"got {type(param).__name__}")
    names = _field_names(params)
    if names is None:
        raise TypeError(
            f"`{name}`={param!r} needs `{where}` to be a dict, NamedTuple or dataclass, "
            f"got {type(params).__name__}"
        )
    if param not in names:
        raise ValueError(f"unknown `{name}` {param!r}; `{where}` has {names}")


def check_params_finite(params: Any) -> None:
    """Every concrete floating leaf of ``params`` is finite; the message names the leaf.

    Leaves that are not numbers (a string option, a callable) and traced leaves are
    skipped. A NaN parameter would otherwise give no fixed points, or NaN ones, silently.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    for path, leaf in leaves:
        if not isinstance(leaf, (float, int, complex, np.ndarray, np.generic, jax.Array)):
            continue
        if not is_concrete(leaf) or isinstance(leaf, bool):
            continue
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            where = "params" + jax.tree_util.keystr(path)
            raise ValueError(f"`{where}` must be finite, got {leaf}")


def set_param(params: Any, param: Any, value: Any) -> Any:
    """``params`` with ``param`` (a name or a path) set to ``value`` (``value`` for ``None``)."""
    if param is None:
        return value
    key, *rest = _path(param)
    if rest:
        value = set_param(_child(params, key), tuple(rest), value)
    return _replace(params, key, value)


def get_param(params: Any, param: Any) -> Any:
    """The value at ``param`` (a name or a path) in ``params`` (``params`` for ``None``)."""
    if param is None:
        return params
    for key in _path(param):
        params = _child(params, key)
    return params


def check_values(name: str, values: Any, *, increasing: bool = False) -> jax.Array:
    """A non-empty, finite 1-D grid of parameter values."""
    arr = check_array(name, values)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D grid of parameter values, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one point, got 0")
    check_finite(name, arr)
    if increasing and arr.shape[0] > 1 and not bool(np.all(np.diff(np.asarray(arr)) > 0)):
        raise ValueError(f"`{name}` must be strictly increasing")
    return arr


def check_interval(name: str, interval: Any) -> tuple[float, float]:
    """``(lo, hi)`` with finite ``lo < hi``."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (lo, hi) of numbers, got {interval!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"`{name}` must be finite, got ({lo}, {hi})")
    if not lo < hi:
        raise ValueError(
            f"`{name}` must satisfy lo < hi (non-empty, not reversed), got ({lo}, {hi})"
        )
    return lo, hi


def check_state(name: str, x: Any, *, batched: bool = False) -> jax.Array:
    """A finite state: scalar or 1-D (``batched``: with one extra leading axis)."""
    arr = check_array(name, x)
    lo, hi = (1, 2) if batched else (0, 1)
    if not lo <= arr.ndim <= hi:
        what = "(M,) or (M, n) (leading axis = initial conditions)" if batched else "() or (n,)"
        raise ValueError(f"`{name}` must have shape {what}, got {arr.shape}")
    if batched and arr.shape[0] == 0:
        raise ValueError(f"`{name}` must hold at least one initial condition, got 0")
    check_finite(name, arr)
    return arr


def check_output(f: Callable, x: jax.Array, p: Any, *, name: str | None = None) -> None:
    """``f(x, p)`` returns a state shaped like ``x``.

    ``name``: the argument ``x`` was taken from (one row of a batch such as ``starts``);
    the message then names it and the shapes it may have.
    """
    where = ""
    if name is not None:
        where = (f" (one row of `{name}`; `{name}` must be (M,) for a scalar state or "
                 "(M, n) for a state of shape (n,))")
    try:
        out = jax.eval_shape(f, x, p)
    except Exception as err:  # any failure of the user's f, reported with the shapes
        raise ValueError(
            f"`f` failed on a state of shape {x.shape}{where}: {type(err).__name__}: {err}"
        ) from err
    if not hasattr(out, "shape") or out.shape != x.shape:
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(
            f"`f(x, p)` must return a state shaped like x {x.shape}{where}, got {got}"
        )


def check_dt(kind: str, dt: Any) -> float:
    """The integration step of a flow (ignored for maps)."""
    return check_positive_float("dt", dt) if kind == "flow" else 1.0


def residual(f: Callable, kind: str) -> Callable:
    """``g(x, p)`` whose zeros are the fixed points: ``f - x`` (map) or ``f`` (flow)."""
    if kind == "map":
        return lambda x, p: f(x, p) - x
    return f


def advance(f: Callable, kind: str, dt: float, solve: tuple | None = None) -> Callable:
    """One time step ``x -> x'``: the map itself, or a step of length ``dt`` of the flow.

    For a flow, ``solve=None`` takes one classical RK4 step
    (``jaxgrad.systems.discretize``); ``solve``, the items of ``flows.solver_options``
    (a tuple, so that it can be a static argument of ``jax.jit``), solves the flow over
    ``dt`` with diffrax's adaptive solver instead. A solve that fails (``max_steps``
    reached, a non-finite state) gives NaN, never a wrong state.
    """
    if kind == "map":
        return f
    if solve is not None:
        from ..flows import flow_map

        options = dict(solve)
        return lambda x, p: flow_map(lambda y, _u: f(y, p), x, None, dt, options)[0]
    step = discretize(vector_field(autonomous(f)), dt, method="rk4")
    return lambda x, p: step(x, None, p)


def check_solve(kind: str, method: str, dtype: Any, rtol: float | None, atol: float | None,
                max_steps: int) -> tuple | None:
    """The ``solve`` argument of ``advance`` for a tool's ``method`` (``"rk4"`` or
    ``"diffrax"``), checked; ``"diffrax"`` is refused for a map."""
    check_choice("method", method, ("rk4", "diffrax"))
    if method == "rk4":
        return None
    if kind == "map":
        raise ValueError("`method`='diffrax' integrates a flow; this system is a map")
    from ..flows import solver_options

    options = solver_options(dtype, rtol=rtol, atol=atol, max_steps=max_steps)
    return tuple(sorted(options.items()))


def run_steps(step: Callable, x0: jax.Array, p: Any, num_steps: int) -> jax.Array:
    """``x(T)`` after ``num_steps`` steps, under ``lax.fori_loop``."""
    return jax.lax.fori_loop(0, num_steps, lambda _, x: step(x, p), x0)


def jacobian_flat(f: Callable, x: jax.Array, p: Any) -> jax.Array:
    """``∂f/∂x`` as an ``(n, n)`` matrix (``n = 1`` for a scalar state)."""
    shape = x.shape
    flat = lambda y: jnp.reshape(f(jnp.reshape(y, shape), p), (-1,))  # noqa: E731
    return jax.jacfwd(flat)(jnp.reshape(x, (-1,)))


def classify(eigenvalues: jax.Array, kind: str) -> tuple[jax.Array, jax.Array]:
    """Stability and loss-of-stability codes from the eigenvalues ``(..., n)`` of ``∂f/∂x``.

    Stable: every ``|μ| < 1`` (map) or ``Re λ < 0`` (flow); unstable: none; saddle: some.
    The critical eigenvalue is the one nearest the boundary (``||μ| - 1|`` or ``|Re λ|``).
    """
    ev = eigenvalues
    if kind == "map":
        inside = jnp.abs(ev) < 1
        distance = jnp.abs(jnp.abs(ev) - 1)
    else:
        inside = jnp.real(ev) < 0
        distance = jnp.abs(jnp.real(ev))
    n_in = jnp.sum(inside, axis=-1)
    n = ev.shape[-1]
    stability = jnp.where(n_in == n, 0, jnp.where(n_in == 0, 1, 2)).astype(jnp.int32)
    k = jnp.argmin(distance, axis=-1)
    crit = jnp.take_along_axis(ev, k[..., None], axis=-1)[..., 0]
    scale = jnp.maximum(jnp.abs(crit), 1.0)
    is_complex = jnp.abs(jnp.imag(crit)) > 1e3 * jnp.finfo(jnp.real(crit).dtype).eps * scale
    if kind == "map":
        code = jnp.where(is_complex, 3, jnp.where(jnp.real(crit) < 0, 1, 0))
    else:
        code = jnp.where(is_complex, 2, 0)
    return stability, code.astype(jnp.int32)


def eigenvalues(f: Callable, x: jax.Array, p: Any) -> jax.Array:
    """Eigenvalues ``(n,)`` of ``∂f/∂x`` at ``x`` (complex dtype)."""
    J = jacobian_flat(f, x, p)
    if J.shape[0] == 1:
        return J[0].astype(complex_dtype(J.dtype))
    return jnp.linalg.eigvals(J)


def complex_dtype(dtype: Any) -> Any:
    """The complex dtype matching a real one (complex128 for float64, else complex64)."""
    return jnp.complex128 if jnp.dtype(dtype) == jnp.float64 else jnp.complex64


def newton_iterate(g: Callable, y: jax.Array, steps: int) -> jax.Array:
    """``steps`` Newton iterations ``y <- y - J(y)^{-1} g(y)`` on a flat ``g(y) = 0``.

    ``J = ∂g/∂y`` by ``jax.jacfwd``; under ``lax.fori_loop`` (jittable, vmappable).
    """

    def body(_, y):
        return y - jnp.linalg.solve(jax.jacfwd(g)(y), g(y))

    return jax.lax.fori_loop(0, steps, body, y)


def merge_close(
    flat: np.ndarray, order: Any, merge_tol: float, weights: Any = None
) -> tuple[list[int], list[int]]:
    """Greedy merge of points closer than ``merge_tol`` (max-norm), on the host.

    The rows ``flat[i]`` are visited in ``order``; each joins the first representative
    within ``merge_tol`` or becomes a new one. Returns ``(representatives, counts)``, the
    counts summing ``weights[i]`` (1 each by default) over the rows merged into each.
    """
    reps: list[int] = []
    counts: list[int] = []
    for i in order:
        i = int(i)
        w = 1 if weights is None else int(weights[i])
        if reps:
            dist = np.max(np.abs(flat[reps] - flat[i]), axis=1)
            near = np.flatnonzero(dist < merge_tol)
            if near.size:
                counts[int(near[0])] += w
                continue
        reps.append(i)
        counts.append(w)
    return reps, counts


def default_tol(dtype: Any) -> float:
    """Residual tolerance for a converged Newton solve: ``sqrt(eps)`` of the dtype."""
    return float(np.sqrt(np.finfo(dtype).eps))
