"""Things that measure a system: Jacobian products, spectra, gradient flow, slow points."""

from .gradient_flow import LayerGradientFlow as LayerGradientFlow
from .gradient_flow import layer_gradient_flow as layer_gradient_flow
from .hessian import HessianEigen as HessianEigen
from .hessian import HessianTrace as HessianTrace
from .hessian import SpectralDensity as SpectralDensity
from .hessian import hessian_eigenvalues as hessian_eigenvalues
from .hessian import hessian_spectral_density as hessian_spectral_density
from .hessian import hessian_trace as hessian_trace
from .limit_cycles import CycleBranch as CycleBranch
from .limit_cycles import LimitCycle as LimitCycle
from .limit_cycles import PoincareSection as PoincareSection
from .limit_cycles import cycle_branch as cycle_branch
from .limit_cycles import limit_cycle as limit_cycle
from .limit_cycles import poincare_section as poincare_section
from .mean_field import RateMeanField as RateMeanField
from .mean_field import rate_mean_field as rate_mean_field
from .periodic import PeriodicOrbits as PeriodicOrbits
from .periodic import periodic_orbits as periodic_orbits
from .slow_point_search import SlowPoints as SlowPoints
from .slow_point_search import slow_points as slow_points
