"""Experiment configs: frozen dataclasses with named scales and typed, checked overrides.

Overrides arrive as strings from `--set KEY=VALUE`; VALUE is parsed as JSON when it parses, then
coerced to the field's annotated type. Unknown keys, wrong types and out-of-range values raise
ConfigError before any work starts (nanoGPT's configurator does the same).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, ClassVar, Literal, Self, get_args, get_origin, get_type_hints

from gradprobe.errors import ConfigError

SCALES = ("smoke", "quick", "paper")


@dataclasses.dataclass(frozen=True)
class FreeChoice:
    """A choice the paper leaves open and a verdict rests on (SPEC D1): the values worth
    trying (`gradprobe sweep` runs each) and why it is open."""

    values: tuple[Any, ...]
    why: str


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Base class. Subclasses define fields with defaults and `smoke`/`quick`/`paper` classmethods.

    Field types may be int, float, bool, str, Literal[...], X | None, and tuple[T, ...] of those.
    `FREE_CHOICES` names the fields that are open choices of the paper (SPEC D1).
    """

    FREE_CHOICES: ClassVar[dict[str, FreeChoice]] = {}

    @classmethod
    def smoke(cls) -> Self:
        return cls()

    @classmethod
    def quick(cls) -> Self:
        return cls()

    @classmethod
    def paper(cls) -> Self:
        return cls()

    @classmethod
    def for_scale(cls, scale: str) -> Self:
        if scale not in SCALES:
            raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        return getattr(cls, scale)()

    def validate(self) -> None:
        """Raise ConfigError for out-of-range values. Subclasses extend; `require` helps."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def free_choices(self) -> dict[str, dict[str, Any]]:
        """summary.json's `free_choices`: {KEY: {"value", "values", "why"}} (SPEC D1)."""
        return {k: {"value": _jsonable(getattr(self, k)), "values": _jsonable(fc.values),
                    "why": fc.why} for k, fc in self.FREE_CHOICES.items()}


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds (for use in `validate`)."""
    if not condition:
        raise ConfigError(message)


def parse_override(text: str) -> tuple[str, Any]:
    """Split 'KEY=VALUE'; VALUE is JSON when it parses, else the raw string."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """Return cfg with overrides applied, coerced to the field types and validated."""
    hints = get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(names)}")
        changes[key] = coerce(value, hints[key], key)
    new = dataclasses.replace(cfg, **changes)
    new.validate()
    return new


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Coerce a JSON value to the annotated type `tp`, or raise ConfigError naming `key`."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return coerce(value, arm, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: cannot be {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"{key}: {value!r} is not a valid choice; choose one of "
                + ", ".join(repr(c) for c in choices)
            )
        return value
    if origin in (tuple, list):
        args = get_args(tp)
        item = args[0] if args else Any
        if isinstance(value, str) and "," in value:
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, list | tuple):
            value = [value]
        return tuple(coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        return json.dumps(value)
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported field type {tp!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value
