"""Frozen settings read from ``PREFIX_*`` environment variables, without pydantic.

Every command reads :class:`foundation.settings.Settings` first; built on pydantic-settings,
importing it cost a read-only CLI command about half its start-up (pydantic and
pydantic-settings: ~100 ms of CPU on the 2-core machine of README "CLI behaviour"). This is the
small part of pydantic-settings the settings use, with its behaviour kept: environment names
case-insensitive, keyword overrides before the environment, unknown names ignored, values
coerced leniently (``" 7"`` and ``"5.0"`` are the integer, ``yes``/``off`` are booleans) and
refused with pydantic's wording (``Input should be greater than 0``), one message per field.

A settings class is a frozen dataclass subclassing :class:`EnvSettings`; a field's constraints
ride in ``Annotated[float, Bounds(gt=0)]``; a check of one field is a classmethod marked
:func:`validates` (it receives the coerced value and the fields checked before it).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar, Union, get_args, get_origin, get_type_hints

__all__ = ["Bounds", "EnvSettings", "FieldErrors", "validates"]

_C = TypeVar("_C", bound=Callable[..., Any])
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Numeric limits of a field (``Annotated[int, Bounds(ge=1, le=5)]``)."""

    gt: float | None = None
    ge: float | None = None
    le: float | None = None

    def check(self, value: float) -> None:
        if self.gt is not None and not value > self.gt:
            raise ValueError(f"Input should be greater than {self.gt}")
        if self.ge is not None and not value >= self.ge:
            raise ValueError(f"Input should be greater than or equal to {self.ge}")
        if self.le is not None and not value <= self.le:
            raise ValueError(f"Input should be less than or equal to {self.le}")


class FieldErrors(ValueError):
    """Settings refused: ``errors`` maps each bad field to its message, in declaration order."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in errors.items()))
        self.errors = errors


def validates(*names: str) -> Callable[[_C], _C]:
    """Mark a classmethod ``(cls, value, checked) -> value`` as the check of fields ``names``;
    ``checked`` holds the fields declared (and accepted) before it. Raise ``ValueError`` to refuse."""

    def mark(fn: _C) -> _C:
        target = fn.__func__ if isinstance(fn, classmethod) else fn
        target.__validates__ = names  # type: ignore[attr-defined]
        return fn

    return mark


class EnvSettings:
    """Base of a frozen dataclass of settings: :meth:`from_env`, ``model_copy``, ``model_fields_set``."""

    SECRETS: frozenset[str] = frozenset()
    """Fields shown as ``***`` by ``repr``."""
    URLS: frozenset[str] = frozenset()
    """Fields whose passwords ``repr`` masks (see :func:`foundation.redact.mask_url`)."""

    @classmethod
    def from_env(cls, env_prefix: str, **overrides: object) -> Self:
        """The environment's ``PREFIX_FIELD`` values, ``overrides`` first; :class:`FieldErrors` if refused."""
        env = {key.lower(): value for key, value in os.environ.items()}
        prefix = env_prefix.lower()
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        checks, hints = _shape(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if not f.init:
                continue
            raw = overrides[f.name] if f.name in overrides else env.get(prefix + f.name, _UNSET)
            try:
                value = _default(f) if raw is _UNSET else _coerce(raw, hints[f.name])
                for check in checks.get(f.name, ()):
                    value = check(value, values)
            except ValueError as exc:
                errors[f.name] = str(exc)
                continue
            values[f.name] = value
        if errors:
            raise FieldErrors(errors)
        names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        set_ = frozenset(n for n in names if n in overrides or prefix + n in env)
        made = cls(**values)
        object.__setattr__(made, "_fields_set", set_)
        return made

    @property
    def model_fields_set(self) -> frozenset[str]:
        """The fields given explicitly (environment, overrides or ``model_copy``), as in pydantic."""
        fields_set: frozenset[str] = getattr(self, "_fields_set", frozenset())
        return fields_set

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A copy with ``update`` applied (not validated, as pydantic's ``model_copy``)."""
        copied = dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]
        object.__setattr__(copied, "_fields_set", self.model_fields_set | set(update or ()))
        return copied

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        from foundation.redact import MASK, mask_url

        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None and f.name in self.SECRETS:
                yield f.name, MASK
            elif isinstance(value, str) and f.name in self.URLS:
                yield f.name, mask_url(value)
            else:
                yield f.name, value

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={value!r}" for name, value in self.__repr_args__())
        return f"{type(self).__name__}({args})"


_UNSET: Any = object()
_Check = Callable[[Any, dict[str, Any]], Any]


_Shape = tuple[dict[str, list[_Check]], dict[str, Any]]
_SHAPES: dict[type, _Shape] = {}


def _shape(cls: type[EnvSettings]) -> _Shape:
    """The checks of each field (:func:`validates`) and the fields' types (annotations may be
    strings), worked out once per class."""
    if (known := _SHAPES.get(cls)) is not None:
        return known
    checks: dict[str, list[_Check]] = {}
    for klass in reversed(cls.__mro__):
        for attr, member in vars(klass).items():
            fn = member.__func__ if isinstance(member, classmethod) else None
            for name in getattr(fn, "__validates__", ()):
                checks.setdefault(name, []).append(getattr(cls, attr))
    shape = _SHAPES[cls] = (checks, get_type_hints(cls, include_extras=True))
    return shape


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _coerce(raw: object, hint: Any) -> Any:
    """``raw`` (a string from the environment, or an override's value) as the type ``hint``."""
    bounds: list[Bounds] = []
    while get_origin(hint) is Annotated:
        hint, *extra = get_args(hint)
        bounds += [b for b in extra if isinstance(b, Bounds)]
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if raw is None:
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
        return _coerce(raw, hint)
    value = _scalar(raw, hint)
    for b in bounds:
        b.check(value)
    return value


def _scalar(raw: object, hint: Any) -> Any:
    if get_origin(hint) is Literal:
        if raw in get_args(hint):
            return raw
        choices = [repr(a) for a in get_args(hint)]
        raise ValueError(f"Input should be {', '.join(choices[:-1])} or {choices[-1]}")
    if hint is bool:
        return _bool(raw)
    if hint is int:
        return _int(raw)
    if hint is float:
        return _float(raw)
    if hint is Path:
        if isinstance(raw, str | os.PathLike):
            return Path(raw)
        raise ValueError("Input is not a valid path")
    if hint is str:
        if isinstance(raw, str):
            return raw
        raise ValueError("Input should be a valid string")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(raw)
        except ValueError:
            choices = [repr(m.value) for m in hint]
            raise ValueError(f"Input should be {', '.join(choices[:-1])} or {choices[-1]}") from None
    raise TypeError(f"unsupported settings type {hint!r}")


def _bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and (text := raw.strip().lower()) in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError("Input should be a valid boolean, unable to interpret input")


def _int(raw: object) -> int:
    if isinstance(raw, int):
        return int(raw)
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            try:
                number = float(raw.strip())
            except ValueError:
                number = 0.5
            if number.is_integer():
                return int(number)
    raise ValueError("Input should be a valid integer, unable to parse string as an integer")


def _float(raw: object) -> float:
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            pass
    raise ValueError("Input should be a valid number, unable to parse string as a number")
