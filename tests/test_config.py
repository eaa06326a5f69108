"""Typed overrides: JSON parsing, coercion by annotation, and clear refusals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from gradprobe.config import ExperimentConfig, apply_overrides, parse_override, require
from gradprobe.errors import ConfigError


@dataclass(frozen=True)
class Cfg(ExperimentConfig):
    dims: tuple[int, ...] = (5, 10)
    lr: float = 0.01
    bn: bool = False
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    cap: int | None = None
    variants: tuple[Literal["fc", "conv"], ...] = ("fc",)

    def validate(self) -> None:
        require(all(d >= 1 for d in self.dims), "dims must be ≥ 1")


def test_parse_override_json_and_string():
    assert parse_override("dims=[8,12]") == ("dims", [8, 12])
    assert parse_override("lr=0.5") == ("lr", 0.5)
    assert parse_override("name=hello") == ("name", "hello")
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_coercion_by_annotation():
    cfg = apply_overrides(Cfg(), {"dims": [8, 12], "lr": 1, "bn": True, "cap": 3,
                                  "variants": ["conv", "fc"], "mode": "b"})
    assert cfg.dims == (8, 12) and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.bn is True and cfg.cap == 3 and cfg.variants == ("conv", "fc") and cfg.mode == "b"
    assert apply_overrides(Cfg(), {"dims": 7}).dims == (7,)
    assert apply_overrides(Cfg(), {"cap": None}).cap is None


@pytest.mark.parametrize("over, needle", [
    ({"nope": 1}, "unknown config key 'nope'"),
    ({"lr": "fast"}, "expected a number"),
    ({"dims": [1.5]}, "expected an integer"),
    ({"bn": 1}, "expected true or false"),
    ({"mode": "c"}, "choose one of"),
    ({"variants": ["mlp"]}, "choose one of"),
    ({"dims": [0]}, "dims must be ≥ 1"),
])
def test_refusals_name_the_problem(over, needle):
    with pytest.raises(ConfigError, match=needle):
        apply_overrides(Cfg(), over)
