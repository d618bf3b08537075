"""Plugins: one module per handler, each with a ``register(chain)``.

The core plugins are the protocol itself; :func:`register_core` adds them to
every server's chain, under the name ``core`` of their command.
"""

from __future__ import annotations

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
    from mailio_trio.chain import Chain

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
    """Register every core plugin's handlers on ``chain``."""
    for plugin in CORE_PLUGINS:
        plugin.register(chain)
