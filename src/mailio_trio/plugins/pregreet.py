"""Refuse clients that talk before the greeting (``connect/pregreet``).

RFC 5321 §3.1: the client waits for the server's greeting before sending
anything. Spam engines often don't: they fire their commands at once to save
a round trip. Postfix's postscreen catches them by holding the greeting back
for a few seconds (its "pregreet test"); this handler does the same: it
waits ``delay`` seconds before the greeting is sent, and a client that sends
anything in that time gets ``554 5.5.1`` and is disconnected (and logged, at
most ``limits.abuse_log_burst`` lines a ``limits.abuse_log_interval``, then
one summary line).
A polite client just sees a slower greeting.

Off unless configured: ``plugins={"connect/pregreet": {"delay": 3}}``.
The delay should stay well below ``limits.handler_timeout`` and the clients'
own greeting timeout (RFC 5321 §4.5.3.2.1: 5 minutes; many give up sooner).
Time spent by earlier ``connect`` handlers (reverse DNS) also counts: what a
client sent during it is seen at once.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from mailio_trio.abuse import AbuseKind
from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.config import networks
from mailio_trio.networks import in_networks, parse_networks
from mailio_trio.plugins._settings import Settings, positive

KEY = "connect/pregreet"


def _allowlist(value: Any) -> tuple[str, ...]:
    return networks(value, f"plugins.{KEY}.allowlist")


@attrs.frozen(kw_only=True)
class PregreetConfig:
    delay: float = attrs.field(default=3.0, validator=positive(KEY))
    """Seconds the greeting is held back while we listen for an early talker."""
    allowlist: tuple[str, ...] = attrs.field(default=(), converter=_allowlist)
    """Client networks (CIDRs) greeted at once, without the test."""


async def pregreet(req: Request, res: Response) -> None:
    cfg = req.config_as(PregreetConfig)
    session = req.session
    if in_networks(session.client.address, parse_networks(cfg.allowlist)):
        res.accept()
        return
    if await session.wait_for_early_input(cfg.delay):
        # Rate-limited (limits.abuse_log_*): a pregreeting botnet must not flood the log.
        session.context.abuse_log.log(
            AbuseKind.EARLY_TALKER,
            res.log,
            logging.WARNING,
            "client %s sent data before the greeting",
            session.client.address,
        )
        res.end(554, "Protocol error: you talked before my greeting", "5.5.1")
        return
    res.accept()


SETTINGS = Settings(KEY, PregreetConfig)


def register(chain: Chain) -> None:
    SETTINGS.check(chain)
    chain.add(Handler(command="connect", name="pregreet", func=pregreet))
