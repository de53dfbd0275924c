"""Load parsed TOML into a tree of frozen dataclasses, reporting every problem at once.

The configuration of a program is one tree of ``@dataclass(frozen=True, slots=True)`` classes.
:func:`load_dataclass` walks that tree alongside the parsed mapping, converts each value by
the field's type hint and collects every problem it meets instead of stopping at the first;
:func:`load_toml` does the same for a file. Either raises one :class:`ConfigError` whose
``errors`` lists each problem with its key path, for example::

    carriers[0].window: expected int, got str
    carriers[1].nmae: unknown key (did you mean 'name'?)
    http.tokens: missing required key

What the loader understands, by type hint:

* ``str``, ``int``, ``float``, ``bool``; ``bool`` is never taken for ``int`` (nor the other
  way round), an ``int`` is accepted where a ``float`` is expected, and a ``float`` must be
  finite (TOML's ``inf`` and ``nan`` are refused);
* ``Enum`` subclasses, looked up by member value; ``Literal[...]`` of str/int/bool values;
* ``X | None`` (TOML has no null: the key is either absent, taking the field default, or holds
  an ``X``) and other unions (the first member type that accepts the value wins);
* ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``dict[str, X]``, and ``Any`` (taken as is);
* nested dataclasses, from TOML tables; arrays of tables become ``tuple[Section, ...]``.

Rules:

* A field without a default is required: a missing key, or a missing ``[section]`` whose
  dataclass field has no default, is an error. Nothing is filled in silently.
* A key that no field declares is an error, with a suggestion when it looks like a typo.
* ``field(metadata={"check": fn})`` runs ``fn(value)`` on a value read from the data (not on
  defaults); ``fn`` returns an error text, or ``None`` when the value is fine. :func:`check`
  builds that metadata; :func:`in_range`, :func:`one_of`, :func:`regex`, :func:`max_length`
  and :func:`non_empty` are common checks, and :func:`all_of` chains several.
* A dataclass may define ``validate(self) -> list[str]`` for rules that span fields. It runs
  once the object is built, that is once all its fields loaded without error. Each entry
  reads ``"key: text"`` with the key relative to the object (``"reconnect_max: ..."``); the
  loader puts the object's own path in front (``"carriers[0].reconnect_max: ..."``).

Type hints are resolved with :func:`typing.get_type_hints`, so the dataclasses may use
``from __future__ import annotations`` but must then be defined at module level. An
annotation the loader does not understand is a programming error and raises ``TypeError``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

__all__ = [
    "Check",
    "ConfigError",
    "all_of",
    "check",
    "in_range",
    "load_dataclass",
    "load_toml",
    "max_length",
    "non_empty",
    "one_of",
    "regex",
]

T = TypeVar("T")

Check = Callable[[Any], str | None]
"""A per-field check: the error text for a bad value, ``None`` for a good one."""


class ConfigError(Exception):
    """A configuration could not be loaded; ``errors`` lists every problem found.

    Each entry reads ``"<key path>: <what is wrong>"``. ``source`` is the file the
    configuration came from, when there was one.
    """

    def __init__(self, errors: Iterable[str], source: Path | None = None) -> None:
        self.errors: list[str] = list(errors)
        self.source = source
        super().__init__(self.errors)

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source is not None else ""
        count = len(self.errors)
        head = f"{where}{count} configuration error{'' if count == 1 else 's'}"
        return "\n  ".join([head + ":", *self.errors]) if self.errors else head


# -- per-field checks ---------------------------------------------------------------------


def check(fn: Check) -> dict[str, Check]:
    """Field metadata that runs ``fn`` on the loaded value: ``field(metadata=check(fn))``."""
    return {"check": fn}


def in_range(low: float | None = None, high: float | None = None) -> Check:
    """A check that a number lies in ``low..high`` (inclusive; ``None`` leaves a side open)."""

    def check_range(value: Any) -> str | None:
        if (low is not None and value < low) or (high is not None and value > high):
            if low is None:
                return f"must be at most {high:g}, got {value:g}"
            if high is None:
                return f"must be at least {low:g}, got {value:g}"
            return f"must be {low:g}..{high:g}, got {value:g}"
        return None

    return check_range


def one_of(choices: Iterable[Any]) -> Check:
    """A check that the value is one of ``choices``."""
    allowed = tuple(choices)
    shown = ", ".join(repr(c) for c in allowed)

    def check_choice(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {shown}, got {value!r}"

    return check_choice


def regex(pattern: str, what: str) -> Check:
    """A check that a string matches ``pattern`` in full; ``what`` describes the pattern."""
    compiled = re.compile(pattern)

    def check_match(value: Any) -> str | None:
        return None if compiled.fullmatch(value) else f"must be {what}, got {value!r}"

    return check_match


def max_length(limit: int) -> Check:
    """A check that a string or sequence has at most ``limit`` items."""

    def check_length(value: Any) -> str | None:
        if len(value) > limit:
            return f"must be at most {limit} characters long, got {len(value)}"
        return None

    return check_length


def non_empty(value: Any) -> str | None:
    """A check that a string or sequence is not empty."""
    return None if len(value) else "must not be empty"


def all_of(*checks: Check) -> Check:
    """A check that runs ``checks`` in turn and reports the first failure."""

    def check_all(value: Any) -> str | None:
        for fn in checks:
            problem = fn(value)
            if problem:
                return problem
        return None

    return check_all


# -- loading ------------------------------------------------------------------------------


class _Invalid:
    """Marks a value that failed to load (its errors are already recorded)."""

    __slots__ = ()


_INVALID: Final = _Invalid()
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NONE_TYPE: Final = type(None)


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    hint: Any
    required: bool
    check: Check | None


@functools.cache
def _fields_of(cls: type) -> tuple[_Field, ...]:
    """The loadable fields of a dataclass, with resolved type hints (computed once per class)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(_Field(f.name, hints[f.name], required, f.metadata.get("check")))
    return tuple(out)


def _join(path: str, key: str) -> str:
    if not _BARE_KEY.fullmatch(key):
        key = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{path}.{key}" if path else key


def _where(path: str) -> str:
    return path or "(top level)"


def _kind(value: Any) -> str:
    """The TOML name of a value's type, for messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _shown(value: Any) -> str:
    """A value for messages: scalars as written, tables and arrays by kind only."""
    return _kind(value) if isinstance(value, Mapping | list | tuple) else repr(value)


def _expected(hint: Any) -> str:
    """How a type hint reads in 'expected ...' messages."""
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return "table"
        if issubclass(hint, enum.Enum):
            return "one of " + ", ".join(repr(m.value) for m in hint)
        if hint in (list, tuple):
            return "array"
        if hint is dict:
            return "table"
        return hint.__name__
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return "array"
    if origin is dict:
        return "table"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(hint) if a is not _NONE_TYPE)
    return str(hint)


def _same_scalar(a: Any, b: Any) -> bool:
    """Equal and of the same type: not merely because ``True == 1`` or ``1 == 1.0``."""
    return type(a) is type(b) and a == b


class _Loader:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: str, text: str) -> _Invalid:
        self.errors.append(f"{_where(path)}: {text}")
        return _INVALID

    def wrong_type(self, path: str, hint: Any, value: Any) -> _Invalid:
        return self.error(path, f"expected {_expected(hint)}, got {_kind(value)}")

    def convert(self, hint: Any, value: Any, path: str) -> Any:
        """``value`` as ``hint`` describes it, or ``_INVALID`` after recording why not."""
        if hint is Any:
            return value
        if isinstance(hint, type):
            return self.convert_class(hint, value, path)
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            return self.convert_union(hint, args, value, path)
        if origin is typing.Literal:
            for choice in args:
                if _same_scalar(choice, value):
                    return choice
            return self.error(path, f"expected {_expected(hint)}, got {_shown(value)}")
        if origin is list:
            return self.convert_items(args[0] if args else Any, value, path, list)
        if origin is tuple:
            if not args or (len(args) == 2 and args[1] is Ellipsis):
                return self.convert_items(args[0] if args else Any, value, path, tuple)
            return self.convert_fixed_tuple(args, value, path)
        if origin is dict:
            return self.convert_dict(args[1] if args else Any, value, path)
        raise TypeError(f"{_where(path)}: unsupported type hint {hint!r}")

    def convert_class(self, cls: type, value: Any, path: str) -> Any:
        if dataclasses.is_dataclass(cls):
            if not isinstance(value, Mapping):
                return self.wrong_type(path, cls, value)
            return self.load(cls, value, path)
        if cls is bool:
            return value if isinstance(value, bool) else self.wrong_type(path, cls, value)
        if cls is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return self.wrong_type(path, cls, value)
        if cls is float:
            if not isinstance(value, int | float) or isinstance(value, bool):
                return self.wrong_type(path, cls, value)
            if not math.isfinite(value):
                return self.error(path, f"expected a finite number, got {value}")
            return float(value)
        if cls is str:
            return value if isinstance(value, str) else self.wrong_type(path, cls, value)
        if issubclass(cls, enum.Enum):
            for member in cls:
                if _same_scalar(member.value, value):
                    return member
            return self.error(path, f"expected {_expected(cls)}, got {_shown(value)}")
        if cls is list or cls is tuple:
            return self.convert_items(Any, value, path, cls)
        if cls is dict:
            return self.convert_dict(Any, value, path)
        raise TypeError(f"{_where(path)}: unsupported type {cls.__name__}")

    def convert_union(self, hint: Any, args: tuple[Any, ...], value: Any, path: str) -> Any:
        options = [a for a in args if a is not _NONE_TYPE]
        if len(options) == 1:  # X | None: TOML has no null, so the value must be an X
            return self.convert(options[0], value, path)
        for option in options:
            trial = _Loader()
            result = trial.convert(option, value, path)
            if result is not _INVALID:
                return result
        return self.wrong_type(path, hint, value)

    def convert_items(self, item: Any, value: Any, path: str, kind: type) -> Any:
        if not isinstance(value, list | tuple):
            return self.wrong_type(path, kind, value)
        items = [self.convert(item, v, f"{path}[{n}]") for n, v in enumerate(value)]
        if any(v is _INVALID for v in items):
            return _INVALID
        return kind(items)

    def convert_fixed_tuple(self, args: tuple[Any, ...], value: Any, path: str) -> Any:
        if not isinstance(value, list | tuple):
            return self.wrong_type(path, tuple, value)
        if len(value) != len(args):
            return self.error(path, f"expected {len(args)} items, got {len(value)}")
        items = [
            self.convert(a, v, f"{path}[{n}]")
            for n, (a, v) in enumerate(zip(args, value, strict=True))
        ]
        return _INVALID if any(v is _INVALID for v in items) else tuple(items)

    def convert_dict(self, item: Any, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            return self.wrong_type(path, dict, value)
        out: dict[str, Any] = {}
        before = len(self.errors)
        for key, v in value.items():
            if isinstance(key, str):
                out[key] = self.convert(item, v, _join(path, key))
            else:
                self.error(path, f"keys must be strings, got {_kind(key)}")
        return out if len(self.errors) == before else _INVALID

    def load(self, cls: type, data: Mapping[str, Any], path: str) -> Any:
        fields = _fields_of(cls)
        known = {f.name for f in fields}
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.error(_join(path, str(key)), f"unknown key{suggestion}")
        before = len(self.errors)
        kwargs: dict[str, Any] = {}
        for f in fields:
            key_path = _join(path, f.name)
            if f.name not in data:
                if f.required:
                    self.error(key_path, "missing required key")
                continue
            value = self.convert(f.hint, data[f.name], key_path)
            if value is _INVALID:
                continue
            if f.check is not None:
                problem = f.check(value)
                if problem:
                    self.error(key_path, problem)
                    continue
            kwargs[f.name] = value
        if len(self.errors) > before:
            return _INVALID
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as exc:  # a __post_init__ that refuses the values
            return self.error(path, str(exc))
        hook = getattr(obj, "validate", None)
        if callable(hook):
            problems: list[str] = hook()
            for problem in problems:
                self.errors.append(f"{path}.{problem}" if path else problem)
            if problems:
                return _INVALID
        return obj


def load_dataclass(cls: type[T], data: Mapping[str, Any], path: str = "") -> T:
    """Build a ``cls`` from parsed TOML ``data``; raise :class:`ConfigError` listing every
    problem found. ``path`` is the key path of ``data`` itself, put in front of every error."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    loader = _Loader()
    if not isinstance(data, Mapping):
        loader.wrong_type(path, cls, data)
        raise ConfigError(loader.errors)
    result = loader.load(cls, data, path)
    if loader.errors or result is _INVALID:
        raise ConfigError(loader.errors)
    obj: T = result
    return obj


def load_toml(cls: type[T], path: Path) -> T:
    """Read a TOML file and build a ``cls`` from it.

    An unreadable file, bad TOML (tomllib gives the line and column) and every problem in
    the values all raise :class:`ConfigError`; its ``source`` is ``path``, and the read and
    syntax errors also name the file in their text.
    """
    try:
        with path.open("rb") as fp:
            data = tomllib.load(fp)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"], path) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"], path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc}"], path) from None
    try:
        return load_dataclass(cls, data)
    except ConfigError as exc:
        raise ConfigError(exc.errors, path) from None
