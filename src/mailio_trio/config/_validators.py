"""``ConfigError`` and the checks every configuration section shares.

A leaf: it imports nothing of the server, so ``tls.py``, plugins and the CLI
can all raise :class:`ConfigError` and reuse the checks without a cycle.
Each check refuses a bad value with one line naming the key, the value and
what is allowed.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import attrs

__all__ = [
    "ConfigError",
    "at_least",
    "callable_name",
    "each",
    "field_key",
    "format_value",
    "networks",
    "non_negative",
    "parse_listen",
    "positive",
    "show",
    "strings",
    "toml_key",
]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message is one line for the operator."""


def positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"{field_key(instance, attribute)} = {show(value)}: must be a number greater than 0"
        )


def non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(
            f"{field_key(instance, attribute)} = {show(value)}: must be a number >= 0 (0: off)"
        )


def at_least(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            key = field_key(instance, attribute)
            raise ConfigError(f"{key} = {show(value)}: must be a whole number >= {minimum}")

    return check


def field_key(instance: object, attribute: attrs.Attribute[Any]) -> str:
    section = getattr(type(instance), "_section", "")
    return f"{section}.{attribute.name}" if section else attribute.name


def each(value: Any, key: str, parse: Callable[[str], object], expected: str) -> tuple[str, ...]:
    """One string or many, each parsed by ``parse`` and given back in its canonical form.

    Raises:
      ConfigError: One line naming ``key``, the bad item and ``expected``.
    """
    if isinstance(value, str):
        value = (value,)
    out = []
    for item in value:
        try:
            out.append(str(parse(str(item).strip())))
        except ValueError:
            raise ConfigError(f"{key} = {item!r}: must be {expected}") from None
    return tuple(out)


def networks(value: Any, key: str) -> tuple[str, ...]:
    """CIDR strings from one or many; a bad one is a :class:`ConfigError` naming ``key``."""
    return each(
        value,
        key,
        lambda text: ipaddress.ip_network(text, strict=False),
        "networks in CIDR form (192.0.2.0/24) or addresses",
    )


def show(value: object) -> str:
    """Render ``value`` as it would be written in TOML, for one-line error messages."""
    return format_value(value)


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:25`` for IPv6); raises ``ValueError`` with the reason."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:2525")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ValueError("must name a host, e.g. 127.0.0.1:2525 or [::1]:2525")
    return host, int(port)


def strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def format_value(value: object) -> str:
    """One value in TOML syntax (strings double-quoted), for messages and ``show``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, enum.Enum):
        return format_value(value.value)
    if isinstance(value, Path):
        return format_value(str(value))
    if isinstance(value, str):
        # JSON string escapes (\", \\, \n, \uXXXX) are all valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{toml_key(str(k))} = {format_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if callable(value):
        return format_value(callable_name(value))
    return json.dumps(str(value))


def callable_name(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', '?')}"


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)
