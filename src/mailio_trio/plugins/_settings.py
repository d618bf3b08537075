"""Plugin configuration checked when the plugin is registered, not per connection.

A bad value in ``Config.plugins["command/name"]`` must stop the server from
starting with one line naming the key (:class:`~mailio_trio.config.ConfigError`),
not surface as ``451`` on every client's command. ``config check``, ``serve``
and ``Server`` all check a table with :meth:`Settings.check_value`, so a file
``config check`` passes is one ``serve`` starts with.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from mailio_trio.config import ConfigError
from mailio_trio.config._validators import format_value, toml_key

if TYPE_CHECKING:
    from mailio_trio.chain import Chain


def plugin_key(key: str) -> str:
    """``plugins.rcpt/dnsbl``: how every plugin message names the table."""
    return f"plugins.{key}"


def unknown_name(where: str, name: str, known: list[str], mailio: Mapping[str, str]) -> str:
    """``where.name: ... (did you mean X?)``: mail-io's names first, then close spellings."""
    if name in mailio:
        return f"{where}.{toml_key(name)}: mail-io's name (did you mean {mailio[name]}?)"
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}?" if close else "allowed: " + ", ".join(sorted(known))
    return f"{where}.{toml_key(name)}: unknown setting ({hint})"


@attrs.frozen
class Settings:
    """A plugin's table: the attrs class that reads it, and mail-io's names for its keys.

    ``mailio_names`` maps a mail-io option name to ours (or to where it went,
    ``"[dns] nameservers"``); it is used only to word the error, never to
    accept mail-io's spelling: one name per setting keeps files greppable.
    """

    key: str
    cls: type[Any]
    mailio_names: Mapping[str, str] = attrs.field(factory=dict)

    def check(self, chain: Chain) -> None:
        """Check ``chain.plugins[key]`` (at registration)."""
        self.check_value(chain.plugins.get(self.key))

    def check_value(self, value: Any) -> None:
        """Build ``cls`` from ``value`` once, turning any problem into one ConfigError line."""
        where = plugin_key(self.key)
        if value is None or value is True or value is False or isinstance(value, self.cls):
            return
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} = {format_value(value)}: must be a table, true or false")
        known = [str(a.alias) for a in attrs.fields(self.cls)]
        for name in value:
            if name not in known:
                raise ConfigError(unknown_name(where, name, known, self.mailio_names))
        try:
            self.cls(**value)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None


def positive(key: str) -> Any:
    def validate(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(
                f"plugins.{key}.{attribute.name} = {value!r}: must be a number greater than 0"
            )

    return validate
