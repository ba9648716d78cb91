"""Systems that evolve a state: each is a step ``(state, input) -> state``."""

from .activations import ACTIVATIONS as ACTIVATIONS
from .activations import Activation as Activation
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
