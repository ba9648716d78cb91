"""Remedies for vanishing and exploding gradients as optax pieces.

- Norm clipping (Pascanu et al. 2013, Algorithm 1): ``g ← g · min(1, c/‖g‖)``, optax's
  ``clip_by_global_norm``.
- Value clipping (Mikolov 2012): ``g_i ← clip(g_i, -c, c)``, optax's ``clip``.
- Rprop (Riedmiller & Braun 1993): sign-based steps, optax's ``rprop``.
- The regulariser Ω (Pascanu et al. 2013, eq. 9) is a term ``fit(..., regularizer=)``
  adds to the loss; initialisers, residual connections and normalisation live in the
  models (``MLPConfig(init=..., residual=..., norm=...)``).
"""

from __future__ import annotations

import optax

from .._validation import check_optimizer, check_positive_float


def with_clipping(
    optimizer: optax.GradientTransformation,
    *,
    max_norm: float | None = None,
    max_value: float | None = None,
) -> optax.GradientTransformation:
    """``optimizer`` preceded by value clipping and/or global-norm clipping of the gradient.

    Value clipping (``|g_i| <= max_value``) is applied first, then norm clipping
    (``‖g‖₂ <= max_norm``), then ``optimizer``; with neither it returns ``optimizer``.

    Example:
        >>> opt = with_clipping(optax.sgd(0.01), max_norm=1.0)
    """
    check_optimizer(optimizer)
    parts = []
    if max_value is not None:
        parts.append(optax.clip(check_positive_float("max_value", max_value)))
    if max_norm is not None:
        parts.append(optax.clip_by_global_norm(check_positive_float("max_norm", max_norm)))
    if not parts:
        return optimizer
    return optax.chain(*parts, optimizer)
