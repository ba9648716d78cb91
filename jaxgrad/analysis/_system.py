"""Systems as the bifurcation tools see them, ``f(x, p)``, and their shared checks.

The tools take a system in the form of ``jaxgrad.systems``: a map as a step
``step(x, u, params)`` (``jaxgrad.autonomous(g)`` for ``g(x, params)``; the input ``u`` is
a ``(0,)`` array, as for an autonomous system in the trajectory analyzers), a flow as an
explicit ``jaxgrad.vector_field(F)``; ``as_system`` turns either into ``f(x, p)`` and a
kind. The older form, ``f(x, p)`` with ``kind="map"``/``"flow"``, still works but is
deprecated: ``kind=`` is where forgetting ``kind="map"`` silently ran a flow analysis.

A *map* is ``x_{t+1} = f(x, p)``; a *flow* is ``dx/dt = f(x, p)``. The state ``x`` is a
scalar, an array of any shape or a pytree of arrays of one floating dtype (an LSTM's
``(h, c)``, a dict; nested lists or tuples of plain numbers are read as an array); ``p`` is
a scalar or a pytree of parameters (a ``NamedTuple`` such as ``DoyaParams``, a ``dict`` or
a dataclass), and the parameter that a sweep or a continuation varies is named by a field
(``param="b"``) or by a path into ``params`` (``param=("cell", "b")``: ``params.cell.b`` or
``params["cell"]["b"]``; an integer key indexes a tuple or list).

A state that is not a scalar or a 1-D array is flattened at the boundary with
``jax.flatten_util.ravel_pytree`` (``check_state``) and the tools work on the flat vector
of its ``n`` numbers (``Flattened``); the states in their results (branch rows, fixed
points, orbits, points on cycles) come back in the caller's structure, each leaf with the
result's leading axes: a pytree of leaves ``(S, *leaf_shape)`` where a 1-D state gives
``(S, n)`` (``restore_state``). Eigenvalues, null vectors, branch tangents and Floquet
multipliers stay flat, ``(n,)``: they belong to the ``(n, n)`` Jacobian of the flattened
state, in the leaf order of ``ravel_pytree``. Scalar and 1-D states are used as they are.

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
from jax.flatten_util import ravel_pytree

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
    same_state_layout,
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
        dtype = jnp.result_type(jax.tree_util.tree_leaves(x)[0])
        return self.step(x, jnp.zeros((0,), dtype), p)


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


# --------------------------------------------------------------------------- states
#
# A state may be a scalar, an array of any shape or a pytree of arrays (an LSTM's
# ``(h, c)``, a dict). The tools work on flat vectors: a scalar or 1-D array state is used
# as it is (so results for those are exactly as before), any other state is flattened at
# the boundary with ``jax.flatten_util.ravel_pytree`` and the step wrapped to act on the
# flat vector (``Flattened``); the states in the results are unflattened again
# (``restore_state``). Eigenvalues, null vectors, tangents and multipliers stay flat:
# they belong to the ``(n, n)`` Jacobian of the flattened step (leaf order of
# ``ravel_pytree``).


@dataclasses.dataclass(frozen=True)
class Flattened:
    """``fn`` on flat states: ``x_flat -> ravel(fn(unravel(x_flat), *rest))``.

    ``fn`` is ``f(x, p)`` or a vector field ``F(x, u[, params])``; ``unravel`` is the one
    ``jax.flatten_util.ravel_pytree`` returns (hashable), so a ``Flattened`` is equal for
    equal functions and state layouts and jitted tools reuse their code.
    """

    fn: Callable
    unravel: Callable

    def __call__(self, x: Any, *rest: Any) -> jax.Array:
        return ravel_pytree(self.fn(self.unravel(x), *rest))[0]


def _is_array_like(x: Any) -> bool:
    """An array, a scalar, or nested lists/tuples of Python numbers (read as an array, as
    ``jnp.asarray`` does): not a pytree of several states' parts."""
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return len(x) > 0 and all(
            isinstance(item, (int, float, np.generic))
            or (isinstance(item, (list, tuple)) and _is_array_like(item)) for item in x)
    return jax.tree_util.tree_structure(x) == jax.tree_util.tree_structure(0.0)


def state_leaves(name: str, tree: Any) -> list[jax.Array]:
    """The leaves of a state pytree as real floating arrays (``check_array``), at least one."""
    if isinstance(tree, (str, bytes)) or tree is None:
        raise TypeError(f"`{name}` must be an array or a pytree of arrays, got "
                        f"{type(tree).__name__}")
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"`{name}` must hold at least one array, got an empty pytree")
    return [check_array(name, leaf) for leaf in leaves]


def float_dtype(name: str, leaves: list[jax.Array]) -> Any:
    """The one floating dtype the leaves of a state share (they are flattened together)."""
    dtypes = {leaf.dtype for leaf in leaves}
    if len(dtypes) != 1:
        raise TypeError(
            f"`{name}` leaves must share one floating dtype, got {sorted(map(str, dtypes))}"
        )
    return dtypes.pop()


def _shapes(tree: Any) -> Any:
    return jax.tree_util.tree_map(jnp.shape, tree)


def check_state(name: str, x: Any, *, batched: bool = False) -> tuple[Any, jax.Array, Any]:
    """A finite state (``batched``: ``M`` states along a leading axis of every leaf): a
    scalar, an array of any shape, or a pytree of arrays of one floating dtype. Nested
    lists or tuples of plain numbers are read as an array (``[0.1, 0.9]``); a container
    of arrays is a pytree (``(h, c)``).

    Returns ``(x, x_flat, unravel)``: ``x`` with its leaves as float arrays; for a scalar
    or 1-D array state (``(M,)``/``(M, n)`` when batched) ``x_flat`` is ``x`` and
    ``unravel`` is ``None``; for any other state (an N-D array, a tuple, a dict...)
    ``x_flat`` is ``(n,)`` (``(M, n)``) by ``ravel_pytree`` and ``unravel`` maps a flat
    state back.
    """
    if _is_array_like(x):
        x = check_array(name, x)
        leaves = [x]
    else:
        leaves = state_leaves(name, x)
        x = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(x), leaves)
    dtype = float_dtype(name, leaves)
    if batched:
        if any(leaf.ndim == 0 for leaf in leaves):
            raise ValueError(
                f"`{name}` must have shape (M,) or (M, *s) (leading axis = initial "
                f"conditions; a pytree state: a leading axis M on every leaf), got "
                f"{_shapes(x)}")
        lengths = {leaf.shape[0] for leaf in leaves}
        if len(lengths) != 1:
            raise ValueError(f"`{name}` leaves disagree on the number of initial conditions "
                             f"(their leading axis): {sorted(lengths)}")
        if lengths.pop() == 0:
            raise ValueError(f"`{name}` must hold at least one initial condition, got 0")
    if sum(leaf.size for leaf in leaves) == 0:
        raise ValueError(f"`{name}` must have at least one element, got shape(s) {_shapes(x)}")
    check_finite(name, x)
    if isinstance(x, jax.Array) and x.ndim <= (2 if batched else 1):
        return x, x, None
    if batched:
        row = jax.tree_util.tree_map(lambda leaf: leaf[0], x)
        unravel = ravel_pytree(row)[1]
        flat = jax.vmap(lambda r: ravel_pytree(r)[0])(x)
    else:
        flat, unravel = ravel_pytree(x)
    return x, flat.astype(dtype), unravel


def restore_state(unravel: Callable | None, flat: Any) -> Any:
    """States ``(*lead, n)`` as the caller gave them: ``flat`` itself for a scalar or 1-D
    state (``unravel`` is ``None``), else the pytree with leaves ``(*lead, *leaf_shape)``."""
    if unravel is None:
        return flat
    fn = unravel
    for _ in range(jnp.ndim(flat) - 1):
        fn = jax.vmap(fn)
    return fn(jnp.asarray(flat))


def restore_jacobian(unravel: Callable | None, J: Any) -> Any:
    """A Jacobian ``(*lead, n, n)`` of the flat state as ``jax.jacfwd`` gives it for the
    state: ``J`` itself for a scalar or 1-D state, else a pytree of pytrees (outer: the
    output's structure, inner: the input's) with leaves
    ``(*lead, *out_leaf_shape, *in_leaf_shape)``."""
    if unravel is None:
        return J
    n = J.shape[-1]
    leaves, treedef = jax.tree_util.tree_flatten(
        jax.eval_shape(unravel, jax.ShapeDtypeStruct((n,), J.dtype)))
    shapes = [leaf.shape for leaf in leaves]
    bounds = np.cumsum([0] + [int(np.prod(s, dtype=np.int64)) for s in shapes])
    lead = J.shape[:-2]

    def block(i, j):
        part = J[..., bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]]
        return jnp.reshape(part, (*lead, *shapes[i], *shapes[j]))

    rows = [jax.tree_util.tree_unflatten(treedef, [block(i, j) for j in range(len(shapes))])
            for i in range(len(shapes))]
    return jax.tree_util.tree_unflatten(treedef, rows)


def check_output(f: Callable, x: Any, p: Any, *, name: str | None = None,
                 batched: bool = False) -> None:
    """``f(x, p)`` returns a state of the structure and shapes of ``x`` (one state).

    ``name``: the argument ``x`` was taken from (``batched``: one row of it, such as
    ``starts``); the message names it.
    """
    where = ""
    if batched:
        where = (f" (one row of `{name}`; `{name}` must be (M,) for a scalar state, (M, n) "
                 f"for a state of shape (n,), (M, *s) in general, or a pytree of leaves "
                 f"(M, *leaf_shape))")
    elif name is not None:
        where = f" (`{name}`)"
    try:
        out = jax.eval_shape(f, x, p)
    except Exception as err:  # any failure of the user's f, reported with the shapes
        raise ValueError(
            f"`f` failed on a state of shape {_shapes(x)}{where}: {type(err).__name__}: {err}"
        ) from err
    if not same_state_layout(out, x):
        raise ValueError(
            f"`f(x, p)` must return a state shaped like x {_shapes(x)}{where}, got "
            f"{_shapes(out)}"
        )


def flat_system(f: Callable, x: Any, p: Any, *, name: str, batched: bool = False
                ) -> tuple[Callable, jax.Array, Callable | None]:
    """``(f_flat, x_flat, unravel)``: the state ``x`` checked (``check_state``), ``f`` checked
    on it (``check_output``; ``p`` its parameters) and, for a state that is not a scalar or
    a 1-D array, ``f`` on flat states (``Flattened``). ``unravel`` goes to
    ``restore_state`` for the results."""
    x, flat, unravel = check_state(name, x, batched=batched)
    one = jax.tree_util.tree_map(lambda leaf: leaf[0], x) if batched else x
    check_output(f, one, p, name=name, batched=batched)
    return flattened(f, unravel), flat, unravel


def flattened(f: Callable, unravel: Callable | None) -> Callable:
    """``f`` on flat states (``Flattened``), or ``f`` itself when ``unravel`` is ``None``."""
    return f if unravel is None else Flattened(f, unravel)


def param_label(param: Any) -> str:
    """``params.b`` for ``param="b"``, ``params.cell.b`` / ``params.layers[0]`` for a path."""
    keys = param if isinstance(param, tuple) else (param,)
    return "params" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys)


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
