"""`gradprobe diagnose FILE.py:FACTORY`: a working factory prints the report and writes its JSON and
figure; a factory that cannot be imported or returns the wrong thing gets one message and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradprobe.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "diagnose_example.py"

BAD = {
    "returns_int": "def make():\n    return 3\n",
    "returns_no_module": "def make():\n    return ('model', (3, 4))\n",
    "raises": "def make():\n    raise RuntimeError('boom')\n",
    "needs_args": "def make(n):\n    return n\n",
    "import_error": "import not_a_module_anywhere\ndef make():\n    pass\n",
    "bad_batch": ("import torch\ndef make():\n"
                  "    return torch.nn.Linear(2, 2), torch.nn.functional.mse_loss, 5\n"),
}


def test_example_factory(tmp_path, capsys):
    assert main(["diagnose", f"{EXAMPLE}:make", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "verdicts:" in out and "vanishing" in out
    report = json.loads((tmp_path / "probe.json").read_text())
    assert {f["kind"] for f in report["findings"] if f["fired"]} == {"vanishing"}
    assert (tmp_path / "probe.png").stat().st_size > 10_000


def test_shape_factory(tmp_path, capsys):
    assert main(["diagnose", f"{EXAMPLE}:make_shape", "--out", str(tmp_path),
                 "--batch-size", "16"]) == 0
    assert "Gaussian inputs (16, 3, 8, 8)" in capsys.readouterr().out
    assert json.loads((tmp_path / "probe.json").read_text())["batch_size"] == 16


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_factories_exit_2_with_one_message(case, tmp_path, capsys):
    f = tmp_path / f"{case}.py"
    f.write_text(BAD[case])
    out = tmp_path / "out"
    assert main(["diagnose", f"{f}:make", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradprobe: error: diagnose") and err.count("\n") == 1
    assert "Traceback" not in err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("target", ["no_colon.py", "missing.py:make", ":make"])
def test_bad_targets_exit_2(target, tmp_path, capsys):
    assert main(["diagnose", target, "--out", str(tmp_path / "o")]) == 2
    assert "gradprobe: error:" in capsys.readouterr().err


def test_missing_function(tmp_path, capsys):
    assert main(["diagnose", f"{EXAMPLE}:nope", "--out", str(tmp_path)]) == 2
    assert "has no function 'nope'" in capsys.readouterr().err


def test_a_model_that_fails_under_the_probe_exits_3(tmp_path, capsys):
    f = tmp_path / "fails.py"
    f.write_text("import torch\n"
                 "class M(torch.nn.Module):\n"
                 "    def __init__(self):\n"
                 "        super().__init__(); self.fc = torch.nn.Linear(3, 2)\n"
                 "    def forward(self, x):\n"
                 "        raise ValueError('broken forward')\n"
                 "def make():\n"
                 "    batch = (torch.zeros(4, 3), torch.zeros(4, 2))\n"
                 "    return M(), torch.nn.functional.mse_loss, batch\n")
    assert main(["diagnose", f"{f}:make", "--out", str(tmp_path / "o")]) == 3
    err = capsys.readouterr().err
    assert "probing" in err and "broken forward" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "1e38"])
def test_non_finite_weights_give_the_exploding_verdict(tmp_path, capsys, value):
    f = tmp_path / "bad.py"
    f.write_text("import torch\nfrom torch import nn\ndef make():\n"
                 "    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
                 f"    with torch.no_grad():\n        m[2].weight.fill_({value})\n"
                 "    return m, (4,)\n")
    assert main(["diagnose", f"{f}:make", "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "probe.json").read_text())
    ex = next(x for x in report["findings"] if x["kind"] == "exploding")
    assert ex["fired"] and ex["layer"].startswith("2")
    assert (tmp_path / "out" / "probe.png").exists()
