"""Pascanu, Mikolov & Bengio's (2013) regulariser Ω against vanishing gradients.

Eq. 9 of "On the difficulty of training recurrent neural networks":

    Ω = Σ_k ( ‖(∂E/∂x_{k+1}) (∂x_{k+1}/∂x_k)‖ / ‖∂E/∂x_{k+1}‖ − 1 )²,

which asks each step's Jacobian to preserve the norm of the backpropagated error in the
direction it actually has. The paper's gradient (eq. 10) keeps only the explicit dependence
of the Jacobian factor on the weights: ``∂E/∂x_{k+1}`` is treated as a constant, and so are
the states ``x_k`` at which the Jacobian is taken (their code differentiates with respect to
``W_rec`` with both held fixed). Here both go through ``lax.stop_gradient``, so for the
Pascanu RNN ``x_{k+1} = W_rec σ(x_k) + W_in u + b`` the gradient of Ω reaches ``W_rec``
only, exactly as in the paper; for another step function it reaches whatever parameters
the step Jacobian depends on explicitly, unless a ``pullback`` says otherwise.

Their released code (``RNN.py`` of pascanur/trainingRNNs) differs from eq. 9 as printed in
two ways, both available here: it penalises the ratio of the SQUARED norms,
``(‖g J‖²/‖g‖² − 1)²`` (``squared=True``), and it averages over the time steps (and
sequences) instead of summing (``reduction="mean"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._validation import (
    check_array,
    check_choice,
    check_positive_float,
    check_positive_int,
)
from ..analysis.gradient_flow import trajectory_state_grads
from ..analysis.lyapunov import flossing_loss
from ..systems import NO_PARAMS, bind, check_state_like, flat_step, prepare

REDUCTIONS = ("sum", "mean")


class OmegaTerms(NamedTuple):
    """Ω and its pieces for one sequence of ``T`` steps (index k ↔ the step ``x_k → x_{k+1}``).

    Attributes:
        omega: the regulariser (sum, or mean over valid steps, of ``(ratio − 1)²``).
        ratios: ``(T,)`` ``‖(∂E/∂x_{k+1}) ∂x_{k+1}/∂x_k‖ / ‖∂E/∂x_{k+1}‖`` for k = 0..T−1.
        grad_norms: ``(T,)`` ``‖∂E/∂x_{k+1}‖`` (the total derivative, as BPTT sees it).
        valid: ``(T,)`` steps with ``‖∂E/∂x_{k+1}‖ > min_grad_norm``; the others add 0.
    """

    omega: jax.Array
    ratios: jax.Array
    grad_norms: jax.Array
    valid: jax.Array


def pascanu_omega_terms(
    step: Callable,
    x0: Any,
    inputs: Any,
    loss_fn: Callable,
    *,
    params: Any = NO_PARAMS,
    reduction: str = "sum",
    min_grad_norm: float = 1e-20,
    squared: bool = False,
    pullback: Callable | None = None,
) -> OmegaTerms:
    """Pascanu et al.'s Ω (eq. 9) on one trajectory, differentiable with the paper's gradient.

    ``∂E/∂x_{k+1}`` for every k comes from one backward pass with zero probes on the
    states (as ``jaxgrad.analysis.recurrent_gradient_flow``); the products
    ``(∂E/∂x_{k+1}) ∂x_{k+1}/∂x_k`` are vector-Jacobian products of each step, ``vmap``-ed
    over time. ``∂E/∂x_{k+1}`` and ``x_k`` are wrapped in ``lax.stop_gradient`` (the
    paper's choice), so ``jax.grad`` of the result with respect to ``params`` is eq. 10.

    Arguments:
        step: ``step(x, u)`` or, with ``params``, ``step(x, u, params)``; ``x`` any pytree.
        x0: initial state.
        inputs: leading time axis ``T``.
        loss_fn: ``loss_fn(states) -> scalar`` on the trajectory ``x_1..x_T`` (stacked on
            a leading axis, a pytree like ``x0``); E in the formula.
        reduction: ``"sum"`` (eq. 9) or ``"mean"`` over the valid steps (what Pascanu's
            code uses, so that the weight of Ω does not scale with T).
        min_grad_norm: steps whose ``‖∂E/∂x_{k+1}‖`` is not above this are left out
            (their ratio is undefined), as in Pascanu's code.
        squared: ``True`` for the form of Pascanu's released code, ``(ratio² − 1)²``
            (ratio of the squared norms, ``RNN.py``'s ``tmp_x/tmp_y``); ``False`` (default)
            for ``(ratio − 1)²`` as eq. 9 is printed. Both vanish at ratio 1.
        pullback: ``pullback(x_k, x_next, u, g) -> g ∂x_{k+1}/∂x_k`` (with ``params``:
            ``pullback(x_k, x_next, u, g, params)``), states and ``g`` shaped like ``x0``;
            it is called with ``x_k``, ``x_next = x_{k+1}`` and ``g = ∂E/∂x_{k+1}`` held
            constant, so it decides which parameters Ω's gradient reaches. Default: the VJP
            of ``step`` at ``x_k``. For ``h' = tanh(W h + V u + b)`` Pascanu's code uses
            ``(g ⊙ (1 − h'²)) W`` with ``h'`` constant: Ω's gradient reaches ``W`` only
            (``sequence_omega`` does this for the ``"elman_tanh"`` cell).

    Returns:
        ``OmegaTerms``. Not jitted itself: call it inside your jitted loss or update step
        (``jaxgrad.train.sequence_omega`` wraps it for a batch).

    Example:
        >>> a = 0.5   # linear RNN x' = a x: every ratio is |a|, so Ω = T (|a| - 1)^2
        >>> terms = pascanu_omega_terms(lambda x, u, p: p * x + u, jnp.ones(3),
        ...                             jnp.zeros((10, 3)), lambda xs: jnp.sum(xs[-1]),
        ...                             params=jnp.asarray(a))
        >>> float(terms.omega)   # 10 * 0.25
        2.5
    """
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
    if pullback is not None and not callable(pullback):
        raise TypeError(f"`pullback` must be callable or None, got {type(pullback).__name__}")
    if not isinstance(squared, bool):
        raise TypeError(f"`squared` must be a bool, got {type(squared).__name__}")
    check_choice("reduction", reduction, REDUCTIONS)
    check_positive_float("min_grad_norm", min_grad_norm, allow_zero=True)
    _, _, inputs = prepare(step, x0, inputs, None, params)
    f, x0_flat, unravel = flat_step(bind(step, params), x0)
    state_grads = trajectory_state_grads(f, x0_flat, unravel, inputs, loss_fn)
    grads, states = state_grads.grads, state_grads.states
    # The paper's choice: ∂E/∂x_{k+1} and the states are constants for the gradient of Ω.
    grads = jax.lax.stop_gradient(grads)
    previous = jax.lax.stop_gradient(jnp.concatenate([x0_flat[None], states[:-1]]))

    if pullback is None:
        def pulled_back(x, x_next, u, g):
            del x_next
            _, vjp = jax.vjp(lambda x: f(x, u), x)
            return vjp(g)[0]
    else:
        bound_pullback = bind(pullback, params)

        def pulled_back(x, x_next, u, g):
            out = bound_pullback(unravel(x), unravel(x_next), u, unravel(g))
            check_state_like(out, x0)
            return ravel_pytree(out)[0]

    pulled = jax.vmap(pulled_back)(previous, jax.lax.stop_gradient(states), inputs, grads)
    grad_sq = jnp.sum(grads**2, axis=1)
    valid = grad_sq > jnp.asarray(min_grad_norm, grad_sq.dtype) ** 2
    ratio_sq = jnp.sum(pulled**2, axis=1) / jnp.where(valid, grad_sq, jnp.ones_like(grad_sq))
    # sqrt with a floor keeps the gradient finite where the pulled-back vector is 0.
    tiny = jnp.asarray(jnp.finfo(ratio_sq.dtype).tiny, ratio_sq.dtype)
    ratios = jnp.sqrt(jnp.maximum(ratio_sq, tiny))
    excess = ratio_sq - 1.0 if squared else ratios - 1.0
    terms = jnp.where(valid, excess**2, jnp.zeros_like(ratios))
    omega = jnp.sum(terms)
    if reduction == "mean":
        omega = omega / jnp.maximum(jnp.sum(valid), 1).astype(omega.dtype)
    return OmegaTerms(omega, jnp.where(valid, ratios, jnp.nan), jnp.sqrt(grad_sq), valid)


def pascanu_omega(
    step: Callable,
    x0: Any,
    inputs: Any,
    loss_fn: Callable,
    *,
    params: Any = NO_PARAMS,
    reduction: str = "sum",
    min_grad_norm: float = 1e-20,
    squared: bool = False,
    pullback: Callable | None = None,
) -> jax.Array:
    """The scalar Ω of ``pascanu_omega_terms`` (Pascanu et al. 2013, eq. 9), same arguments.

    Example:
        >>> p = jaxgrad.init_pascanu(jax.random.key(0), 8, 1)
        >>> x0, u, loss = jnp.ones(8), jnp.ones((20, 1)), lambda xs: jnp.sum(xs[-1] ** 2)
        >>> grad = jax.grad(lambda p: pascanu_omega(jaxgrad.pascanu_step, x0, u, loss,
        ...                                         params=p))(p)
        >>> bool(jnp.all(grad.W_in == 0)), bool(jnp.all(grad.b == 0))  # W_rec only (eq. 10)
        (True, True)
    """
    return pascanu_omega_terms(
        step, x0, inputs, loss_fn, params=params, reduction=reduction,
        min_grad_norm=min_grad_norm, squared=squared, pullback=pullback,
    ).omega


# --------------------------------------------------------------------------- flossing


def flossing_regularizer(
    step: Callable,
    x0: Any,
    inputs: Any = None,
    *,
    num_exponents: int = 1,
    num_steps: int | None = None,
    transient: int = 0,
    qr_interval: int = 1,
    dt: float = 1.0,
    key: jax.Array | None = None,
    trajectory_gradient: bool = True,
    step_params: Callable[[Any], Any] | None = None,
) -> Callable[[Any, Any], jax.Array]:
    """Gradient flossing during training: ``Ω(params, batch) = Σ_{i≤k} λ_i²`` for ``train``.

    Wraps ``jaxgrad.analysis.flossing_loss`` (Engelken 2023, arXiv:2312.17306) as a regulariser
    ``Ω(params, batch)`` for ``jaxgrad.fit(..., regularizer=Ω, regularizer_weight=β)``,
    so every optax step descends ``L + β Σ_{i≤k} λ_i²`` and keeps the top ``k`` Lyapunov
    exponents of the network near zero while it learns.

    Arguments:
        step: ``step(x, u, params) -> x_next``, the recurrent step of the trained model.
        x0: initial state of the flossed trajectory (any pytree).
        inputs: the input stream (pytree, leading time axis): a fixed stream, or a function
            ``inputs(batch) -> stream`` that takes it from the training batch (a fresh
            stream every step); ``None`` with ``num_steps`` for an autonomous step.
        num_exponents: ``k``, the number of exponents pushed to zero.
        num_steps, transient, qr_interval, dt, key, trajectory_gradient: as for
            ``jaxgrad.analysis.flossing_loss``.
        step_params: maps the trained parameters to those ``step`` takes (default: the
            same), e.g. ``lambda p: p.cell`` when a readout is trained alongside.

    Returns:
        ``regularizer(params, batch) -> ()``.

    Example:
        >>> p = jaxgrad.init_rate(jax.random.key(0), 16, g=2.0)
        >>> omega = flossing_regularizer(jaxgrad.rate_step, jnp.ones(16), num_steps=100,
        ...                              num_exponents=2, transient=20)
        >>> bool(omega(p, None) > 0)   # λ_1² + λ_2² of the chaotic network, batch unused
        True
        >>> # in training: jaxgrad.fit(loss_fn, p, optax.adam(1e-3), batches, num_steps=500,
        >>> #                          key=key, regularizer=omega, regularizer_weight=1.0)
    """
    if not callable(step):
        raise TypeError(f"`step` must be callable, got {type(step).__name__}")
    if step_params is not None and not callable(step_params):
        raise TypeError(f"`step_params` must be callable, got {type(step_params).__name__}")
    # The options are checked here, not at the first training step inside jit.
    check_positive_int("num_exponents", num_exponents)
    check_positive_int("qr_interval", qr_interval)
    check_positive_int("transient", transient, minimum=0)
    check_positive_float("dt", dt)
    for leaf in jax.tree_util.tree_leaves(x0):
        check_array("x0", leaf)
    options = dict(num_exponents=num_exponents, num_steps=num_steps, transient=transient,
                   qr_interval=qr_interval, dt=dt, key=key,
                   trajectory_gradient=trajectory_gradient)
    select = (lambda p: p) if step_params is None else step_params

    def regularizer(params: Any, batch: Any) -> jax.Array:
        stream = inputs(batch) if callable(inputs) else inputs
        return flossing_loss(step, x0, stream, params=select(params), **options)

    return regularizer
