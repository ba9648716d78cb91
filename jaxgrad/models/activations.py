"""Activation functions, their derivatives, and the bound ``max |σ'|`` used by Pascanu's bound.

The derivatives are computed by ``jax.grad`` of the activation, so a new activation
needs only its forward definition. ``MAX_DERIVATIVE`` holds the closed-form
``γ = sup_x |σ'(x)|`` (1/4 for the logistic sigmoid, 1 for tanh): Pascanu, Mikolov &
Bengio (2013), section 3.1, bound ``‖∂x_t/∂x_{t-1}‖ ≤ ‖W_rec‖ γ``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special

from .._validation import check_choice

Activation = Callable[[jax.Array], jax.Array]

ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,  # negative slope 0.01
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "identity": lambda x: x,
    "erf": jax.scipy.special.erf,  # mean-field theory has its Gaussian kernels in closed form
}

#: sup_x |σ'(x)| for each activation (closed forms; GELU's is Φ(√2) + √2 φ(√2) ≈ 1.1289 at x = √2).
MAX_DERIVATIVE: dict[str, float] = {
    "sigmoid": 0.25,
    "tanh": 1.0,
    "relu": 1.0,
    "leaky_relu": 1.0,
    "elu": 1.0,
    "gelu": 1.1289,
    "identity": 1.0,
    "erf": 2 / math.sqrt(math.pi),  # erf'(0)
}


def get_activation(name: str) -> Activation:
    """The activation function called ``name`` (one of ``ACTIVATIONS``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]


def activation_derivative(name: str) -> Activation:
    """Elementwise derivative ``σ'(x)`` of the activation ``name``, by ``jax.grad``.

    Example:
        >>> float(activation_derivative("sigmoid")(jnp.array(0.0)))
        0.25
    """
    f = get_activation(name)
    return jnp.vectorize(jax.grad(f))
