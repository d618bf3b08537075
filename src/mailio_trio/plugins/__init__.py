"""Plugins: one module per handler, each with a ``register(chain)``.

The core plugins are the protocol itself; :func:`register_core` adds them to
every server's chain, under the name ``core`` of their command.

Optional plugins are switched on from configuration by
:func:`register_configured`: a key of :data:`OPTIONAL_PLUGINS` present in
``Config.plugins`` (with any value but ``False``) registers that module. A few
are on by default (:data:`DEFAULT_ON`) and are switched off with ``False``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mailio_trio.plugins import (
    auth,
    connect,
    data,
    ehlo,
    helo,
    help,
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
    from collections.abc import Callable

    from mailio_trio.chain import Chain
    from mailio_trio.config import Config

CORE_PLUGINS = (
    connect,
    helo,
    ehlo,
    mail,
    rcpt,
    data,
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
