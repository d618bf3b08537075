"""Plugins: one module per handler, each with a ``register(chain)``.

The core plugins are the protocol itself; :func:`register_core` adds them to
every server's chain, under the name ``core`` of their command.

Optional plugins are switched on from configuration by
:func:`register_configured`: a key of :data:`OPTIONAL_PLUGINS` present in
``Config.plugins`` (with any value but ``False``) registers that module. A few
are on by default (:data:`DEFAULT_ON`) and are switched off with ``False``.

Every key of ``Config.plugins`` must name a handler: a built-in one
(:func:`builtin_keys`) or one the application registered.
:func:`check_plugins` refuses any other key (a typo such as ``rcpt/dnsbll``
would otherwise leave the blocklist silently off) and checks each optional
plugin's table with the code that plugin registers with.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mailio_trio.plugins import (
    auth,
    bdat,
    connect,
    data,
    ehlo,
    helo,
    help,
    lhlo,
    mail,
    noop,
    queue,
    quit,
    rcpt,
    rset,
    starttls,
    timeout,
    unrecognized,
    vrfy,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mailio_trio.chain import Chain
    from mailio_trio.config import Config
    from mailio_trio.plugins._settings import Settings

CORE_PLUGINS = (
    connect,
    helo,
    ehlo,
    lhlo,
    mail,
    rcpt,
    data,
    bdat,
    queue,
    rset,
    noop,
    vrfy,
    help,
    quit,
    timeout,
    unrecognized,
    starttls,
    auth,
)


def register_core(chain: Chain) -> None:
    """Register every core plugin's handlers on ``chain``; declare :data:`KNOWN_PLUGINS`."""
    chain.know(KNOWN_PLUGINS)
    for plugin in CORE_PLUGINS:
        plugin.register(chain)


OPTIONAL_PLUGINS: dict[str, str] = {
    # "command/name" in Config.plugins -> the module whose register(chain) adds it.
    # Keys are registered in this order, which is also their run order within a command.
    "connect/rdns": "mailio_trio.plugins.rdns",
    "connect/pregreet": "mailio_trio.plugins.pregreet",
    "mail/limits": "mailio_trio.plugins.limits",
    "mail/spf": "mailio_trio.plugins.spf",
    "rcpt/limits": "mailio_trio.plugins.limits",
    "rcpt/dnsbl": "mailio_trio.plugins.dnsbl",
    "rcpt/greylist": "mailio_trio.plugins.greylist",
    "queue/mailauth": "mailio_trio.plugins.mailauth",
    "queue/spamd": "mailio_trio.plugins.spamd",
}

KNOWN_PLUGINS: frozenset[str] = frozenset(
    [
        *OPTIONAL_PLUGINS,
        # Registered from their own config sections (see register_configured and
        # Server._start_relay), not from Config.plugins.
        "rcpt/relay",
        "rcpt/local",
        "queue/maildir",
        "queue/relay",
    ]
)
"""Every built-in plugin a handler may order against, whether it is on or off here.

mail-io's README orders ``before: 'dnsbl'`` because its dnsbl is always
there; such an order binds when the plugin is registered, is ignored while it
is not (see :meth:`Chain.know <mailio_trio.chain.Chain.know>`).
"""

DEFAULT_ON: dict[str, Callable[[Config, bool], bool]] = {
    # Reverse DNS is on wherever a resolver is configured (mail-io looked it up always).
    "connect/rdns": lambda config, has_resolver: has_resolver,
    # Per-connection limits live in Config.limits; the handlers cost nothing when unset.
    "mail/limits": lambda config, has_resolver: True,
    "rcpt/limits": lambda config, has_resolver: True,
    # Email authentication is recorded wherever the server looks anything up.
    "mail/spf": lambda config, has_resolver: has_resolver,
    "queue/mailauth": lambda config, has_resolver: has_resolver,
}


def register_configured(chain: Chain, config: Config, *, has_resolver: bool) -> None:
    """Register the optional plugins ``config`` switches on (see :data:`OPTIONAL_PLUGINS`).

    Plugins that must follow one another say so with ``if_present`` ordering
    (``queue/maildir`` after ``queue/spamd``), so registration order is only
    the tie-break.
    """
    done: set[str] = set()
    for key, module_name in OPTIONAL_PLUGINS.items():
        setting = config.plugins.get(key)
        default = DEFAULT_ON.get(key)
        wanted = setting is not None or (default is not None and default(config, has_resolver))
        if not wanted or setting is False or module_name in done:
            continue  # a False key is also skipped by Chain.add, so it stays nameable
        done.add(module_name)
        importlib.import_module(module_name).register(chain)
    # A capture sink (maildir.any_domain) stores for every domain: nothing to relay.
    if (config.maildir.enabled and not config.maildir.any_domain) or config.relay.enabled:
        from mailio_trio.plugins import rcpt_relay

        # Wherever mail is delivered, the relay policy guards it: no open relay
        # unless relay.open_relay. A bare embedded server (user's own queue
        # handlers, a test sink) has no notion of "local" and takes everything.
        rcpt_relay.register(chain)
    if config.maildir.enabled:
        from mailio_trio.plugins import maildir, rcpt_local

        rcpt_local.register(chain)
        maildir.register(chain)


CONDITIONAL_KEYS: dict[str, str] = {
    # Handlers registered from a Config section rather than a [plugins] table:
    # the key names them (false removes one); the section holds their settings.
    "rcpt/relay": "[relay]",
    "queue/relay": "[relay]",
    "rcpt/local": "[maildir]",
    "queue/maildir": "[maildir]",
    "queue/dsn": "[maildir]",
    "queue/print": "the serve --capture/--print flags",
}

_SETTINGS_HOME = {
    **CONDITIONAL_KEYS,
    "auth/core": "[auth]",
    "auth/users": "[auth] users",
    "mail/limits": "[limits]",
    "rcpt/limits": "[limits]",
}


@functools.cache
def builtin_keys() -> frozenset[str]:
    """Every ``"command/name"`` a built-in handler registers under."""
    from mailio_trio.chain import Chain

    chain = Chain()
    register_core(chain)
    return chain.keys() | OPTIONAL_PLUGINS.keys() | CONDITIONAL_KEYS.keys()


def settings_of(key: str) -> Settings | None:
    """The optional plugin's table checker for ``key``, or ``None`` if it has no table."""
    module_name = OPTIONAL_PLUGINS.get(key)
    if module_name is None:
        return None
    settings: Settings | None = getattr(importlib.import_module(module_name), "SETTINGS", None)
    return settings


def check_plugins(plugins: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse unknown keys and bad tables in ``Config.plugins``.

    Args:
      plugins: ``Config.plugins``.
      known: Keys that may appear: :func:`builtin_keys` and the application's handlers.

    Raises:
      ConfigError: One line naming the key and the fix (did-you-mean, or the keys allowed).
    """
    from mailio_trio.config import ConfigError
    from mailio_trio.plugins._settings import plugin_key

    allowed = sorted(set(known))
    for key, value in plugins.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f'did you mean "{close[0]}"?' if close else "known: " + ", ".join(allowed)
            raise ConfigError(f"{plugin_key(key)}: unknown plugin ({hint})")
        settings = settings_of(key)
        if settings is not None:
            settings.check_value(value)
        elif isinstance(value, Mapping) and key in builtin_keys():
            home = _SETTINGS_HOME.get(key)
            where = f"its settings are {home}" if home else "it has no settings"
            raise ConfigError(f"{plugin_key(key)}: takes true or false, not a table ({where})")
