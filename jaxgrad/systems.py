"""One protocol for "a system": a step ``step(x, u, params) -> x_next`` over pytree states.

Every analyzer of jaxgrad takes a *step*: the map ``x_{t+1} = F(x_t, u_t; params)``. The
state ``x`` may be any pytree of arrays (an LSTM's ``(h, c)``, a Flax module's carry),
``u`` is the input of the step (a ``(0,)`` array for an autonomous system) and ``params``
any pytree of parameters, passed as traced values so that new parameter values reuse the
compiled code and ``jax.grad``/``jax.vmap`` reach them.

Parameters are optional: an analyzer called without ``params=`` (its default is the
sentinel ``NO_PARAMS``) calls ``step(x, u)``; with ``params=p`` it calls
``step(x, u, p)``. ``params=None`` is a value like any other (``step(x, u, None)``).

The helpers here build steps:

- ``autonomous(f)``: a map ``x -> f(x)`` or ``f(x, params)`` that ignores its input.
- ``vector_field(F)``: marks ``F(x, u[, params])`` as the right-hand side of a flow
  ``dx/dt = F``. A ``VectorField`` is not a step: the map analyzers refuse it, so a flow is never
  analysed as if its derivative were the next state. ``discretize(field, dt)`` turns it
  into one (a fixed-step Euler or classical Runge–Kutta step); ``jaxgrad.integrate`` solves
  the flow itself with an adaptive diffrax solver, and ``lyapunov_spectrum`` takes it as
  it is.
- ``iterate(step, k)``: the ``k``-fold composition ``x -> F^k(x)`` (periodic orbits are its
  fixed points).
- ``bind(f, params)``: ``f(..., params)`` as a function of the other arguments.
- ``as_step(module)``: a Flax ``nnx.Module`` as ``(step, params)`` (every analyzer takes
  a module directly; this is for the tools that take ``f`` and ``params`` apart, such as
  ``fixed_points`` and ``scan_landscape``); ``layers_as_step(layers)``: identical layers
  of a network as a step over depth, their parameters stacked as its inputs.

and the machinery the analyzers share: ``prepare`` (validation), ``flat_step`` (the step
on flat state vectors, so that Jacobians are matrices) and ``analyzer`` (validate → bind →
jit once per step function and options).

Example:
    >>> logistic = autonomous(lambda x, p: p * x * (1 - x))      # a map
    >>> res = jaxgrad.lyapunov_spectrum(logistic, jnp.array([0.3]), num_steps=1000,
    ...                                 params=jnp.asarray(4.0))
    >>> round(float(res.exponents[0]), 1)       # log 2 = 0.693
    0.7
    >>> doya = discretize(vector_field(jaxgrad.models.doya_vector_field), dt=0.05)  # a flow
    >>> x1 = doya(jnp.array([0.5]), jnp.zeros(1), jaxgrad.DoyaParams(5.0, -2.5))
    >>> x1.shape
    (1,)
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._validation import (
    check_array,
    check_choice,
    check_finite,
    check_positive_float,
    check_positive_int,
    is_concrete,
    leading_axis_length,
)

__all__ = [
    "autonomous", "Autonomous", "vector_field", "VectorField", "discretize", "Discretized",
    "integrator_step", "INTEGRATORS", "iterate", "Iterated", "bind", "NO_PARAMS",
    "as_step",
    "layers_as_step",
]

INTEGRATORS = ("euler", "rk4")


class _NoParams:
    """The type of ``NO_PARAMS`` (one instance)."""

    _instance: _NoParams | None = None

    def __new__(cls) -> _NoParams:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_PARAMS"

    def __reduce__(self) -> str:
        return "NO_PARAMS"


#: "No parameters": the default ``params`` of every analyzer. The step is then called as
#: ``step(x, u)`` (and a predictor as ``predict(inputs)``); any other value ``p``, ``None``
#: included, is passed on as the last argument: ``step(x, u, p)``.
NO_PARAMS = _NoParams()


def bind(f: Callable, params: Any) -> Callable:
    """``f(*args, params)`` as a function of ``args``; ``f`` itself for ``NO_PARAMS``.

    Example:
        >>> p = jaxgrad.init_rate(jax.random.key(0), 4, g=2.0)
        >>> h, u = jnp.ones(4), jnp.zeros(0)
        >>> bool(jnp.all(bind(jaxgrad.rate_step, p)(h, u) == jaxgrad.rate_step(h, u, p)))
        True
    """
    if params is NO_PARAMS:
        return f
    return lambda *args: f(*args, params)


# --------------------------------------------------------------------------- building steps


@dataclasses.dataclass(frozen=True)
class Autonomous:
    """The step ``(x, u[, params]) -> f(x[, params])`` of an autonomous map (``u`` ignored).

    Made by ``autonomous(f)``; equal for equal ``f``, so jitted analyzers reuse their code.
    """

    f: Callable

    def __call__(self, x: Any, u: Any, *params: Any) -> Any:
        del u
        return self.f(x, *params)


def autonomous(f: Callable) -> Autonomous:
    """An autonomous map ``x_{t+1} = f(x)`` (or ``f(x, params)``) as a step ``step(x, u, params)``.

    The input ``u`` is ignored, so analyzers run it with ``num_steps=T`` and no inputs.
    Called without parameters (an analyzer with no ``params=``) it calls ``f(x)``, with
    them ``f(x, params)``.

    Example:
        >>> step = autonomous(lambda x, r: r * x * (1 - x))
        >>> step(jnp.array([0.5]), None, 3.0)
        Array([0.75], dtype=float32)
    """
    if not callable(f):
        raise TypeError(f"`f` must be callable, got {type(f).__name__}")
    return Autonomous(f)


@dataclasses.dataclass(frozen=True)
class VectorField:
    """The right-hand side ``F(x, u[, params])`` of a flow ``dx/dt = F``: not a step.

    Made by ``vector_field(F)``; turn it into a step with ``discretize``. It is not
    callable on purpose: an analyzer given a ``VectorField`` refuses it by name instead of
    treating ``dx/dt`` as the next state.

    Attributes:
        f: ``F(x, u)`` or ``F(x, u, params)``, returning a pytree shaped like ``x``.
    """

    f: Callable


def vector_field(f: Callable) -> VectorField:
    """Mark ``F(x, u[, params])`` as the vector field of a flow ``dx/dt = F(x, u, params)``.

    Use ``vector_field(autonomous(g))`` for an autonomous flow ``dx/dt = g(x[, params])``.

    Example:
        >>> field = vector_field(jaxgrad.models.rate_vector_field)
        >>> step = discretize(field, 0.1)   # one RK4 step of dh/dt = -h + J tanh(h) + W u
        >>> p = jaxgrad.init_rate(jax.random.key(0), 4, g=2.0)
        >>> step(jnp.ones(4), jnp.zeros(0), p).shape
        (4,)
    """
    if isinstance(f, VectorField):
        return f
    if not callable(f):
        raise TypeError(f"`f` must be callable as f(x, u[, params]), got {type(f).__name__}")
    return VectorField(f)


def _fixed_step(F: Callable, x: Any, dt: float, method: str) -> Any:
    """One explicit Euler or classical RK4 step of ``dx/dt = F(x)`` on pytrees (the only one)."""

    def axpy(a, v, w):  # w + a v on pytrees
        return jax.tree_util.tree_map(lambda vi, wi: wi + a * vi, v, w)

    k1 = F(x)
    if method == "euler":
        return axpy(dt, k1, x)
    k2 = F(axpy(0.5 * dt, k1, x))
    k3 = F(axpy(0.5 * dt, k2, x))
    k4 = F(axpy(dt, k3, x))
    return jax.tree_util.tree_map(
        lambda xi, a, b, c, d: xi + (dt / 6.0) * (a + 2.0 * b + 2.0 * c + d), x, k1, k2, k3, k4
    )


def integrator_step(
    vector_field: Callable, x: Any, u: Any, params: Any, *, dt: float, method: str = "rk4"
) -> Any:
    """One fixed step of ``dx/dt = F(x, u, params)`` with ``u`` held over the step.

    ``method="euler"``: ``x + dt F``; ``"rk4"``: the classical fourth-order Runge–Kutta
    step. ``x`` may be any pytree. The result is a map ``x_t -> x_{t+dt}`` whose Lyapunov
    exponents divided by ``dt`` approximate those of the flow. ``params=NO_PARAMS`` calls
    ``F(x, u)``.
    """
    dt = check_positive_float("dt", dt)
    check_choice("method", method, INTEGRATORS)
    field = vector_field.f if isinstance(vector_field, VectorField) else vector_field
    return _fixed_step(lambda y: bind(field, params)(y, u), x, dt, method)


@dataclasses.dataclass(frozen=True)
class Discretized:
    """A step ``(x, u[, params]) -> x(t + dt)``: one fixed integrator step of a flow.

    Made by ``discretize``; equal for equal fields, ``dt`` and ``method``, so jitted
    analyzers reuse their code.
    """

    field: VectorField
    dt: float
    method: str = "rk4"

    def __call__(self, x: Any, u: Any, *params: Any) -> Any:
        return _fixed_step(lambda y: self.field.f(y, u, *params), x, self.dt, self.method)


def discretize(field: VectorField, dt: float, *, method: str = "rk4") -> Discretized:
    """The step ``x_t -> x_{t+dt}`` of the flow ``dx/dt = F(x, u, params)``, ``u`` held over it.

    ``method="rk4"``: the classical fourth-order Runge–Kutta step; ``"euler"``:
    ``x + dt F`` (for Doya's neuron, the discrete map with ``ε = dt``). Lyapunov exponents
    of the step divided by ``dt`` approximate those of the flow (pass ``dt=`` to
    ``lyapunov_spectrum``).

    Arguments:
        field: a ``VectorField`` (from ``vector_field``).
        dt: the step, a positive float (or a traced scalar inside ``jit``; then the step
            is not hashable, so do not pass it to an analyzer from inside ``jit``).
        method: ``"rk4"`` or ``"euler"``.

    Returns:
        ``step(x, u[, params])``.

    Example:
        >>> step = discretize(vector_field(jaxgrad.models.rate_vector_field), 0.1)
        >>> p = jaxgrad.init_rate(jax.random.key(0), 8, g=0.5)
        >>> res = jaxgrad.lyapunov_spectrum(step, jnp.ones(8), num_steps=200, params=p, dt=0.1)
        >>> bool(res.exponents[0] < 0)            # g < 1: the quiescent state is stable
        True
    """
    if not isinstance(field, VectorField):
        raise TypeError(
            f"`field` must be a VectorField (wrap F(x, u[, params]) with vector_field), got "
            f"{type(field).__name__}"
        )
    if is_concrete(dt):  # a traced dt (inside jit) is taken as it is
        dt = check_positive_float("dt", dt)
    check_choice("method", method, INTEGRATORS)
    return Discretized(field, dt, method)


@dataclasses.dataclass(frozen=True)
class Iterated:
    """The step ``(x, u[, params]) -> F^k(x)``: ``k`` steps of ``step`` with ``u`` and
    ``params`` held.

    Made by ``iterate``; equal for equal steps and ``k``, so jitted analyzers reuse their
    code.
    """

    step: Callable
    k: int

    def __call__(self, x: Any, u: Any, *params: Any) -> Any:
        return jax.lax.fori_loop(0, self.k, lambda _, y: self.step(y, u, *params), x)


def iterate(step: Callable, k: int) -> Iterated:
    """The ``k``-fold composition ``x -> F^k(x)`` of a step, its input and parameters held.

    ``F^k(x) = F(F(...F(x, u, params)..., u, params), u, params)`` under
    ``jax.lax.fori_loop`` (one traced step, whatever ``k``). The fixed points of
    ``iterate(step, k)`` are the points of period dividing ``k`` of ``step``
    (``jaxgrad.periodic_orbits``); the state may be any pytree. The bifurcation tools
    take it as a map, so ``jaxgrad.continue_branch(iterate(step, k), x0, ...)`` follows a
    ``k``-cycle through ``x0`` in a parameter: its eigenvalues are the cycle's
    multipliers, its folds and flips the cycle's (a flip is a period doubling).

    Arguments:
        step: ``step(x, u[, params])``.
        k: the number of steps, ``>= 1``.

    Returns:
        ``step_k(x, u[, params])``, itself a step.

    Example:
        >>> logistic = autonomous(lambda x, r: r * x * (1 - x))
        >>> twice = iterate(logistic, 2)
        >>> round(float(twice(jnp.asarray(0.5), None, 3.0)), 4)   # f(0.75) = 0.5625
        0.5625
    """
    check_step(step)
    k = check_positive_int("k", k)
    return Iterated(step, k)


# --------------------------------------------------------------------------- Flax nnx modules


def is_nnx_module(obj: Any) -> bool:
    """Whether ``obj`` is a Flax ``nnx.Module`` (without importing Flax when it is not loaded)."""
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(obj, nnx.Module)


@dataclasses.dataclass(frozen=True)
class ModuleStep:
    """``(*args, state) -> nnx.merge(graphdef, state)(*args)``: an nnx module as a pure function.

    Made by ``as_step``; equal for modules of equal structure (their ``GraphDef``s are
    equal), so jitted analyzers reuse their code across modules and parameter values.
    Called with ``(x, u, state)`` it is a step, with ``(h, state)`` a layer, with
    ``(x, state)`` an autonomous map: the module is called on all arguments but the last.
    """

    graphdef: Any

    def __call__(self, *args: Any) -> Any:
        from flax import nnx

        *args, state = args
        return nnx.merge(self.graphdef, state)(*args)


def as_step(system: Any, params: Any = NO_PARAMS) -> tuple[Callable, Any]:
    """``(step, params)`` for a step function or a Flax ``nnx.Module``.

    An ``nnx.Module`` is split into its structure and its parameters: ``step`` is
    ``ModuleStep(graphdef)``, which calls ``nnx.merge(graphdef, state)(*args)``, and
    ``params`` is the module's ``nnx.State`` of ``nnx.Param`` variables (or the ``params``
    given, a state of that structure: a sweep over parameter values reuses the compiled
    code). Anything else is returned as it is. Every analyzer that takes a step does this
    itself (``jacobian_product_norms(cell, h0, inputs)``); call it where a tool takes
    ``f(x, p)`` and ``params`` separately:

    - ``fixed_points``/``continue_branch``: ``step, p = as_step(cell)``, then
      ``fixed_points(autonomous(lambda h, p: step(h, u_star, p)), starts, params=p)``
      (the cell at a constant input ``u_star``, an autonomous map);
    - ``scan_landscape(lambda p: loss(step, p), p, axes)`` with ``p`` an ``nnx.State``
      (its leaves are named ``"rec.kernel.value"``; a ``Direction`` axis takes a
      direction shaped like ``p``, e.g. ``random_direction(p, key=...)``).

    A module holding variables other than ``nnx.Param`` (batch statistics, RNG state) is
    refused: its step would not be a pure function of ``(x, u, params)``.

    Arguments:
        system: a step (returned as it is) or an ``nnx.Module``.
        params: ``NO_PARAMS`` or ``None`` (the module's own parameters), or a state like
            them.

    Returns:
        ``(step, params)``.

    Raises:
        ValueError: the module holds variables other than ``nnx.Param``.

    Example:
        >>> from flax import nnx
        >>> cell = nnx.Linear(3, 3, rngs=nnx.Rngs(0))
        >>> step, p = as_step(cell)
        >>> step(jnp.ones(3), p).shape
        (3,)
    """
    if not is_nnx_module(system):
        return system, params
    from flax import nnx

    graphdef, state, rest = nnx.split(system, nnx.Param, ...)
    others = sorted({type(v).__name__ for v in jax.tree_util.tree_leaves(
        rest, is_leaf=lambda v: isinstance(v, nnx.Variable))})
    if others:
        raise ValueError(
            f"the nnx module `{type(system).__name__}` holds variables other than nnx.Param "
            f"({', '.join(others)}); jaxgrad analyses pure steps: pass a function that "
            "merges them explicitly, e.g. step(x, u, p) = nnx.merge(graphdef, p, rest)(x, u)"
        )
    return ModuleStep(graphdef), state if params is NO_PARAMS or params is None else params


def layers_as_step(layers: Any) -> tuple[ModuleStep, Any]:
    """Equal nnx layers as a step over depth: ``(step, thetas)`` with ``step(h, θ_l) = layer_l(h)``.

    A network of identical layers (same type and shapes, e.g. the hidden ``nnx.Linear``
    layers of an MLP of constant width) is a system whose time is its depth: the state is
    the activation ``h_l`` and the input of step ``l`` the parameters ``θ_l`` of layer
    ``l``. ``thetas`` stacks them along a leading axis, so ``jacobian_product_norms(step,
    h0, thetas)`` gives ``log ‖∂h_L/∂h_{L-k}‖`` for every depth lag ``k`` and
    ``lyapunov_spectrum(step, h0, thetas)`` the exponents per layer. What a network
    applies between its layers (an activation) goes into the step:
    ``lambda h, th: jnp.tanh(step(h, th))``. Layers of different widths have no common
    state: take them one by one with ``jaxgrad.analysis.layer_gradient_flow``.

    Arguments:
        layers: a sequence of ``nnx.Module`` layers of one structure (or an nnx module
            holding them in ``layers``, such as ``nnx.Sequential``).

    Returns:
        ``(step, thetas)``: ``step(h, θ) = nnx.merge(graphdef, θ)(h)`` (a ``ModuleStep``)
        and the layers' ``nnx.Param`` states stacked along a leading axis of length
        ``len(layers)``.

    Raises:
        TypeError: ``layers`` is not a sequence of nnx modules.
        ValueError: it is empty, or ``layers[i]`` differs in structure or shapes from
            ``layers[0]``.

    Example:
        >>> from flax import nnx
        >>> layers = [nnx.Linear(8, 8, rngs=nnx.Rngs(i)) for i in range(5)]
        >>> step, thetas = layers_as_step(layers)
        >>> res = jaxgrad.jacobian_product_norms(lambda h, th: jnp.tanh(step(h, th)),
        ...                                      jnp.ones(8), thetas)
        >>> res.log_norms.shape   # lags 1..5 (depth as time)
        (5,)
    """
    if is_nnx_module(layers) and hasattr(layers, "layers"):
        layers = layers.layers
    if callable(layers) or not hasattr(layers, "__len__") or isinstance(layers, (str, bytes)):
        raise TypeError(
            f"`layers` must be a sequence of nnx modules (or a module with a `layers` "
            f"list), got {type(layers).__name__}"
        )
    layers = list(layers)
    if not layers:
        raise ValueError("`layers` must hold at least one layer, got none")
    steps, states = [], []
    for i, layer in enumerate(layers):
        if not is_nnx_module(layer):
            raise TypeError(
                f"`layers[{i}]` must be an nnx module, got {type(layer).__name__} (layers "
                "without parameters, such as an activation, go into the step)"
            )
        step, state = as_step(layer)
        shapes = jax.tree_util.tree_map(jnp.shape, state)
        if i and (step != steps[0] or shapes != jax.tree_util.tree_map(jnp.shape, states[0])):
            raise ValueError(
                f"`layers[{i}]` ({type(layer).__name__}, parameter shapes {shapes}) differs "
                f"from `layers[0]` ({type(layers[0]).__name__}, "
                f"{jax.tree_util.tree_map(jnp.shape, states[0])}); only layers of one "
                "structure stack into a step over depth"
            )
        steps.append(step)
        states.append(state)
    return steps[0], jax.tree_util.tree_map(lambda *a: jnp.stack(a), *states)


# --------------------------------------------------------------------------- flat states


def check_step(step: Any, name: str = "step") -> None:
    """Raise ``TypeError`` unless ``step`` is a callable step (a ``VectorField`` is not)."""
    if isinstance(step, VectorField):
        raise TypeError(
            f"`{name}` is a VectorField (dx/dt), not a step; turn it into one with "
            f"jaxgrad.systems.discretize({name}, dt)"
        )
    if not callable(step):
        raise TypeError(f"`{name}` must be callable, got {type(step).__name__}")


def same_state_layout(out: Any, x: Any) -> bool:
    """Whether ``out`` has the pytree structure of ``x`` and each leaf its shape."""
    return jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(x) and all(
        jnp.shape(a) == jnp.shape(b)
        for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(x),
                        strict=True))


def check_state_like(out: Any, x0: Any, *, what: str = "`step(x, u)` must return a state"
                     ) -> None:
    """Raise when a step returned a state of another structure or shape than ``x0``.

    ``what`` begins the message (a vector field's check says ``"`field` must return
    dx/dt"``).
    """
    if not same_state_layout(out, x0):
        raise ValueError(
            f"{what} shaped like `x0`; got "
            f"{jax.tree_util.tree_map(jnp.shape, out)} for x0 "
            f"{jax.tree_util.tree_map(jnp.shape, x0)}"
        )


def flat_step(step: Callable, x0: Any) -> tuple[Callable, jax.Array, Callable]:
    """``(f, x0_flat, unravel)`` with ``f(x_flat, u) -> x_next_flat``.

    ``step`` is called as ``step(x, u)`` (``bind`` the parameters first). The returned
    state is checked against ``x0`` while ``f`` is traced, so a step that changes the
    state's shape fails with a message naming ``step`` and ``x0``.
    """
    x0_flat, unravel = ravel_pytree(x0)

    def f(x_flat, u):
        try:
            out = step(unravel(x_flat), u)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"`step` failed on a state shaped like `x0` "
                f"{jax.tree_util.tree_map(jnp.shape, x0)} and an input shaped like "
                f"`inputs[t]` {jax.tree_util.tree_map(jnp.shape, u)}: {err}"
            ) from err
        check_state_like(out, x0)
        out_flat, _ = ravel_pytree(out)
        return out_flat

    return f, x0_flat, unravel


def float_state(x0: Any) -> Any:
    """``x0`` with integer and boolean leaves converted to the default float dtype.

    Raises ``ValueError`` for an empty state (no leaves or no elements) or a non-finite
    one and ``TypeError`` for a complex or non-numeric leaf, naming ``x0``.
    """
    leaves = jax.tree_util.tree_leaves(x0)
    if not leaves:
        raise ValueError("`x0` must hold at least one array, got an empty pytree")
    x0 = jax.tree_util.tree_map(lambda leaf: check_array("x0", leaf), x0)
    for leaf in jax.tree_util.tree_leaves(x0):
        if jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            raise TypeError(f"`x0` must have a real floating dtype, got {leaf.dtype}")
    if sum(leaf.size for leaf in jax.tree_util.tree_leaves(x0)) == 0:
        raise ValueError(
            f"`x0` must have at least one element, got shape(s) "
            f"{jax.tree_util.tree_map(jnp.shape, x0)}"
        )
    check_finite("x0", x0)
    return x0


def check_params_finite(params: Any) -> None:
    """Every concrete numeric leaf of ``params`` is finite; the message names the leaf.

    Leaves that are not numbers (a name inside a config) and traced leaves are skipped;
    NaN weights would otherwise give NaN norms and exponents silently.
    """
    if params is NO_PARAMS:
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, complex)):
            check_finite(f"params{jax.tree_util.keystr(path)}", leaf)


def prepare(
    step: Callable, x0: Any, inputs: Any, num_steps: int | None, params: Any = NO_PARAMS
) -> tuple[Callable, jax.Array, Any]:
    """Check the arguments of a trajectory analyzer; return ``(f, x0_flat, inputs)``.

    Raises ``ValueError``/``TypeError`` naming the argument when ``step`` is not callable
    (or is a ``VectorField``), ``x0`` is empty or non-finite, ``params`` holds a NaN, or
    ``inputs`` has no time axis or disagrees with ``num_steps``. ``inputs=None`` with
    ``num_steps=T`` gives ``(T, 0)`` zero inputs. (A step returning a state unlike ``x0``
    is caught when ``f`` is traced.) An ``nnx.Module`` is taken as its step and parameters
    (``as_step``).
    """
    step, params = as_step(step, params)
    check_step(step)
    x0 = float_state(x0)
    leaves = jax.tree_util.tree_leaves(x0)
    if inputs is None:
        if num_steps is None:
            raise ValueError("give `inputs` (leading time axis T) or `num_steps` for no input")
        check_positive_int("num_steps", num_steps)
        dtype = jnp.result_type(*[jnp.asarray(leaf).dtype for leaf in leaves])
        inputs = jnp.zeros((num_steps, 0), dtype)
    else:
        length = leading_axis_length("inputs", inputs, "time")
        if length == 0:
            raise ValueError("`inputs` must have at least one time step, got length 0")
        if num_steps is not None and num_steps != length:
            raise ValueError(f"`num_steps`={num_steps} disagrees with len(inputs)={length}")
        check_finite("inputs", inputs)
    check_params_finite(params)
    f, x0_flat, _ = flat_step(bind(step, params), x0)
    return f, x0_flat, inputs


# --------------------------------------------------------------------------- jit once


def jit_with_params(core: Callable) -> Callable:
    """``run(fn, params, *args, **options)`` = ``core(bind(fn, params), *args, **options)``,
    jitted once per ``fn`` and ``options``.

    ``fn`` (the user's step or predictor) and the keyword ``options`` are static (they
    must be hashable); ``params`` (or ``NO_PARAMS``) and the positional ``args`` are
    traced, so new parameter values, states and inputs reuse the compiled code.
    """

    @functools.partial(jax.jit, static_argnames=("fn", "no_params", "options"))
    def jitted(fn, no_params, params, args, options):
        return core(bind(fn, NO_PARAMS if no_params else params), *args, **dict(options))

    @functools.wraps(core)
    def run(fn: Callable, params: Any, *args: Any, **options: Any) -> Any:
        fn, params = as_step(fn, params)
        no_params = params is NO_PARAMS
        return jitted(fn, no_params, None if no_params else params, args,
                      tuple(sorted(options.items())))

    run._cache_size = jitted._cache_size  # how many compilations (tests check reuse)
    return run


def analyzer(core: Callable) -> Callable:
    """The one analyzer wrapper: validate → bind → jit once per step function and options.

    ``core(f, x0_flat, unravel, inputs, *args, **options)`` works on flat states with the
    flat step ``f(x_flat, u)`` (see ``flat_step``). The returned
    ``run(step, x0, inputs, *args, params=NO_PARAMS, num_steps=None, **options)`` checks
    ``step``, ``x0``, ``inputs``/``num_steps`` and ``params`` (``prepare``), then calls
    ``core`` under ``jax.jit`` with ``step`` and ``options`` static and the rest traced.
    ``step`` may be a Flax ``nnx.Module`` called as ``module(x, u)``: it is split into
    ``ModuleStep(graphdef)`` (static) and its parameters (traced; ``params=`` replaces them
    by a state of the same structure), see ``as_step``.

    Example:
        >>> @analyzer
        ... def final_state(f, x0, unravel, inputs):
        ...     return unravel(jax.lax.scan(lambda x, u: (f(x, u), None), x0, inputs)[0])
        >>> p = jaxgrad.init_rate(jax.random.key(0), 4, g=0.5)
        >>> final_state(jaxgrad.rate_step, jnp.ones(4), None, params=p, num_steps=100).shape
        (4,)
    """

    def flat_core(step, x0, inputs, *args, **options):
        f, x0_flat, unravel = flat_step(step, x0)
        return core(f, x0_flat, unravel, inputs, *args, **options)

    jitted = jit_with_params(flat_core)

    @functools.wraps(core)
    def run(step: Callable, x0: Any, inputs: Any, *args: Any, params: Any = NO_PARAMS,
            num_steps: int | None = None, **options: Any) -> Any:
        step, params = as_step(step, params)
        x0 = float_state(x0)
        _, _, inputs = prepare(step, x0, inputs, num_steps, params)
        return jitted(step, params, x0, inputs, *args, **options)

    run._cache_size = jitted._cache_size
    return run
