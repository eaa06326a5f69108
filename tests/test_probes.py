"""gradprobe.probes: the catalogue `__init__` exposes every probe, as names and as attributes."""

from __future__ import annotations

import gradprobe as gp


def test_catalogue_imports_and_attribute_access():
    from gradprobe.probes import (  # noqa: F401
        activity,
        gradient_snr,
        input_gradients,
        layer_gradients,
        target_variance,
    )
    from gradprobe.probes.snr import per_sample_grads  # the old path still works

    assert gp.probes.gradient_snr is gradient_snr
    assert gp.probes.per_sample_grads is per_sample_grads
    assert callable(gp.diagnosis.probe) and gp.diagnosis.GradientMonitor is gp.GradientMonitor
