"""Training: an optax loop with scanned steps and checkpoints, remedies, and data."""

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
from .loop import fixed_batches as fixed_batches
from .loop import init_train_state as init_train_state
from .loop import load_checkpoint as load_checkpoint
from .loop import mlp_layer_monitor as mlp_layer_monitor
from .loop import param_grad_norms as param_grad_norms
from .loop import sampled_batches as sampled_batches
from .loop import save_checkpoint as save_checkpoint
from .loop import shuffled_batches as shuffled_batches
from .loop import train as train
from .loop import train_step as train_step
from .remedies import with_clipping as with_clipping
