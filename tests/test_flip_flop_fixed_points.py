"""The task generator of the flip-flop-fixed-points experiment
(experiments/flip_flop_fixed_points.py).

The experiment itself runs (QUICK_CONFIG, every check must pass) in
tests/test_experiments.py; here the flip-flop batches against a NumPy reference.
"""

import jax
import numpy as np
import pytest

from experiments import flip_flop_fixed_points as ff


def _reference_targets(inputs):
    """The sign of the latest nonzero input on each channel, by a plain loop."""
    targets = np.zeros_like(inputs)
    for b in range(inputs.shape[0]):
        for c in range(inputs.shape[2]):
            last = 0.0
            for t in range(inputs.shape[1]):
                if inputs[b, t, c] != 0:
                    last = inputs[b, t, c]
                targets[b, t, c] = last
    return targets


@pytest.mark.parametrize("seed", range(4))
def test_flip_flop_batch_holds_the_sign_of_the_last_pulse(seed):
    inputs, targets = ff.flip_flop_batch(jax.random.key(seed), 8, 50, 0.1)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    assert inputs.shape == targets.shape == (8, 50, 3)
    assert inputs.dtype == targets.dtype == np.float32
    assert set(np.unique(inputs)) <= {-1.0, 0.0, 1.0}
    assert np.all(inputs[:, 0] != 0)  # every channel pulses at the first step
    np.testing.assert_array_equal(targets, _reference_targets(inputs))
    assert np.all(np.abs(targets) == 1)


def test_flip_flop_batch_pulse_rate_and_signs():
    inputs, _ = ff.flip_flop_batch(jax.random.key(7), 256, 200, 0.05)
    later = np.asarray(inputs)[:, 1:]
    rate = np.mean(later != 0)
    # 256 * 199 * 3 Bernoulli(0.05) draws: standard error ~ 0.0004.
    assert rate == pytest.approx(0.05, abs=0.003)
    pulses = later[later != 0]
    assert np.mean(pulses > 0) == pytest.approx(0.5, abs=0.03)
