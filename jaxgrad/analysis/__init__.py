"""Things that measure a system: Jacobian products, spectra, gradient flow."""
