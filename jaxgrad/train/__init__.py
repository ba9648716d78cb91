"""Training: ``train_steps`` (a pure scan of optax updates), ``train_until`` (its
``lax.while_loop`` twin that stops on a rule), ``fit`` (the host driver with checkpoints),
``SequenceModel`` (a cell with a readout), remedies, regularisers, tasks and data.

The face of ``jaxgrad.train``: every public name is here (``jaxgrad.train.shuffled_batches``),
each function with its result type beside it.
"""

from .data import Dataset as Dataset
from .data import load_digits as load_digits
from .data import load_mnist as load_mnist
from .data import read_idx as read_idx
from .data import train_test_split as train_test_split
from .loop import BatchSource as BatchSource
from .loop import StepMetrics as StepMetrics
from .loop import TrainingDiverged as TrainingDiverged
from .loop import TrainResult as TrainResult
from .loop import TrainState as TrainState
from .loop import checkpoint_fingerprint as checkpoint_fingerprint
from .loop import combine_monitors as combine_monitors
from .loop import fit as fit
from .loop import fixed_batches as fixed_batches
from .loop import init_train_state as init_train_state
from .loop import load_checkpoint as load_checkpoint
from .loop import mlp_layer_monitor as mlp_layer_monitor
from .loop import param_grad_norms as param_grad_norms
from .loop import sampled_batches as sampled_batches
from .loop import save_checkpoint as save_checkpoint
from .loop import shuffled_batches as shuffled_batches
from .loop import train_step as train_step
from .loop import train_steps as train_steps
from .loop import train_until as train_until
from .regularizers import OmegaTerms as OmegaTerms
from .regularizers import flossing_regularizer as flossing_regularizer
from .regularizers import pascanu_omega as pascanu_omega
from .regularizers import pascanu_omega_terms as pascanu_omega_terms
from .remedies import with_clipping as with_clipping
from .sequence import SequenceModel as SequenceModel
from .sequence import SequenceParams as SequenceParams
from .sequence import sequence_loss as sequence_loss
from .sequence import sequence_omega as sequence_omega
from .sequence import sequence_outputs as sequence_outputs
from .sequence import sequence_state_grad_norms as sequence_state_grad_norms
from .sequence import state_grad_monitor as state_grad_monitor
from .sequence import vmap_optimizer as vmap_optimizer
from .tasks import TASKS as TASKS
from .tasks import SuccessResult as SuccessResult
from .tasks import Task as Task
from .tasks import TaskBatch as TaskBatch
from .tasks import adding_problem as adding_problem
from .tasks import addition as addition
from .tasks import get_task as get_task
from .tasks import multiplication as multiplication
from .tasks import noiseless_memorization as noiseless_memorization
from .tasks import random_permutation as random_permutation
from .tasks import success as success
from .tasks import temporal_order as temporal_order
from .tasks import temporal_order_3bit as temporal_order_3bit

__all__ = [
    # loop
    "train_steps", "StepMetrics", "train_until", "fit", "TrainResult", "TrainingDiverged",
    "init_train_state", "TrainState", "train_step", "BatchSource", "fixed_batches",
    "sampled_batches", "shuffled_batches", "param_grad_norms", "mlp_layer_monitor",
    "combine_monitors", "save_checkpoint", "load_checkpoint", "checkpoint_fingerprint",
    # remedies
    "with_clipping",
    # regularizers
    "pascanu_omega", "pascanu_omega_terms", "OmegaTerms", "flossing_regularizer",
    # sequence
    "SequenceModel", "SequenceParams", "sequence_outputs", "sequence_loss",
    "sequence_omega", "sequence_state_grad_norms", "state_grad_monitor", "vmap_optimizer",
    # tasks
    "get_task", "Task", "TaskBatch", "TASKS", "adding_problem", "addition", "multiplication",
    "noiseless_memorization", "random_permutation", "temporal_order", "temporal_order_3bit",
    "success", "SuccessResult",
    # data
    "load_digits", "load_mnist", "Dataset", "read_idx", "train_test_split",
]
