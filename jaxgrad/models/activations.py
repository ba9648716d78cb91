"""Activation functions as objects: the function, its bound ``max |σ'|`` and a name.

An ``Activation`` wraps an elementwise function ``σ`` with the closed-form
``γ = sup_x |σ'(x)|`` (1/4 for the logistic sigmoid, 1 for tanh) that Pascanu's bound
needs: Pascanu, Mikolov & Bengio (2013), section 3.1, ``‖∂x_t/∂x_{t-1}‖ ≤ ‖W_rec‖ γ``.
``ACTIVATIONS`` is the one registry of named shortcuts; everywhere the library takes an
``activation=`` it takes a name in it, an ``Activation``, or any elementwise callable (which
then has no ``γ``: the functions that need one say so). Derivatives come from ``jax.grad``
of the function, so a new activation needs only its forward definition.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import jax.scipy.special

from .._validation import check_choice, check_positive_float


@dataclasses.dataclass(frozen=True)
class Activation:
    """An elementwise activation ``σ``: call it like the function it wraps.

    Hashable (a frozen dataclass compared by its fields), so it can sit in a jit static
    argument such as an ``MLPConfig``; two ``Activation`` s of the same function are equal.

    Attributes:
        fn: the elementwise function ``σ(x)``.
        max_derivative: ``γ = sup_x |σ'(x)|`` if known (closed form), else ``None``; the
            functions that need it (``pascanu_bound_log_norms``) refuse an activation
            without it.
        name: a label (defaults to ``fn.__name__``).

    Example:
        >>> softsign = Activation(jax.nn.soft_sign, max_derivative=1.0)
        >>> float(softsign(jnp.array(1.0))), softsign.name
        (0.5, 'soft_sign')
        >>> ACTIVATIONS["sigmoid"].max_derivative
        0.25
    """

    fn: Callable[[jax.Array], jax.Array]
    max_derivative: float | None = None
    name: str = ""

    def __post_init__(self):
        if isinstance(self.fn, Activation):
            raise TypeError("`fn` must be a plain function, got an Activation (use it as it is)")
        if not callable(self.fn):
            raise TypeError(f"`fn` must be callable, got {type(self.fn).__name__}")
        if self.max_derivative is not None:
            object.__setattr__(self, "max_derivative",
                               check_positive_float("max_derivative", self.max_derivative))
        if not isinstance(self.name, str):
            raise TypeError(f"`name` must be a string, got {type(self.name).__name__}")
        if not self.name:
            object.__setattr__(self, "name", getattr(self.fn, "__name__", type(self.fn).__name__))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)

    def derivative(self) -> Callable[[jax.Array], jax.Array]:
        """Elementwise ``σ'(x)`` by ``jax.grad`` (vectorised over any shape)."""
        return jnp.vectorize(jax.grad(self.fn))

    def require_max_derivative(self, argument: str = "activation") -> float:
        """``γ``, or a ``ValueError`` naming ``argument`` when it is unknown."""
        if self.max_derivative is None:
            raise ValueError(
                f"`{argument}` {self.name!r} has no known sup|σ'| (max_derivative): pass "
                f"jaxgrad.models.Activation(fn, max_derivative=γ) or a name in "
                f"{sorted(ACTIVATIONS)}"
            )
        return self.max_derivative


def _identity(x: jax.Array) -> jax.Array:
    return x


#: The named shortcuts. ``max_derivative`` is the closed form of ``sup_x |σ'(x)|``
#: (GELU's is Φ(√2) + √2 φ(√2) ≈ 1.1289 at x = √2; erf's is erf'(0) = 2/√π).
ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(jax.nn.sigmoid, 0.25, "sigmoid"),
        Activation(jnp.tanh, 1.0, "tanh"),
        Activation(jax.nn.relu, 1.0, "relu"),
        Activation(jax.nn.leaky_relu, 1.0, "leaky_relu"),  # negative slope 0.01
        Activation(jax.nn.elu, 1.0, "elu"),
        Activation(jax.nn.gelu, 1.1289, "gelu"),
        Activation(_identity, 1.0, "identity"),
        # mean-field theory has its Gaussian kernels in closed form
        Activation(jax.scipy.special.erf, 2 / math.sqrt(math.pi), "erf"),
    )
}


class _MaxDerivatives(Mapping):
    """Read-only view ``name -> ACTIVATIONS[name].max_derivative`` (not a second table)."""

    def __getitem__(self, name: str) -> float:
        return ACTIVATIONS[name].max_derivative

    def __iter__(self):
        return iter(ACTIVATIONS)

    def __len__(self) -> int:
        return len(ACTIVATIONS)

    def __repr__(self) -> str:
        return repr(dict(self))


#: ``sup_x |σ'(x)|`` by name: a read-only view of ``ACTIVATIONS`` (kept for old code;
#: prefer ``get_activation(name).max_derivative``).
MAX_DERIVATIVE: Mapping[str, float] = _MaxDerivatives()

ActivationLike = str | Activation | Callable[[jax.Array], jax.Array]


def get_activation(name: ActivationLike, argument: str = "activation") -> Activation:
    """The ``Activation`` for a name in ``ACTIVATIONS``, an ``Activation``, or a callable.

    A plain callable is wrapped as ``Activation(fn)`` (no known ``max_derivative``); the
    wrapper compares equal for the same function, so jit caches keyed on it still hit.

    Arguments:
        name: the activation.
        argument: the argument name used in error messages.

    Raises:
        ValueError: for an unknown name, listing the known ones.
        TypeError: for anything that is neither a string nor callable.

    Example:
        >>> get_activation("tanh") == Activation(jnp.tanh, 1.0, "tanh")
        True
        >>> get_activation(jnp.sin).max_derivative is None
        True
    """
    if isinstance(name, Activation):
        return name
    if isinstance(name, str):
        return ACTIVATIONS[check_choice(argument, name, ACTIVATIONS)]
    if callable(name):
        return Activation(name)
    raise TypeError(f"`{argument}` must be a name in {sorted(ACTIVATIONS)}, an Activation or a "
                    f"callable, got {type(name).__name__} {name!r}")


def activation_derivative(name: ActivationLike) -> Callable[[jax.Array], jax.Array]:
    """Elementwise derivative ``σ'(x)`` of the activation ``name``, by ``jax.grad``.

    ``name`` is anything ``get_activation`` takes.

    Example:
        >>> float(activation_derivative("sigmoid")(jnp.array(0.0)))
        0.25
    """
    return get_activation(name).derivative()
