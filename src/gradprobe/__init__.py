"""gradprobe: why gradient-based deep learning fails, measured.

Reproductions of three texts (Shalev-Shwartz et al. 2017 "Failures of Gradient-Based Deep
Learning"; the vanishing-gradient product bound; Balduzzi et al. 2017 "The Shattered Gradients
Problem") and the same measurements as probes for any PyTorch model.

    gradprobe list / run / reproduce / show       (command line)
    gp.probe(model, loss_fn, batch)                (one-call diagnosis of your model)
    gp.GradientMonitor(model, every=50, writer=w)  (the same during training)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "probe": ("gradprobe.diagnosis.report", "probe"),
    "ProbeReport": ("gradprobe.diagnosis.report", "ProbeReport"),
    "GradientMonitor": ("gradprobe.diagnosis.monitor", "GradientMonitor"),
    "Thresholds": ("gradprobe.diagnosis.verdicts", "Thresholds"),
    "Claim": ("gradprobe.claims", "Claim"),
}


def __getattr__(name: str) -> Any:
    """Import the public names lazily so `import gradprobe` stays fast."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in ("probes", "theory", "nets", "tasks", "training", "experiments", "diagnosis",
                "integrations"):
        import importlib

        return importlib.import_module(f"gradprobe.{name}")
    raise AttributeError(f"module 'gradprobe' has no attribute {name!r}")


__all__ = ["probe", "ProbeReport", "GradientMonitor", "Thresholds", "Claim", "__version__"]
