"""Things that measure a system: Jacobian products, spectra, gradient flow."""

from .mean_field import RateMeanField as RateMeanField
from .mean_field import rate_mean_field as rate_mean_field
