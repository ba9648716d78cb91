"""Systems that evolve a state: each is a step ``step(x, u, params) -> x_next``.

The face of ``jaxgrad.models``: every public name is here (``jaxgrad.models.init_lstm``),
each model's parameter type beside its ``init_*`` and ``*_step``.

- Pascanu's recurrent network and the one-unit network (``init_pascanu``, ``pascanu_step``,
  ``pascanu_bound_log_norms``), Doya's neuron (``DoyaParams``, ``doya_step``,
  ``doya_vector_field``), rate networks (``init_rate``, ``rate_step``, ``rate_flow_step``);
- gated cells: ``init_lstm``/``lstm_step``, ``init_gru``/``gru_step``;
- recurrent cells as objects (``init``, ``step``, ``zero_state``, ``observe``):
  ``PascanuCell``, ``ElmanCell``, ``LSTMCell``, ``GRUCell``, ``RateCell``, ``NnxCell`` (a
  Flax nnx module), a base ``Cell`` to subclass, and ``CELLS``/``get_cell`` for the names;
- deep MLPs with stacked, scanned layers: ``MLPConfig``, ``init_mlp``, ``mlp_apply``;
- ``unroll`` (a step over an input sequence by ``lax.scan``), activations (``Activation``: any
  callable, with its sup|σ'| where known; names are shortcuts), initialisers.
"""

from .activations import ACTIVATIONS as ACTIVATIONS
from .activations import MAX_DERIVATIVE as MAX_DERIVATIVE
from .activations import Activation as Activation
from .activations import activation_derivative as activation_derivative
from .activations import get_activation as get_activation
from .cells import CELLS as CELLS
from .cells import Cell as Cell
from .cells import ElmanCell as ElmanCell
from .cells import GRUCell as GRUCell
from .cells import LSTMCell as LSTMCell
from .cells import NnxCell as NnxCell
from .cells import NnxParams as NnxParams
from .cells import PascanuCell as PascanuCell
from .cells import RateCell as RateCell
from .cells import get_cell as get_cell
from .core import autonomous_inputs as autonomous_inputs
from .core import unroll as unroll
from .doya import DoyaParams as DoyaParams
from .doya import doya_fixed_point_sensitivity as doya_fixed_point_sensitivity
from .doya import doya_integrate as doya_integrate
from .doya import doya_stable_branch_b as doya_stable_branch_b
from .doya import doya_step as doya_step
from .doya import doya_vector_field as doya_vector_field
from .gru import GRUParams as GRUParams
from .gru import gru_step as gru_step
from .gru import init_gru as init_gru
from .initializers import INITIALIZERS as INITIALIZERS
from .initializers import get_initializer as get_initializer
from .lstm import LSTMParams as LSTMParams
from .lstm import LSTMState as LSTMState
from .lstm import init_lstm as init_lstm
from .lstm import lstm_step as lstm_step
from .lstm import lstm_zero_state as lstm_zero_state
from .mlp import MLPConfig as MLPConfig
from .mlp import MLPParams as MLPParams
from .mlp import MLPTrace as MLPTrace
from .mlp import init_mlp as init_mlp
from .mlp import mlp_apply as mlp_apply
from .rate import RateParams as RateParams
from .rate import init_rate as init_rate
from .rate import rate_flow_step as rate_flow_step
from .rate import rate_step as rate_step
from .rate import rate_vector_field as rate_vector_field
from .rnn import OneUnitParams as OneUnitParams
from .rnn import PascanuParams as PascanuParams
from .rnn import init_pascanu as init_pascanu
from .rnn import one_unit_step as one_unit_step
from .rnn import pascanu_bound_log_norms as pascanu_bound_log_norms
from .rnn import pascanu_step as pascanu_step
from .rnn import pascanu_unroll as pascanu_unroll
from .rnn import validate_pascanu_params as validate_pascanu_params

__all__ = [
    # core
    "unroll", "autonomous_inputs",
    # rnn
    "PascanuParams", "init_pascanu", "validate_pascanu_params", "pascanu_step", "pascanu_unroll",
    "pascanu_bound_log_norms", "OneUnitParams", "one_unit_step",
    # doya
    "DoyaParams", "doya_step", "doya_vector_field", "doya_integrate", "doya_stable_branch_b",
    "doya_fixed_point_sensitivity",
    # rate
    "RateParams", "init_rate", "rate_step", "rate_flow_step", "rate_vector_field",
    # lstm
    "LSTMParams", "LSTMState", "init_lstm", "lstm_zero_state", "lstm_step",
    # gru
    "GRUParams", "init_gru", "gru_step",
    # mlp
    "MLPConfig", "MLPParams", "init_mlp", "mlp_apply", "MLPTrace",
    # activations
    "ACTIVATIONS", "MAX_DERIVATIVE", "get_activation", "activation_derivative",
    # initializers
    "INITIALIZERS", "get_initializer",
    "Activation",
    "CELLS",
    "Cell",
    "ElmanCell",
    "GRUCell",
    "LSTMCell",
    "NnxCell",
    "NnxParams",
    "PascanuCell",
    "RateCell",
    "get_cell",
]
