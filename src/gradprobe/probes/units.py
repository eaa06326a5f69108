"""Which modules of a model get per-sample gradient statistics (rules: gradprobe.probes.per_sample).

Every parameter that requires grad belongs to exactly one unit: the innermost module that holds it
directly, except inside nn.MultiheadAttention and the RNNs (nn.RNN/LSTM/GRU), which call their
children's weights functionally and are measured whole. `affine_layers` is the older, narrower
notion used by the bound and the layer-gradient probe: modules with a ≥ 2-D weight.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from gradprobe.probes.per_sample import conv_geometry

WHOLE = (nn.MultiheadAttention, nn.RNNBase)  # measured as one unit, children included


def is_hf_conv1d(m: nn.Module) -> bool:
    """Hugging Face's `Conv1D` (GPT-2): a linear layer with its weight stored in × out."""
    return type(m).__name__ == "Conv1D" and hasattr(m, "nf") and getattr(m, "weight", None) \
        is not None and m.weight.dim() == 2


def kind_of(m: nn.Module) -> str:
    """The per-sample rule for module m: linear, conv1d_hf, conv, embedding, layernorm, generic."""
    if isinstance(m, nn.Linear):
        return "linear"
    if is_hf_conv1d(m):
        return "conv1d_hf"
    if conv_geometry(m) is not None:
        return "conv"
    if isinstance(m, nn.Embedding) and not m.sparse and not m.scale_grad_by_freq \
            and m.max_norm is None:
        return "embedding"
    if isinstance(m, nn.LayerNorm | nn.RMSNorm) and m.elementwise_affine:
        return "layernorm"
    return "generic"


@dataclass(frozen=True)
class Unit:
    """A module measured as one: its kind and {local name: parameter} it covers."""

    module: nn.Module
    kind: str
    params: dict[str, nn.Parameter]


def sample_units(model: nn.Module) -> dict[str, Unit]:
    """{module name: Unit} covering every trainable parameter of `model` (registration order).

    A parameter shared by several modules is covered by each of them (each call is measured);
    `coverage` reports a parameter held by none.
    """
    units: dict[str, Unit] = {}
    inside: set[int] = set()
    for name, m in model.named_modules():
        if id(m) in inside:
            continue
        if isinstance(m, WHOLE):
            inside.update(id(c) for c in m.modules())
            params = {k: p for k, p in m.named_parameters() if p.requires_grad}
        else:
            params = {k: p for k, p in m.named_parameters(recurse=False) if p.requires_grad}
        if params:
            units[name or type(m).__name__] = Unit(m, "generic" if isinstance(m, WHOLE)
                                                   else kind_of(m), params)
    return units


def affine_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """[(name, module)] of the modules with a ≥ 2-D weight tensor, in registration order."""
    return [(name or type(m).__name__, m) for name, m in model.named_modules()
            if isinstance(getattr(m, "weight", None), Tensor) and m.weight.dim() >= 2]


def uncovered(model: nn.Module, units: dict[str, Unit], called: set[str]) -> dict[str, str]:
    """{parameter name: reason} for trainable parameters that no called unit measured."""
    done = {id(p) for name, u in units.items() if name in called for p in u.params.values()}
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in done:
            held = any(id(p) in {id(q) for q in u.params.values()} for u in units.values())
            out[name] = ("its module was not called in this forward (or only functionally)"
                         if held else "held by no module")
    return out
