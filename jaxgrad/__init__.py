"""jaxgrad: vanishing and exploding gradients as a property of a dynamical system.

The public surface. Models (``jaxgrad.models``) are pure step functions over pytree
parameters; analyzers (``jaxgrad.analysis``) take any step function
``step(x, u)`` or ``step(x, u, params)``.
"""

from .analysis.gradient_flow import LOSSES as LOSSES
from .analysis.gradient_flow import MLPGradientFlow as MLPGradientFlow
from .analysis.gradient_flow import RecurrentGradientFlow as RecurrentGradientFlow
from .analysis.gradient_flow import mlp_gradient_flow as mlp_gradient_flow
from .analysis.gradient_flow import recurrent_gradient_flow as recurrent_gradient_flow
from .analysis.jacobian import JacobianProductNorms as JacobianProductNorms
from .analysis.jacobian import fit_log_rate as fit_log_rate
from .analysis.jacobian import jacobian_product_norms as jacobian_product_norms
from .analysis.signal_propagation import CriticalPoint as CriticalPoint
from .analysis.signal_propagation import DepthScales as DepthScales
from .analysis.signal_propagation import MeanFieldTrajectory as MeanFieldTrajectory
from .analysis.signal_propagation import QStar as QStar
from .analysis.signal_propagation import RandomMLPSignal as RandomMLPSignal
from .analysis.signal_propagation import c_map as c_map
from .analysis.signal_propagation import chi_1 as chi_1
from .analysis.signal_propagation import critical_sigma_w2 as critical_sigma_w2
from .analysis.signal_propagation import depth_scales as depth_scales
from .analysis.signal_propagation import gaussian_expectation as gaussian_expectation
from .analysis.signal_propagation import mean_field_trajectory as mean_field_trajectory
from .analysis.signal_propagation import q_map as q_map
from .analysis.signal_propagation import q_star as q_star
from .analysis.signal_propagation import random_mlp_signal as random_mlp_signal
from .analysis.spectral import SpectralEstimate as SpectralEstimate
from .analysis.spectral import spectral_norm as spectral_norm
from .analysis.spectral import spectral_radius as spectral_radius
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
