"""Imports run one way (DESIGN "Version 0.2"): no module imports a layer above it, theory imports
nothing above it, no experiment imports another, and `import gradprobe` / `gradprobe list` do not
load matplotlib."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gradprobe

SRC = Path(gradprobe.__file__).parent
# Utilities any layer may use; they import only each other.
LEAVES = {"errors", "runtime", "config", "plots", "__version__"}
LAYER = {"theory": 0, "tasks": 1, "nets": 2, "training": 3, "probes": 4, "claims": 5,
         "diagnosis": 5, "experiments": 6, "integrations": 6, "runs": 7, "report": 8, "cli": 9,
         "diagnose": 9, "__init__": 10, "__main__": 10}


def _unit(module: str) -> str:
    """gradprobe.nets.mlp → nets; gradprobe.claims → claims."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):  # a bare `import gradprobe` is for __version__
            found += ["gradprobe.__version__" if a.name == "gradprobe" else a.name
                      for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "gradprobe":
            found += [f"gradprobe.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [m for m in found if m == "gradprobe" or m.startswith("gradprobe.")]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for p in sorted(SRC.rglob("*.py")):
        rel = p.relative_to(SRC.parent).with_suffix("")
        out.append((".".join(rel.parts).removesuffix(".__init__"), p))
    return out


def test_no_module_imports_a_layer_above_it():
    bad = []
    for name, path in _modules():
        me = _unit(name)
        if me in LEAVES:
            allowed = LEAVES
        else:
            level = LAYER.get(me)
            assert level is not None, f"{name}: add its package to LAYER in this test"
            allowed = None
        for imp in _imports(path):
            other = _unit(imp)
            if other == me or imp == "gradprobe" and me == "__init__":
                continue
            if allowed is not None:
                ok = other in allowed
            elif me == "theory":
                ok = other in LEAVES
            else:
                ok = other in LEAVES or other == "theory" or LAYER.get(other, 99) <= level
                ok = ok and not (me == "diagnosis" and other == "claims")
            if not ok:
                bad.append(f"{name} imports {imp}")
    assert not bad, "\n".join(bad)


def test_no_experiment_imports_another():
    bad = []
    for name, path in _modules():
        if name.startswith("gradprobe.experiments.") and not name.endswith(("base", "registry")):
            for imp in _imports(path):
                if imp.startswith("gradprobe.experiments.") and not imp.endswith(".base"):
                    bad.append(f"{name} imports {imp}")
    assert not bad, "\n".join(bad)


def test_import_and_list_do_not_load_matplotlib():
    code = ("import sys, gradprobe\nfrom gradprobe.experiments import registry\n"
            "registry.experiments()\nfrom gradprobe import cli\n"
            "print('matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
