"""Plugins: one module per handler, each with a ``register(chain)``.

The core plugins are the protocol itself; :func:`register_core` adds them to
every server's chain, under the name ``core`` of their command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio.plugins import (
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
    timeout,
    unrecognized,
    vrfy,
)

if TYPE_CHECKING:
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
)


def register_core(chain: Chain) -> None:
    """Register every core plugin's handlers on ``chain``."""
    for plugin in CORE_PLUGINS:
        plugin.register(chain)


def register_configured(chain: Chain, config: Config) -> None:
    """Register the optional plugins ``config`` turns on (``Server`` calls this after the core).

    Order matters where plugins refer to each other: a queue handler that
    marks spam must be registered before ``queue/maildir``, which reads it.
    """
    if config.maildir.enabled or config.relay.enabled:
        from mailio_trio.plugins import rcpt_relay

        # Wherever mail is delivered, the relay policy guards it: no open relay
        # unless relay.open_relay. A bare embedded server (user's own queue
        # handlers, a test sink) has no notion of "local" and takes everything.
        rcpt_relay.register(chain)
    if config.maildir.enabled:
        from mailio_trio.plugins import maildir, rcpt_local

        rcpt_local.register(chain)
        maildir.register(chain)
