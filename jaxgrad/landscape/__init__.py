"""Loss landscapes: scans over parameter space, directions, cliff detection, and sweeps
of any function over a grid on every device and host.

The face of ``jaxgrad.landscape``: every public name is here
(``jaxgrad.landscape.random_direction``), each function with its result type beside it.
"""

from .cliffs import Cliffs as Cliffs
from .cliffs import find_cliffs as find_cliffs
from .directions import TrajectoryDirections as TrajectoryDirections
from .directions import default_filter_axes as default_filter_axes
from .directions import filter_normalized_direction as filter_normalized_direction
from .directions import leaf_names as leaf_names
from .directions import line_direction as line_direction
from .directions import random_direction as random_direction
from .directions import trajectory_directions as trajectory_directions
from .scan import Direction as Direction
from .scan import LandscapeScan as LandscapeScan
from .scan import scan_landscape as scan_landscape
from .sweeps import Sweep as Sweep
from .sweeps import sweep as sweep

__all__ = [
    # scan
    "scan_landscape", "LandscapeScan", "Direction",
    # directions
    "random_direction", "filter_normalized_direction", "default_filter_axes", "line_direction",
    "trajectory_directions", "TrajectoryDirections", "leaf_names",
    # cliffs
    "find_cliffs", "Cliffs",
    # sweeps
    "sweep", "Sweep",
]
