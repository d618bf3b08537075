"""TOML tables <-> the attrs configuration tree, with one-line errors.

The conversion is generic: a ``Config`` field whose value is an attrs class is
a TOML section (``[limits]``, ``[maildir]``, and whatever sections are added
later); ``plugins`` is the ``[plugins]`` table; every other field lives in
``[server]``. Types are checked from the field annotations before the classes
are built, so a wrong type reads ``limits.idle_timeout = "x": must be a number
greater than 0`` rather than a ``TypeError`` from deep inside attrs.

TOML has no null: a field whose value is ``None`` is left out of ``show``
output and means "the default" when absent.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from mailio_trio.config._validators import ConfigError, callable_name, format_value, toml_key

if TYPE_CHECKING:
    from mailio_trio.config._config import Config

SERVER = "server"
PLUGINS = "plugins"
_PLUGIN_KEY = re.compile(r"[a-z0-9_-]+/[A-Za-z0-9_.-]+\Z")


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and parse a TOML file; every failure is a one-line :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None


# --- tables -> attrs --------------------------------------------------------


def _default(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # attrs.Factory is a class at run time
        return default.factory()
    return default


def _sections(cls: type[Any]) -> dict[str, attrs.Attribute[Any]]:
    """The fields of ``cls`` that are whole sections (their value is an attrs instance)."""
    return {f.name: f for f in attrs.fields(cls) if attrs.has(type(_default(f)))}


def _optional_sections(cls: type[Any]) -> dict[str, type[Any]]:
    """Fields that are ``None`` until configured but a section when given (``[dns]``).

    Their annotation is ``X | None`` with ``X`` an attrs class of ``cls``'s module.
    """
    import sys

    module = sys.modules[cls.__module__]
    out: dict[str, type[Any]] = {}
    for f in attrs.fields(cls):
        if f.default is None and isinstance(f.type, str) and f.type.endswith(" | None"):
            candidate = getattr(module, f.type.removesuffix(" | None"), None)
            if isinstance(candidate, type) and attrs.has(candidate):
                out[f.name] = candidate
    return out


def _unknown(where: str, key: str, allowed: list[str]) -> ConfigError:
    name = f"{where}.{key}: unknown key" if where else f"[{key}]: unknown section"
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]}?" if close else "allowed: " + ", ".join(allowed)
    return ConfigError(f"{name} ({hint})")


def _check_type(where: str, field: attrs.Attribute[Any], value: Any) -> None:
    """Refuse a value whose TOML type cannot be what the field's annotation says."""
    annotation = str(field.type or "").replace(" | None", "")
    numeric = annotation in ("int", "float")
    if numeric and field.validator is not None:
        return  # the field's own validator says what range is allowed, in one line
    problem = None
    if annotation == "bool" and not isinstance(value, bool):
        problem = "must be true or false"
    elif annotation == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        problem = "must be a whole number"
    elif annotation == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
        problem = "must be a number"
    elif annotation in ("str", "Path") and not isinstance(value, str):
        problem = "must be a string"
    elif annotation == "tuple[str, ...]" and not (
        isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    ):
        problem = "must be a list of strings"
    if problem:
        raise ConfigError(f"{where}.{field.name} = {format_value(value)}: {problem}")


def build_section(
    cls: type[Any], table: Any, where: str, extra: Mapping[str, Any] | None = None
) -> Any:
    """``cls`` from the ``[where]`` table: unknown keys and wrong types are one-line errors."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{where}] must be a table, not {format_value(table)}")
    fields = {f.name: f for f in attrs.fields(cls)}
    sections = {**_sections(cls), **_optional_sections(cls)}
    allowed = [n for n in fields if n not in sections and n not in (extra or {}) and n != PLUGINS]
    kwargs: dict[str, Any] = dict(extra or {})
    for key, value in table.items():
        if key not in allowed:
            raise _unknown(where, key, allowed)
        _check_type(where, fields[key], value)
        kwargs[fields[key].alias or key] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        # A converter refused a value; the key is among those given.
        raise ConfigError(f"[{where}]: {exc}") from None


def _plugins(table: Any) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[plugins] must be a table, not {format_value(table)}")
    for key, value in table.items():
        if not _PLUGIN_KEY.match(key):
            raise ConfigError(
                f'plugins.{toml_key(key)}: a plugin key is "command/name", e.g. "rcpt/dnsbl"'
            )
        if not isinstance(value, bool | Mapping):
            raise ConfigError(
                f'plugins."{key}" = {format_value(value)}: must be true, false or a table'
            )
    return dict(table)


def config_from_table(cls: type[Config], table: Mapping[str, Any]) -> Config:
    """Build ``cls`` (``Config``) from ``{"server": ..., "limits": ..., ...}``."""
    sections = _sections(cls)
    optional = _optional_sections(cls)
    allowed = [SERVER, *sections, *optional, PLUGINS]
    extra: dict[str, Any] = {}
    for key, value in table.items():
        if key not in allowed:
            raise _unknown("", key, allowed)
        if key in sections:
            section_cls = type(_default(sections[key]))
            extra[sections[key].alias or key] = build_section(section_cls, value, key)
        elif key in optional:
            extra[key] = build_section(optional[key], value, key)
        elif key == PLUGINS:
            extra[PLUGINS] = _plugins(value)
    config: Config = build_section(cls, table.get(SERVER, {}), SERVER, extra)
    return config


# --- attrs -> tables --------------------------------------------------------


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in attrs.fields(type(value))
            if getattr(value, f.name) is not None
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if callable(value):
        return callable_name(value)
    return value


def config_to_table(config: Config) -> dict[str, Any]:
    sections = _sections(type(config))
    server: dict[str, Any] = {}
    out: dict[str, Any] = {SERVER: server}
    for field in attrs.fields(type(config)):
        value = getattr(config, field.name)
        if value is None:
            continue
        if field.name in sections or attrs.has(type(value)):  # [dns] once configured
            out[field.name] = _plain(value)
        elif field.name != PLUGINS:
            server[field.name] = _plain(value)
    out[PLUGINS] = _plain(config.plugins)  # last: its sub-tables would swallow plain keys
    return out


def dumps(table: Mapping[str, Any], prefix: str = "") -> str:
    """Write a table as TOML: plain keys first, then sub-tables as ``[a.b]`` sections."""
    lines: list[str] = []
    subtables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            subtables.append((key, value))
        else:
            lines.append(f"{toml_key(key)} = {format_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in subtables:
        name = f"{prefix}.{toml_key(key)}" if prefix else toml_key(key)
        body = dumps(value, name)
        has_plain = any(not isinstance(v, Mapping) for v in value.values())
        if has_plain or not value:
            out += f"\n[{name}]\n"
        out += body
    return out
