"""jaxgrad: vanishing and exploding gradients as a property of a dynamical system.

The public surface. Models (``jaxgrad.models``) are pure step functions over pytree
parameters; analyzers (``jaxgrad.analysis``) take any step function
``step(x, u)`` or ``step(x, u, params)``.
"""

from .analysis._system import LOSS_OF_STABILITY_LABELS as LOSS_OF_STABILITY_LABELS
from .analysis._system import STABILITY_LABELS as STABILITY_LABELS
from .analysis.continuation import BifurcationPoint as BifurcationPoint
from .analysis.continuation import Branch as Branch
from .analysis.continuation import CuspPoint as CuspPoint
from .analysis.continuation import FoldCurve as FoldCurve
from .analysis.continuation import continue_branch as continue_branch
from .analysis.continuation import fold_curve as fold_curve
from .analysis.continuation import locate_bifurcation as locate_bifurcation
from .analysis.fixed_points import FixedPoints as FixedPoints
from .analysis.fixed_points import FixedPoints1D as FixedPoints1D
from .analysis.fixed_points import fixed_points as fixed_points
from .analysis.fixed_points import fixed_points_1d as fixed_points_1d
from .analysis.gradient_flow import LOSSES as LOSSES
from .analysis.gradient_flow import MLPGradientFlow as MLPGradientFlow
from .analysis.gradient_flow import RecurrentGradientFlow as RecurrentGradientFlow
from .analysis.gradient_flow import mlp_gradient_flow as mlp_gradient_flow
from .analysis.gradient_flow import recurrent_gradient_flow as recurrent_gradient_flow
from .analysis.jacobian import JacobianProductNorms as JacobianProductNorms
from .analysis.jacobian import fit_log_rate as fit_log_rate
from .analysis.jacobian import jacobian_product_norms as jacobian_product_norms
from .analysis.orbits import Basins as Basins
from .analysis.orbits import HysteresisSweep as HysteresisSweep
from .analysis.orbits import OrbitDiagram as OrbitDiagram
from .analysis.orbits import basins as basins
from .analysis.orbits import hysteresis_sweep as hysteresis_sweep
from .analysis.orbits import orbit_diagram as orbit_diagram
from .analysis.sensitivity import FinalStateSensitivities as FinalStateSensitivities
from .analysis.sensitivity import final_state_sensitivities as final_state_sensitivities
from .analysis.spectral import SpectralEstimate as SpectralEstimate
from .analysis.spectral import spectral_norm as spectral_norm
from .analysis.spectral import spectral_radius as spectral_radius
from .landscape import Cliffs as Cliffs
from .landscape import Direction as Direction
from .landscape import LandscapeScan as LandscapeScan
from .landscape import filter_normalized_direction as filter_normalized_direction
from .landscape import find_cliffs as find_cliffs
from .landscape import leaf_names as leaf_names
from .landscape import line_direction as line_direction
from .landscape import random_direction as random_direction
from .landscape import scan_landscape as scan_landscape
from .models.activations import ACTIVATIONS as ACTIVATIONS
from .models.activations import MAX_DERIVATIVE as MAX_DERIVATIVE
from .models.activations import activation_derivative as activation_derivative
from .models.activations import get_activation as get_activation
from .models.core import autonomous_inputs as autonomous_inputs
from .models.core import unroll as unroll
from .models.doya import DoyaParams as DoyaParams
from .models.doya import doya_fixed_point_sensitivity as doya_fixed_point_sensitivity
from .models.doya import doya_integrate as doya_integrate
from .models.doya import doya_stable_branch_b as doya_stable_branch_b
from .models.doya import doya_step as doya_step
from .models.doya import doya_vector_field as doya_vector_field
from .models.initializers import INITIALIZERS as INITIALIZERS
from .models.initializers import get_initializer as get_initializer
from .models.mlp import MLPConfig as MLPConfig
from .models.mlp import MLPParams as MLPParams
from .models.mlp import MLPTrace as MLPTrace
from .models.mlp import init_mlp as init_mlp
from .models.mlp import mlp_apply as mlp_apply
from .models.rnn import OneUnitParams as OneUnitParams
from .models.rnn import PascanuParams as PascanuParams
from .models.rnn import init_pascanu as init_pascanu
from .models.rnn import one_unit_step as one_unit_step
from .models.rnn import pascanu_bound_log_norms as pascanu_bound_log_norms
from .models.rnn import pascanu_step as pascanu_step
from .models.rnn import pascanu_unroll as pascanu_unroll
from .models.rnn import validate_pascanu_params as validate_pascanu_params

__version__ = "0.1.0"
