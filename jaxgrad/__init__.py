"""jaxgrad: vanishing and exploding gradients as a property of a dynamical system.

The top level holds the subpackages, as modules, and the few dozen names a user types most
(``__all__``). Every public name lives in the face of its subpackage, each function with its
result type beside it (``jaxgrad.analysis.lyapunov_spectrum`` and
``jaxgrad.analysis.LyapunovSpectrum``):

- ``jaxgrad.systems``: the one system protocol, ``step(x, u, params) -> x_next`` over
  pytree states: ``autonomous``, ``vector_field`` + ``discretize`` (the one RK4/Euler),
  ``iterate``, ``bind``, ``NO_PARAMS``; ``as_step``/``layers_as_step`` turn a Flax nnx
  module or a list of equal layers into ``(step, params)``.
- ``jaxgrad.flows``: ``integrate``, a ``VectorField`` solved by an adaptive diffrax solver
  (Tsit5, or Kvaerno5 for stiff flows), with ``converged`` and ``IntegrationError``.
- ``jaxgrad.models``: pure step functions ``step(x, u, params)`` over pytree parameters
  (Pascanu RNN, one-unit net, Doya's neuron, deep MLPs, LSTM, GRU, rate networks);
  recurrent cells as objects (``PascanuCell``, ``ElmanCell``, ``LSTMCell``, ``GRUCell``,
  ``RateCell``, ``NnxCell`` for a Flax nnx module) and activations as ``Activation``
  objects (a name stays a shortcut).
- ``jaxgrad.analysis``: analyzers that take any step function (``step(x, u)``, or with
  ``params=``): Jacobian products, spectra, gradient flow (``layer_gradient_flow`` for any
  list of layers), Lyapunov spectra (on the QR accumulator ``tangent_basis_init``/
  ``tangent_basis_update``), signal propagation, fixed points, periodic orbits, slow
  points, continuation (folds, flips, Hopf points, branch points and branch switching),
  limit cycles of flows, orbit diagrams, sensitivities, Hessian spectra.
- ``jaxgrad.landscape``: ``scan_landscape``, directions, ``find_cliffs`` and ``sweep``.
- ``jaxgrad.train``: ``train_steps`` (a pure scan of optax updates, for
  ``jax.jit``/``jax.vmap``), ``train_until`` (updates until a stop rule holds, per member
  under ``vmap``), ``fit`` (the host driver on it, with checkpoints), remedies,
  Pascanu's Ω, the flossing regulariser, tasks and data.
- ``jaxgrad.io``: files that are never half-written (``write_atomic``).

jaxgrad 0.1 re-exported every public name here; in 0.2 the other names are reached through
their subpackage (``jaxgrad.analysis.hopf_curve``). For one release ``jaxgrad.hopf_curve``
still works and warns (``DeprecationWarning``) with the new place.

Example:
    >>> res = jaxgrad.jacobian_product_norms(lambda x, u: 0.5 * x + u, jnp.ones(3),
    ...                                      jnp.zeros((50, 3)))
    >>> rate, _ = jaxgrad.fit_log_rate(res.log_norms)
    >>> round(float(rate), 3)                           # log 0.5 per step
    -0.693
    >>> jaxgrad.analysis.JacobianProductNorms is type(res)
    True
"""

import warnings as _warnings

from . import analysis as analysis
from . import flows as flows
from . import io as io
from . import landscape as landscape
from . import models as models
from . import systems as systems
from . import train as train
from .analysis import chi_1 as chi_1
from .analysis import continue_branch as continue_branch
from .analysis import fit_log_rate as fit_log_rate
from .analysis import fixed_points as fixed_points
from .analysis import hessian_eigenvalues as hessian_eigenvalues
from .analysis import hessian_trace as hessian_trace
from .analysis import jacobian_product_norms as jacobian_product_norms
from .analysis import locate_bifurcation as locate_bifurcation
from .analysis import lyapunov_spectrum as lyapunov_spectrum
from .analysis import mlp_gradient_flow as mlp_gradient_flow
from .analysis import periodic_orbits as periodic_orbits
from .analysis import slow_points as slow_points
from .analysis import spectral_radius as spectral_radius
from .flows import integrate as integrate
from .landscape import Direction as Direction
from .landscape import find_cliffs as find_cliffs
from .landscape import scan_landscape as scan_landscape
from .landscape import sweep as sweep
from .models import DoyaParams as DoyaParams
from .models import MLPConfig as MLPConfig
from .models import RateParams as RateParams
from .models import doya_step as doya_step
from .models import gru_step as gru_step
from .models import init_gru as init_gru
from .models import init_lstm as init_lstm
from .models import init_mlp as init_mlp
from .models import init_pascanu as init_pascanu
from .models import init_rate as init_rate
from .models import lstm_step as lstm_step
from .models import mlp_apply as mlp_apply
from .models import pascanu_step as pascanu_step
from .models import rate_step as rate_step
from .models import unroll as unroll
from .systems import autonomous as autonomous
from .systems import discretize as discretize
from .systems import iterate as iterate
from .systems import vector_field as vector_field
from .train import fit as fit
from .train import get_task as get_task
from .train import init_train_state as init_train_state
from .train import train_steps as train_steps

__version__ = "0.2.0"

# The subpackages and modules, as modules: ``jaxgrad.analysis.hopf_curve``.
_SUBPACKAGES = ("systems", "flows", "models", "analysis", "landscape", "train", "io")

# The names a user types most; everything else is in a subpackage's ``__all__``.
__all__ = [
    # systems and flows
    "autonomous", "vector_field", "discretize", "iterate", "integrate",
    # models
    "unroll", "init_pascanu", "pascanu_step", "DoyaParams", "doya_step", "RateParams",
    "init_rate", "rate_step", "init_lstm", "lstm_step", "init_gru", "gru_step", "MLPConfig",
    "init_mlp", "mlp_apply",
    # analysis
    "jacobian_product_norms", "fit_log_rate", "spectral_radius", "mlp_gradient_flow",
    "lyapunov_spectrum", "chi_1", "fixed_points", "periodic_orbits", "slow_points",
    "continue_branch", "locate_bifurcation", "hessian_eigenvalues", "hessian_trace",
    # landscape
    "scan_landscape", "Direction", "find_cliffs", "sweep",
    # train
    "train_steps", "fit", "init_train_state", "get_task",
]


def _moved() -> dict[str, str]:
    """``{name: subpackage}`` for every public name of a subpackage that is not in ``__all__``."""
    moved = {}
    for package in _SUBPACKAGES:
        for name in globals()[package].__all__:
            if name not in __all__:
                moved.setdefault(name, package)
    return moved


def __getattr__(name: str):
    """``jaxgrad.<name>`` for a name that moved to a subpackage in 0.2: the object, with a
    ``DeprecationWarning`` naming its new place (for one release)."""
    package = _moved().get(name)
    if package is None:
        raise AttributeError(f"module 'jaxgrad' has no attribute {name!r}")
    _warnings.warn(
        f"jaxgrad.{name} is deprecated: use jaxgrad.{package}.{name} (jaxgrad 0.2 keeps only "
        f"the most used names at the top level; this alias goes in the next release)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(globals()[package], name)


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBPACKAGES, "__version__"])
