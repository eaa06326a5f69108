"""Experiment configs: frozen dataclasses with named scales and typed, checked overrides.

Overrides arrive as strings from `--set KEY=VALUE`; VALUE is parsed as JSON when it parses, then
coerced to the field's annotated type. Unknown keys, wrong types and out-of-range values raise
ConfigError before any work starts (nanoGPT's configurator does the same).

Generic limits, applied to every overridden field (so that no override can exhaust memory or
time, or smuggle in a NaN): floats are finite; integers lie within ±max(100 × the largest value
any scale uses, 10 000); tuples are non-empty, at most max(10 × the longest any scale uses, 64)
long and without repeated entries; strings at most 4096 characters. A config class can replace
a field's range with `LIMITS = {"field": (lo, hi)}` and allow repeats or emptiness with
`ALLOW_DUPLICATES` / `ALLOW_EMPTY`; a scale whose own value is empty or repeats is allowed too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable
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
    LIMITS: per-field (lo, hi) ranges that replace the generic integer ceiling (module doc).
    """

    FREE_CHOICES: ClassVar[dict[str, FreeChoice]] = {}
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {}
    ALLOW_DUPLICATES: ClassVar[frozenset[str]] = frozenset()
    ALLOW_EMPTY: ClassVar[frozenset[str]] = frozenset()

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


def require_range(name: str, value: float, lo: float, hi: float) -> None:
    """Raise ConfigError unless lo ≤ value ≤ hi and value is finite (for `validate`)."""
    finite = not isinstance(value, float) or math.isfinite(value)
    if not (finite and lo <= value <= hi):
        raise ConfigError(f"{name}: {_brief(value)} is out of range; valid: {lo:g} to {hi:g}")


MAX_VALUE_CHARS = 10_000
MAX_STR_CHARS = 4096


def parse_override(text: str) -> tuple[str, Any]:
    """Split 'KEY=VALUE'; VALUE is JSON when it parses, else the raw string."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {_brief(text)}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if len(raw) > MAX_VALUE_CHARS:
        raise ConfigError(f"--set {_brief(key)}: value is {len(raw)} characters long; "
                          f"at most {MAX_VALUE_CHARS}")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ConfigError(f"--set {_brief(key)}: value is nested too deeply") from None
    except ValueError:  # not JSON (or an integer too long to parse): the raw string
        value = raw
    return key, value


def parse_overrides(texts: Iterable[str]) -> dict[str, Any]:
    """Parse every `--set KEY=VALUE`; a key given twice is refused (which one was meant?)."""
    out: dict[str, Any] = {}
    for text in texts:
        key, value = parse_override(text)
        if key in out:
            raise ConfigError(f"--set {_brief(key)} is given twice; give each key once")
        out[key] = value
    return out


def apply_overrides(cfg: ExperimentConfig, overrides: dict[str, Any]) -> ExperimentConfig:
    """Return cfg with overrides applied, coerced to the field types and validated."""
    hints = get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(names)}")
        changes[key] = coerce(value, hints[key], key)
        check_limits(type(cfg), key, changes[key])
    new = dataclasses.replace(cfg, **changes)
    new.validate()
    return new


def _scale_values(cls: type[ExperimentConfig], key: str) -> list[Any]:
    vals = []
    for scale in SCALES:
        try:
            vals.append(getattr(getattr(cls, scale)(), key))
        except Exception:  # a scale that cannot be built says nothing about the range
            continue
    return vals


def check_limits(cls: type[ExperimentConfig], key: str, value: Any) -> None:
    """The generic limits of the module doc for one overridden field (after coercion)."""
    scales = _scale_values(cls, key)
    if isinstance(value, tuple):
        seqs = [v for v in scales if isinstance(v, tuple)]
        if not value and key not in cls.ALLOW_EMPTY and all(seqs):
            raise ConfigError(f"{key}: must not be empty; give at least one value")
        longest = max(10 * max((len(v) for v in seqs), default=0), 64)
        if len(value) > longest:
            raise ConfigError(f"{key}: {len(value)} entries is too many; at most {longest}")
        repeats = [v for i, v in enumerate(value) if v in value[:i]]
        if (repeats and key not in cls.ALLOW_DUPLICATES
                and all(len(set(v)) == len(v) for v in seqs)):
            raise ConfigError(f"{key}: {_brief(repeats[0])} is given more than once; "
                              "give each entry once")
        items = [v for seq in seqs for v in seq]
        for i, v in enumerate(value):
            _check_scalar(cls, key, f"{key}[{i}]", v, items)
    else:
        _check_scalar(cls, key, key, value, scales)


def _check_scalar(cls: type[ExperimentConfig], key: str, name: str, value: Any,
                  scale_values: list[Any]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}: {value} is not a finite number; give a finite one")
    if key in cls.LIMITS and isinstance(value, int | float):
        lo, hi = cls.LIMITS[key]
        require_range(name, value, lo, hi)
    elif isinstance(value, int):
        ints = [abs(v) for v in scale_values if isinstance(v, int) and not isinstance(v, bool)]
        hi = max(100 * max(ints, default=0), 10_000)
        if abs(value) > hi:
            raise ConfigError(f"{name}: {_brief(value)} is out of range; valid: at most {hi:,} "
                              "in size (100× the largest value of any scale)")
    elif isinstance(value, str) and len(value) > MAX_STR_CHARS:
        raise ConfigError(f"{name}: {len(value)} characters is too long; at most "
                          f"{MAX_STR_CHARS}")


def _brief(value: Any, limit: int = 60) -> str:
    """repr(value), shortened for one-line messages."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"{'-' if value < 0 else ''}~10^{int(math.log10(abs(value)))}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        raise ConfigError(errors[0] if errors else f"{key}: cannot be {_brief(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"{key}: {_brief(value)} is not a valid choice; choose one of "
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
        raise ConfigError(f"{key}: expected true or false, got {_brief(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {_brief(value)}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"{key}: {_brief(value)} is too large; give a finite "
                                  "number") from None
        raise ConfigError(f"{key}: expected a number, got {_brief(value)}")
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
