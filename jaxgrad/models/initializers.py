"""Weight initialisers for deep MLPs and recurrent matrices.

Every initialiser has the signature ``init(key, shape, dtype) -> array`` of
``jax.nn.initializers``; where jax already provides one (Glorot, He, orthogonal) it is
used as it is. ``shape`` is ``(fan_in, fan_out)`` and ``N`` below is the fan-in.

- ``normal``: N(0, σ²) with a given ``std`` (the web article "Deep Learning:
  Vanishing Gradient Problem Explained" uses σ = 0.01).
- ``glorot`` / ``xavier``: N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010).
- ``he`` / ``kaiming``: N(0, 2/fan_in) (He et al. 2015).
- ``orthogonal``: Saxe et al. 2014, scaled by ``gain``.
- ``kumar``: N(0, (3.6/√N)²) for the logistic function (Kumar 2017, arXiv:1704.08863).
- ``yilmaz_poli``: N(max(-1, -8/N), std²) for the logistic function (Yilmaz & Poli 2022,
  Neural Networks 153:87). The seed gives the mean; the spread is ours to choose and
  defaults to 1/√N (LeCun scale), ``std=`` changes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._validation import check_choice, check_positive_float

Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]


def _normal(std: float, mean: float = 0.0) -> Initializer:
    def init(key, shape, dtype=jnp.float32):
        return mean + std * jax.random.normal(key, shape, dtype)

    return init


def kumar(key, shape, dtype=jnp.float32):
    """Kumar (2017): N(0, (3.6/√N)²), N the fan-in, for sigmoid networks."""
    return _normal(3.6 / math.sqrt(shape[0]))(key, shape, dtype)


def yilmaz_poli_mean(fan_in: int) -> float:
    """The negative mean max(-1, -8/N) of Yilmaz & Poli (2022)."""
    return max(-1.0, -8.0 / fan_in)


def yilmaz_poli(std: float | None = None) -> Initializer:
    """Yilmaz & Poli (2022): N(max(-1, -8/N), std²), std defaulting to 1/√N."""

    def init(key, shape, dtype=jnp.float32):
        n = shape[0]
        s = 1.0 / math.sqrt(n) if std is None else std
        return _normal(s, yilmaz_poli_mean(n))(key, shape, dtype)

    return init


INITIALIZERS: dict[str, Callable[..., Initializer]] = {
    "normal": lambda std=0.01: _normal(check_positive_float("std", std)),
    "glorot": lambda: jax.nn.initializers.glorot_normal(),
    "xavier": lambda: jax.nn.initializers.glorot_normal(),
    "he": lambda: jax.nn.initializers.he_normal(),
    "kaiming": lambda: jax.nn.initializers.he_normal(),
    "orthogonal": lambda gain=1.0: jax.nn.initializers.orthogonal(scale=gain),
    "kumar": lambda: kumar,
    "yilmaz_poli": yilmaz_poli,
}


def get_initializer(name: str, **options: Any) -> Initializer:
    """The initialiser called ``name`` with its ``options`` (``std=`` for normal, ``gain=``...).

    Example:
        >>> w = get_initializer("normal", std=0.01)(jax.random.key(0), (100, 100))
    """
    check_choice("init", name, INITIALIZERS)
    try:
        return INITIALIZERS[name](**options)
    except TypeError as err:
        raise TypeError(f"bad options {options} for init {name!r}: {err}") from None
