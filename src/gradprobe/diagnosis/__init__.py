"""gradprobe.diagnosis: the probe report (`probe`), its verdicts and text, and the training-time
`GradientMonitor`, built from the measurements in gradprobe.probes.

    report = probe(model, loss_fn, (inputs, targets))     # one batch, every pathology verdict
    monitor = GradientMonitor(model, every=16, writer="log.jsonl")
A new report measurement is one `Section` appended to gradprobe.diagnosis.sections.SECTIONS.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "probe": "gradprobe.diagnosis.report", "ProbeReport": "gradprobe.diagnosis.report",
    "GradientMonitor": "gradprobe.diagnosis.monitor", "Thresholds": "gradprobe.diagnosis.verdicts",
    "Finding": "gradprobe.diagnosis.verdicts", "SECTIONS": "gradprobe.diagnosis.sections",
    "Section": "gradprobe.diagnosis.sections",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gradprobe.diagnosis' has no attribute {name!r}")


__all__ = list(_LAZY)
