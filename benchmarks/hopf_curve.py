"""(h) A Hopf curve over 200 continuation steps: time per step.

FitzHugh-Nagumo ``v' = v - v³/3 - w + I``, ``w' = ε(v + a - b w)`` (ε = 0.08, a = 0.7),
its Hopf curve in ``(I, b)`` from ``b = 0.8`` by ``jaxgrad.analysis.hopf_curve``: 200
pseudo-arclength steps (``ds = ds_max = 0.01``, so every step is taken at the same size and
all 200 land inside ``b ∈ [0.8, 3.4]``) on Kuznetsov's standard system (7 unknowns), the
first Lyapunov coefficient at every point, and the search for Bogdanov-Takens and
generalised Hopf points, in float64. The record gives the steady-state time of the whole
call (after a compiling call, whose time is ``first_call_seconds``) and ``seconds_per_step``.

Agreement: the curve against its closed form ``v = -√(1 - εb)``,
``I = v³/3 - v + (v + a)/b``, ``κ = ω² = ε(1 - εb²)`` (``max_abs_error_closed_form``).

Peers: none. A NumPy continuation of the same system (predictor, Newton corrector with
the Jacobian of the 7-unknown system, tangent update, and l_1 from second and third
derivatives at every point) is a program of its own rather than a loop a user writes in
a few lines; the workload records jaxgrad only.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxgrad

from ._harness import block, time_call

ID = "h"
TITLE = "Hopf curve continuation (FitzHugh-Nagumo), time per step"

EPS, A = 0.08, 0.7


def _fhn(z, u, p):
    return jnp.stack([z[0] - z[0] ** 3 / 3 - z[1] + p["I"],
                      p["eps"] * (z[0] + p["a"] - p["b"] * z[1])])


FIELD = jaxgrad.vector_field(_fhn)


def closed_form_error(curve) -> float:
    """Largest ``|x - x(b)|``, ``|I - I(b)|``, ``|κ - κ(b)|`` over the valid rows."""
    ok = np.asarray(curve.valid)
    b = np.asarray(curve.p2)[ok]
    v = -np.sqrt(1 - EPS * b)
    errors = [np.asarray(curve.x)[ok] - np.stack([v, (v + A) / b], 1),
              np.asarray(curve.p)[ok] - (v ** 3 / 3 - v + (v + A) / b),
              np.asarray(curve.kappa)[ok] - EPS * (1 - EPS * b * b)]
    return float(max(np.max(np.abs(e)) for e in errors))


def run(quick: bool, sizes: dict | None = None) -> list[dict]:
    num_steps = (sizes or {}).get("num_steps", 20 if quick else 200)
    repeats = 2 if quick else 5
    with jax.enable_x64(True):
        params = {"I": 0.33, "eps": EPS, "a": A, "b": 0.8}
        x0 = jnp.array([-1.0, -0.4])

        def call():
            curve = jaxgrad.analysis.hopf_curve(FIELD, x0, params=params, param="I", param2="b",
                                                p2_range=(0.8, 3.4), ds=0.01, ds_max=0.01,
                                                num_steps=num_steps)
            return block(curve)

        start = time.perf_counter()
        curve = call()
        first = time.perf_counter() - start
        seconds = time_call(call, repeats=repeats, warmup=0)
        valid = int(np.sum(np.asarray(curve.valid)))
    return [{"workload": f"(h) Hopf curve of FitzHugh-Nagumo in (I, b), {num_steps} "
                         "continuation steps, float64",
             "implementation": "jaxgrad", "seconds": seconds,
             "seconds_per_step": seconds / num_steps, "first_call_seconds": first,
             "num_steps": num_steps, "num_valid_points": valid,
             "max_abs_error_closed_form": closed_form_error(curve),
             "num_generalized_hopf": len(curve.generalized_hopf),
             "num_bogdanov_takens": len(curve.bogdanov_takens)}]
