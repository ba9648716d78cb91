"""Things that measure a system: any step ``step(x, u, params)`` or flow goes in.

The face of ``jaxgrad.analysis``: every public name is here (``jaxgrad.analysis.hopf_curve``),
each analyzer with its result type beside it.

- gradients through time and depth: ``jacobian_product_norms`` (+ ``fit_log_rate``),
  ``spectral_radius``/``spectral_norm``, ``mlp_gradient_flow``/``recurrent_gradient_flow``,
  ``layer_gradient_flow`` (any sequence of layers), ``final_state_sensitivities``;
- chaos: ``lyapunov_spectrum`` (on the QR accumulator ``tangent_basis_init``/``update``),
  ``kaplan_yorke_dimension``, ``entropy_rate``, gradient flossing (``floss``,
  ``flossing_loss``);
- structure: ``fixed_points``, ``periodic_orbits``, ``slow_points``, limit cycles,
  continuation (``continue_branch``, ``locate_bifurcation``, ``fold_curve``, ``hopf_curve``,
  ``switch_branch``), orbit diagrams, hysteresis and basins;
- mean fields: signal propagation in deep random networks (``q_star``, ``chi_1``,
  ``critical_sigma_w2``, ...) and the rate network's (``rate_mean_field``);
- curvature: ``hessian_eigenvalues``, ``hessian_trace``, ``hessian_spectral_density``.

Modules are named for what they hold, never like a function of this face
(``fixed_point_search.py`` holds ``fixed_points``, ``slow_point_search.py`` ``slow_points``).
"""

from .continuation import BifurcationPoint as BifurcationPoint
from .continuation import BogdanovTakensPoint as BogdanovTakensPoint
from .continuation import Branch as Branch
from .continuation import CuspPoint as CuspPoint
from .continuation import FoldCurve as FoldCurve
from .continuation import GeneralizedHopfPoint as GeneralizedHopfPoint
from .continuation import HopfCurve as HopfCurve
from .continuation import continue_branch as continue_branch
from .continuation import fold_curve as fold_curve
from .continuation import hopf_curve as hopf_curve
from .continuation import locate_bifurcation as locate_bifurcation
from .continuation import switch_branch as switch_branch
from .fixed_point_search import LOSS_OF_STABILITY_LABELS as LOSS_OF_STABILITY_LABELS
from .fixed_point_search import STABILITY_LABELS as STABILITY_LABELS
from .fixed_point_search import FixedPoints as FixedPoints
from .fixed_point_search import FixedPoints1D as FixedPoints1D
from .fixed_point_search import fixed_points as fixed_points
from .fixed_point_search import fixed_points_1d as fixed_points_1d
from .gradient_flow import LOSSES as LOSSES
from .gradient_flow import LayerGradientFlow as LayerGradientFlow
from .gradient_flow import MLPGradientFlow as MLPGradientFlow
from .gradient_flow import RecurrentGradientFlow as RecurrentGradientFlow
from .gradient_flow import ScaledNorm as ScaledNorm
from .gradient_flow import layer_gradient_flow as layer_gradient_flow
from .gradient_flow import mlp_gradient_flow as mlp_gradient_flow
from .gradient_flow import recurrent_gradient_flow as recurrent_gradient_flow
from .gradient_flow import scaled_norm as scaled_norm
from .gradient_flow import tree_scaled_norm as tree_scaled_norm
from .hessian import HessianEigen as HessianEigen
from .hessian import HessianTrace as HessianTrace
from .hessian import SpectralDensity as SpectralDensity
from .hessian import hessian_eigenvalues as hessian_eigenvalues
from .hessian import hessian_spectral_density as hessian_spectral_density
from .hessian import hessian_trace as hessian_trace
from .jacobian import JacobianProductNorms as JacobianProductNorms
from .jacobian import fit_log_rate as fit_log_rate
from .jacobian import jacobian_product_norms as jacobian_product_norms
from .limit_cycles import CycleBranch as CycleBranch
from .limit_cycles import LimitCycle as LimitCycle
from .limit_cycles import PoincareSection as PoincareSection
from .limit_cycles import cycle_branch as cycle_branch
from .limit_cycles import limit_cycle as limit_cycle
from .limit_cycles import poincare_section as poincare_section
from .lyapunov import FlossingDiverged as FlossingDiverged
from .lyapunov import FlossingTrace as FlossingTrace
from .lyapunov import LyapunovSpectrum as LyapunovSpectrum
from .lyapunov import TangentBasisState as TangentBasisState
from .lyapunov import entropy_rate as entropy_rate
from .lyapunov import floss as floss
from .lyapunov import flossing_loss as flossing_loss
from .lyapunov import kaplan_yorke_dimension as kaplan_yorke_dimension
from .lyapunov import lyapunov_spectrum as lyapunov_spectrum
from .lyapunov import tangent_basis_init as tangent_basis_init
from .lyapunov import tangent_basis_update as tangent_basis_update
from .mean_field import RateMeanField as RateMeanField
from .mean_field import rate_mean_field as rate_mean_field
from .orbits import Basins as Basins
from .orbits import HysteresisSweep as HysteresisSweep
from .orbits import OrbitDiagram as OrbitDiagram
from .orbits import basins as basins
from .orbits import hysteresis_sweep as hysteresis_sweep
from .orbits import orbit_diagram as orbit_diagram
from .periodic import PeriodicOrbits as PeriodicOrbits
from .periodic import periodic_orbits as periodic_orbits
from .sensitivity import FinalStateSensitivities as FinalStateSensitivities
from .sensitivity import final_state_sensitivities as final_state_sensitivities
from .signal_propagation import CriticalPoint as CriticalPoint
from .signal_propagation import DepthScales as DepthScales
from .signal_propagation import MeanFieldTrajectory as MeanFieldTrajectory
from .signal_propagation import QStar as QStar
from .signal_propagation import RandomMLPSignal as RandomMLPSignal
from .signal_propagation import c_map as c_map
from .signal_propagation import chi_1 as chi_1
from .signal_propagation import critical_sigma_w2 as critical_sigma_w2
from .signal_propagation import depth_scales as depth_scales
from .signal_propagation import gaussian_expectation as gaussian_expectation
from .signal_propagation import mean_field_trajectory as mean_field_trajectory
from .signal_propagation import q_map as q_map
from .signal_propagation import q_star as q_star
from .signal_propagation import random_mlp_signal as random_mlp_signal
from .slow_point_search import SlowPoints as SlowPoints
from .slow_point_search import slow_points as slow_points
from .spectral import SpectralEstimate as SpectralEstimate
from .spectral import spectral_norm as spectral_norm
from .spectral import spectral_radius as spectral_radius

__all__ = [
    # jacobian
    "jacobian_product_norms", "JacobianProductNorms", "fit_log_rate",
    # spectral
    "spectral_radius", "spectral_norm", "SpectralEstimate",
    # gradient_flow
    "mlp_gradient_flow", "MLPGradientFlow", "recurrent_gradient_flow", "RecurrentGradientFlow",
    "scaled_norm", "tree_scaled_norm", "ScaledNorm", "LOSSES",
    # sensitivity
    "final_state_sensitivities", "FinalStateSensitivities",
    # lyapunov
    "lyapunov_spectrum", "LyapunovSpectrum", "kaplan_yorke_dimension", "entropy_rate", "floss",
    "FlossingTrace", "FlossingDiverged", "flossing_loss",
    "tangent_basis_init", "tangent_basis_update", "TangentBasisState",
    # fixed_point_search
    "fixed_points", "FixedPoints", "fixed_points_1d", "FixedPoints1D", "STABILITY_LABELS",
    "LOSS_OF_STABILITY_LABELS",
    # periodic
    "periodic_orbits", "PeriodicOrbits",
    # slow_point_search
    "slow_points", "SlowPoints",
    # continuation
    "continue_branch", "Branch", "BifurcationPoint", "locate_bifurcation", "switch_branch",
    "fold_curve", "FoldCurve", "CuspPoint", "BogdanovTakensPoint", "hopf_curve", "HopfCurve",
    "GeneralizedHopfPoint",
    # limit_cycles
    "limit_cycle", "LimitCycle", "cycle_branch", "CycleBranch", "poincare_section",
    "PoincareSection",
    # orbits
    "orbit_diagram", "OrbitDiagram", "hysteresis_sweep", "HysteresisSweep", "basins", "Basins",
    # signal_propagation
    "gaussian_expectation", "q_map", "q_star", "QStar", "chi_1", "c_map", "mean_field_trajectory",
    "MeanFieldTrajectory", "depth_scales", "DepthScales", "critical_sigma_w2", "CriticalPoint",
    "random_mlp_signal", "RandomMLPSignal",
    # mean_field
    "rate_mean_field", "RateMeanField",
    # hessian
    "hessian_eigenvalues", "HessianEigen", "hessian_trace", "HessianTrace",
    "hessian_spectral_density", "SpectralDensity",
    "LayerGradientFlow",
    "layer_gradient_flow",
]
