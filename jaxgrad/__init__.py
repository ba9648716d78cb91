"""jaxgrad: vanishing and exploding gradients as a property of a dynamical system.

The public surface: every name a user, a notebook or an experiment imports.

- ``jaxgrad.systems``: the one system protocol, ``step(x, u, params) -> x_next`` over
  pytree states: ``autonomous``, ``vector_field`` + ``discretize`` (the one RK4/Euler),
  ``NO_PARAMS``.
- ``jaxgrad.flows``: ``integrate``, a ``VectorField`` solved by an adaptive diffrax solver
  (Tsit5, or Kvaerno5 for stiff flows), with ``converged`` and ``IntegrationError``.
- ``jaxgrad.models``: pure step functions ``step(x, u, params)`` over pytree parameters
  (Pascanu RNN, one-unit net, Doya's neuron, deep MLPs, LSTM, GRU, rate networks).
- ``jaxgrad.analysis``: analyzers that take any step function (``step(x, u)``, or with
  ``params=``): Jacobian products, spectra, gradient flow, Lyapunov spectra, signal
  propagation, fixed points, periodic orbits, slow points, continuation (folds, flips, Hopf
  points, branch points and branch switching), orbit diagrams, sensitivities;
  ``jaxgrad.flows``: flows integrated by diffrax; limit cycles of flows (shooting with
  Floquet multipliers, the cycles born at a Hopf point, Poincaré sections).
- ``jaxgrad.landscape``: ``scan_landscape``, ``find_cliffs`` and ``sweep``.
- ``jaxgrad.train``: the subpackage of training: ``train_steps`` (a pure scan of optax
  updates, for ``jax.jit``/``jax.vmap``), ``fit`` (the host driver on it, with
  checkpoints), remedies, Pascanu's Ω, the flossing regulariser, tasks and data
  (``jaxgrad.fit`` and ``jaxgrad.train_steps`` at the top level).
"""

from .analysis.continuation import BifurcationPoint as BifurcationPoint
from .analysis.continuation import BogdanovTakensPoint as BogdanovTakensPoint
from .analysis.continuation import Branch as Branch
from .analysis.continuation import CuspPoint as CuspPoint
from .analysis.continuation import FoldCurve as FoldCurve
from .analysis.continuation import GeneralizedHopfPoint as GeneralizedHopfPoint
from .analysis.continuation import HopfCurve as HopfCurve
from .analysis.continuation import continue_branch as continue_branch
from .analysis.continuation import fold_curve as fold_curve
from .analysis.continuation import hopf_curve as hopf_curve
from .analysis.continuation import locate_bifurcation as locate_bifurcation
from .analysis.continuation import switch_branch as switch_branch
from .analysis.fixed_points import LOSS_OF_STABILITY_LABELS as LOSS_OF_STABILITY_LABELS
from .analysis.fixed_points import STABILITY_LABELS as STABILITY_LABELS
from .analysis.fixed_points import FixedPoints as FixedPoints
from .analysis.fixed_points import FixedPoints1D as FixedPoints1D
from .analysis.fixed_points import fixed_points as fixed_points
from .analysis.fixed_points import fixed_points_1d as fixed_points_1d
from .analysis.gradient_flow import LOSSES as LOSSES
from .analysis.gradient_flow import LayerGradientFlow as LayerGradientFlow
from .analysis.gradient_flow import MLPGradientFlow as MLPGradientFlow
from .analysis.gradient_flow import RecurrentGradientFlow as RecurrentGradientFlow
from .analysis.gradient_flow import ScaledNorm as ScaledNorm
from .analysis.gradient_flow import layer_gradient_flow as layer_gradient_flow
from .analysis.gradient_flow import mlp_gradient_flow as mlp_gradient_flow
from .analysis.gradient_flow import recurrent_gradient_flow as recurrent_gradient_flow
from .analysis.gradient_flow import scaled_norm as scaled_norm
from .analysis.gradient_flow import tree_scaled_norm as tree_scaled_norm
from .analysis.hessian import HessianEigen as HessianEigen
from .analysis.hessian import HessianTrace as HessianTrace
from .analysis.hessian import SpectralDensity as SpectralDensity
from .analysis.hessian import hessian_eigenvalues as hessian_eigenvalues
from .analysis.hessian import hessian_spectral_density as hessian_spectral_density
from .analysis.hessian import hessian_trace as hessian_trace
from .analysis.jacobian import JacobianProductNorms as JacobianProductNorms
from .analysis.jacobian import fit_log_rate as fit_log_rate
from .analysis.jacobian import jacobian_product_norms as jacobian_product_norms
from .analysis.limit_cycles import CycleBranch as CycleBranch
from .analysis.limit_cycles import LimitCycle as LimitCycle
from .analysis.limit_cycles import PoincareSection as PoincareSection
from .analysis.limit_cycles import cycle_branch as cycle_branch
from .analysis.limit_cycles import limit_cycle as limit_cycle
from .analysis.limit_cycles import poincare_section as poincare_section
from .analysis.lyapunov import FlossingDiverged as FlossingDiverged
from .analysis.lyapunov import FlossingTrace as FlossingTrace
from .analysis.lyapunov import LyapunovSpectrum as LyapunovSpectrum
from .analysis.lyapunov import entropy_rate as entropy_rate
from .analysis.lyapunov import floss as floss
from .analysis.lyapunov import flossing_loss as flossing_loss
from .analysis.lyapunov import kaplan_yorke_dimension as kaplan_yorke_dimension
from .analysis.lyapunov import lyapunov_spectrum as lyapunov_spectrum
from .analysis.mean_field import RateMeanField as RateMeanField
from .analysis.mean_field import rate_mean_field as rate_mean_field
from .analysis.orbits import Basins as Basins
from .analysis.orbits import HysteresisSweep as HysteresisSweep
from .analysis.orbits import OrbitDiagram as OrbitDiagram
from .analysis.orbits import basins as basins
from .analysis.orbits import hysteresis_sweep as hysteresis_sweep
from .analysis.orbits import orbit_diagram as orbit_diagram
from .analysis.periodic import PeriodicOrbits as PeriodicOrbits
from .analysis.periodic import periodic_orbits as periodic_orbits
from .analysis.sensitivity import FinalStateSensitivities as FinalStateSensitivities
from .analysis.sensitivity import final_state_sensitivities as final_state_sensitivities
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
from .analysis.slow_point_search import SlowPoints as SlowPoints
from .analysis.slow_point_search import slow_points as slow_points
from .analysis.spectral import SpectralEstimate as SpectralEstimate
from .analysis.spectral import spectral_norm as spectral_norm
from .analysis.spectral import spectral_radius as spectral_radius
from .flows import FlowSolution as FlowSolution
from .flows import IntegrationError as IntegrationError
from .flows import integrate as integrate
from .landscape import Cliffs as Cliffs
from .landscape import Direction as Direction
from .landscape import LandscapeScan as LandscapeScan
from .landscape import Sweep as Sweep
from .landscape import TrajectoryDirections as TrajectoryDirections
from .landscape import filter_normalized_direction as filter_normalized_direction
from .landscape import find_cliffs as find_cliffs
from .landscape import leaf_names as leaf_names
from .landscape import line_direction as line_direction
from .landscape import random_direction as random_direction
from .landscape import scan_landscape as scan_landscape
from .landscape import sweep as sweep
from .landscape import trajectory_directions as trajectory_directions
from .models.activations import ACTIVATIONS as ACTIVATIONS
from .models.activations import MAX_DERIVATIVE as MAX_DERIVATIVE
from .models.activations import Activation as Activation
from .models.activations import activation_derivative as activation_derivative
from .models.activations import get_activation as get_activation
from .models.cells import CELLS as CELLS
from .models.cells import Cell as Cell
from .models.cells import ElmanCell as ElmanCell
from .models.cells import GRUCell as GRUCell
from .models.cells import LSTMCell as LSTMCell
from .models.cells import NnxCell as NnxCell
from .models.cells import NnxParams as NnxParams
from .models.cells import PascanuCell as PascanuCell
from .models.cells import RateCell as RateCell
from .models.cells import get_cell as get_cell
from .models.core import autonomous_inputs as autonomous_inputs
from .models.core import unroll as unroll
from .models.doya import DoyaParams as DoyaParams
from .models.doya import doya_fixed_point_sensitivity as doya_fixed_point_sensitivity
from .models.doya import doya_integrate as doya_integrate
from .models.doya import doya_stable_branch_b as doya_stable_branch_b
from .models.doya import doya_step as doya_step
from .models.doya import doya_vector_field as doya_vector_field
from .models.gru import GRUParams as GRUParams
from .models.gru import gru_step as gru_step
from .models.gru import init_gru as init_gru
from .models.initializers import INITIALIZERS as INITIALIZERS
from .models.initializers import get_initializer as get_initializer
from .models.lstm import LSTMParams as LSTMParams
from .models.lstm import LSTMState as LSTMState
from .models.lstm import init_lstm as init_lstm
from .models.lstm import lstm_step as lstm_step
from .models.lstm import lstm_zero_state as lstm_zero_state
from .models.mlp import MLPConfig as MLPConfig
from .models.mlp import MLPParams as MLPParams
from .models.mlp import MLPTrace as MLPTrace
from .models.mlp import init_mlp as init_mlp
from .models.mlp import mlp_apply as mlp_apply
from .models.rate import RateParams as RateParams
from .models.rate import init_rate as init_rate
from .models.rate import integrator_step as integrator_step
from .models.rate import rate_flow_step as rate_flow_step
from .models.rate import rate_step as rate_step
from .models.rate import rate_vector_field as rate_vector_field
from .models.rnn import OneUnitParams as OneUnitParams
from .models.rnn import PascanuParams as PascanuParams
from .models.rnn import init_pascanu as init_pascanu
from .models.rnn import one_unit_step as one_unit_step
from .models.rnn import pascanu_bound_log_norms as pascanu_bound_log_norms
from .models.rnn import pascanu_step as pascanu_step
from .models.rnn import pascanu_unroll as pascanu_unroll
from .models.rnn import validate_pascanu_params as validate_pascanu_params
from .systems import NO_PARAMS as NO_PARAMS
from .systems import VectorField as VectorField
from .systems import as_step as as_step
from .systems import autonomous as autonomous
from .systems import discretize as discretize
from .systems import iterate as iterate
from .systems import layers_as_step as layers_as_step
from .systems import vector_field as vector_field
from .train.data import Dataset as Dataset
from .train.data import load_digits as load_digits
from .train.data import load_mnist as load_mnist
from .train.loop import BatchSource as BatchSource
from .train.loop import TrainingDiverged as TrainingDiverged
from .train.loop import TrainResult as TrainResult
from .train.loop import TrainState as TrainState
from .train.loop import fit as fit
from .train.loop import fixed_batches as fixed_batches
from .train.loop import init_train_state as init_train_state
from .train.loop import mlp_layer_monitor as mlp_layer_monitor
from .train.loop import sampled_batches as sampled_batches
from .train.loop import shuffled_batches as shuffled_batches
from .train.loop import train_step as train_step
from .train.loop import train_steps as train_steps
from .train.regularizers import OmegaTerms as OmegaTerms
from .train.regularizers import flossing_regularizer as flossing_regularizer
from .train.regularizers import pascanu_omega as pascanu_omega
from .train.regularizers import pascanu_omega_terms as pascanu_omega_terms
from .train.remedies import with_clipping as with_clipping
from .train.sequence import SequenceModel as SequenceModel
from .train.sequence import SequenceParams as SequenceParams
from .train.sequence import sequence_loss as sequence_loss
from .train.sequence import sequence_omega as sequence_omega
from .train.sequence import sequence_outputs as sequence_outputs
from .train.sequence import sequence_state_grad_norms as sequence_state_grad_norms
from .train.sequence import state_grad_monitor as state_grad_monitor
from .train.sequence import vmap_optimizer as vmap_optimizer
from .train.tasks import TASKS as TASKS
from .train.tasks import SuccessResult as SuccessResult
from .train.tasks import Task as Task
from .train.tasks import TaskBatch as TaskBatch
from .train.tasks import adding_problem as adding_problem
from .train.tasks import get_task as get_task
from .train.tasks import success as success

__version__ = "0.1.0"
