"""Per-connection limits on messages and recipients (``mail/limits``, ``rcpt/limits``).

One connection may start at most ``limits.messages_per_connection``
transactions: the next MAIL gets ``421 4.7.0`` and the connection is closed
(Exim's ``smtp_accept_max_per_connection``), so a bulk sender has to come back
through the per-address connection limits. Across all of a connection's
transactions at most ``limits.recipients_per_connection`` recipients are
taken; further RCPTs get ``452 4.5.3``, which RFC 5321 §4.5.3.1.10 tells the
client to retry later. 0 turns either limit off. Client addresses in
``limits.per_ip_exempt`` are not limited.

Both handlers are registered on every server (their settings live in
``Config.limits``); ``plugins={"mail/limits": False}`` removes one.
"""

from __future__ import annotations

import logging

from mailio_trio.abuse import AbuseKind
from mailio_trio.chain import Chain, Handler, Request, Response, never_waits
from mailio_trio.networks import in_networks, parse_networks


def _exempt(req: Request) -> bool:
    session = req.session
    return in_networks(session.client.address, parse_networks(session.config.limits.per_ip_exempt))


# Both decide from counters without awaiting: no handler_timeout scope needed.
@never_waits
async def messages(req: Request, res: Response) -> None:
    limit = req.session.config.limits.messages_per_connection
    # counters.messages counts the DATA bodies this connection has delivered.
    if limit and req.session.counters.messages >= limit and not _exempt(req):
        req.session.context.abuse_log.log(
            AbuseKind.MESSAGE_LIMIT,
            res.log,
            logging.INFO,
            "message limit of %d per connection reached",
            limit,
        )
        res.end(421, f"Too many messages in one connection (limit {limit}), try again", "4.7.0")
        return
    res.accept()


@never_waits
async def recipients(req: Request, res: Response) -> None:
    limit = req.session.config.limits.recipients_per_connection
    if limit and req.session.counters.recipients >= limit and not _exempt(req):
        res.reject(452, f"Too many recipients in one connection (limit {limit})", "4.5.3")
        return
    res.accept()


def register(chain: Chain) -> None:
    chain.add(Handler(command="mail", name="limits", func=messages))
    chain.add(Handler(command="rcpt", name="limits", func=recipients))
