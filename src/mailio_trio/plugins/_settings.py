"""Plugin configuration checked when the plugin is registered, not per connection.

A bad value in ``Config.plugins["command/name"]`` must stop the server from
starting with one line naming the key (:class:`~mailio_trio.config.ConfigError`),
not surface as ``451`` on every client's command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from mailio_trio.config import ConfigError

if TYPE_CHECKING:
    from mailio_trio.chain import Chain

T = TypeVar("T")


def check(chain: Chain, key: str, cls: type[T]) -> None:
    """Build ``cls`` from ``chain.plugins[key]`` once, turning any problem into a ConfigError."""
    value = chain.plugins.get(key)
    if value is None or value is True or value is False or isinstance(value, cls):
        return
    if not isinstance(value, Mapping):
        raise ConfigError(f"plugins.{key} = {value!r}: must be a table, true or false")
    known = {a.alias for a in attrs.fields(cls)}  # type: ignore[arg-type]  # cls is an attrs class
    for name in value:
        if name not in known:
            raise ConfigError(
                f"plugins.{key}.{name}: unknown setting; allowed: {', '.join(sorted(known))}"
            )
    try:
        cls(**value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"plugins.{key}: {exc}") from None


def positive(key: str) -> Any:
    def validate(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(
                f"plugins.{key}.{attribute.name} = {value!r}: must be a number greater than 0"
            )

    return validate
