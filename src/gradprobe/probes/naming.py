"""Names of module calls: a module called k > 1 times in one forward is reported as `name#k`."""

from __future__ import annotations

from torch import nn


def module_names(model: nn.Module) -> dict[nn.Module, str]:
    """{module: qualified name} (the root is named after its class)."""
    return {m: (n or type(m).__name__) for n, m in model.named_modules()}


class CallNamer:
    """Hands out `name`, `name#2`, `name#3`, ... for successive calls of one module name."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, name: str) -> str:
        k = self.counts.get(name, 0) + 1
        self.counts[name] = k
        return name if k == 1 else f"{name}#{k}"

    def reset(self) -> None:
        self.counts.clear()
