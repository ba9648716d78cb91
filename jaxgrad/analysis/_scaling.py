"""Exact scaling by powers of two, shared by the analyzers that work in log space.

Multiplying by ``2**k`` changes only a float's exponent, so a vector or matrix rescaled by
it keeps every bit of its mantissa: products of step Jacobians, backpropagated gradients
and norms are rescaled this way and their logs carried as integers, so that a gradient of
1e-300 keeps an exact log-norm in float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def pow2(k: jax.Array, dtype: Any) -> jax.Array:
    """``2**k`` exactly, for integer ``k`` in the normal exponent range of ``dtype``."""
    info = jnp.finfo(dtype)
    int_type = jnp.dtype(f"int{info.bits}")
    bits = (k.astype(int_type) + (info.maxexp - 1)) << info.nmant
    return jax.lax.bitcast_convert_type(bits, dtype)


def mul_pow2(x: jax.Array, k: jax.Array) -> jax.Array:
    """``x · 2**k`` for integer ``k``, exact unless the result leaves the normal range.

    ``jnp.ldexp`` builds ``2**k`` as one float, which flushes to 0 or overflows for the
    shifts used here; three exact factors of at most ``2**±(bias−1)`` each do not (the
    running product moves monotonically from ``x`` to the result, so it only
    underflows or overflows when the result does).
    """
    limit = 3 * (jnp.finfo(x.dtype).maxexp - 2)
    k = jnp.clip(k, -limit, limit)
    k1 = k // 3
    k2 = (k - k1) // 2
    return x * pow2(k1, x.dtype) * pow2(k2, x.dtype) * pow2(k - k1 - k2, x.dtype)


def pow2_exponent(m: jax.Array) -> jax.Array:
    """int32 ``e`` with ``m = f · 2**e``, ``f ∈ [0.5, 1)``, read from the bits of a positive
    normal ``m`` (as ``jnp.frexp``, in a few operations)."""
    info = jnp.finfo(m.dtype)
    bits = jax.lax.bitcast_convert_type(m, jnp.dtype(f"uint{info.bits}"))
    biased = (bits >> info.nmant).astype(jnp.int32) & (2 * info.maxexp - 1)
    return biased - (info.maxexp - 2)
