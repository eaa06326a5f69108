"""gradprobe.probes: measurements of gradients, one quantity per module.

    gradient_snr      (snr)             single-sample gradient SNR (Shalev-Shwartz et al. §3)
    layer_gradients   (layers)          per-layer gradient norms and the product bound (Nielsen)
    activity          (activity)        activation / co-activation of ReLU-like units
    saturation        (saturation)      saturated sigmoid/tanh units
    target_variance   (target_variance) gradient variance across targets (Shalev-Shwartz eq. 2)
    input_gradients   (shattering)      per-sample input gradients, autocorrelation, eff. rank
    gradient_moments  (variance)        closed-form per-sample gradient moments (BackPACK's)
    per_sample_grads  (per_sample)      per-sample gradients of any model through torch.func
Shared helpers: units (what is measured per sample), capture, hooks, naming, inputs, state.
The report and the training monitor built from these live in gradprobe.diagnosis.
"""

from __future__ import annotations

from gradprobe.probes.activity import activity
from gradprobe.probes.layers import layer_gradients
from gradprobe.probes.per_sample import per_sample_grads
from gradprobe.probes.saturation import saturation
from gradprobe.probes.shattering import (
    autocorrelation,
    input_gradients,
    relative_effective_rank,
    segment_shattering,
)
from gradprobe.probes.snr import gradient_snr, snr_from_gram, snr_from_samples
from gradprobe.probes.target_variance import target_variance
from gradprobe.probes.units import sample_units
from gradprobe.probes.variance import gradient_moments, gradient_variance

__all__ = ["activity", "autocorrelation", "gradient_moments", "gradient_snr", "gradient_variance",
           "input_gradients", "layer_gradients", "per_sample_grads", "relative_effective_rank",
           "sample_units", "saturation", "segment_shattering", "snr_from_gram",
           "snr_from_samples", "target_variance"]
