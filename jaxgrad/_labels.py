"""Integer class labels: a range check by name, and a cross-entropy that never wraps.

``optax.softmax_cross_entropy_with_integer_labels`` indexes the logits with the label, so
a label past the last class gives NaN and a negative one wraps round to a class from the
end (-1 is scored as the last class): a plausible, wrong number. Concrete labels are
checked before any computation (``check_class_labels``); under ``jit`` the values are
unknown, so ``softmax_cross_entropy`` makes the loss and its gradient NaN for an
out-of-range label instead.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._validation import is_concrete


def check_class_labels(name: str, labels: Any, num_classes: int) -> jax.Array:
    """``labels`` as an integer array; raise if concrete labels lie outside ``[0, num_classes)``.

    Raises:
        TypeError: ``labels`` is not an integer array.
        ValueError: a concrete label is out of range, e.g. "`y` must hold class labels in
            [0, 10), got 12 at index 3". (Tracers are not checked; see
            ``softmax_cross_entropy``.)
    """
    if isinstance(labels, (str, bytes)) or labels is None:
        raise TypeError(f"`{name}` must be integer class labels, got {type(labels).__name__}")
    arr = jnp.asarray(labels)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"`{name}` must be integer class labels, got dtype {arr.dtype}")
    if is_concrete(arr):
        values = np.asarray(arr)
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            index = where[0] if len(where) == 1 else where
            raise ValueError(
                f"`{name}` must hold class labels in [0, {num_classes}), got "
                f"{values[where]} at index {index}"
            )
    return arr


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example ``optax.softmax_cross_entropy_with_integer_labels``, NaN for a bad label.

    ``logits`` ``(..., K)``, integer ``labels`` ``(...)``. Where a label is outside
    ``[0, K)`` (traced values cannot be refused) that example's loss is multiplied by
    NaN, so it and every gradient through it are NaN rather than a wrapped or truncated
    number (a product, not a sum, carries the NaN into the backward pass).
    """
    valid = (labels >= 0) & (labels < logits.shape[-1])
    one, nan = jnp.ones((), logits.dtype), jnp.full((), jnp.nan, logits.dtype)
    nan_if_invalid = jnp.where(valid, one, nan)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels) * nan_if_invalid
