"""Delivering one domain's recipients through its LMTP transport (RFC 2033).

A domain in ``[relay.transports]`` is delivered only there: no MX, no smart
host. The worker calls this exactly as it calls MX delivery (through
:func:`mailio_trio.relay.deliver.deliver_group`), so retries, delay warnings,
bounces and DSNs are the same. LMTP answers every accepted recipient on its
own after the body (RFC 2033 §4.2), so each gets its own outcome: delivered,
failed (``5xx``: bounced) or pending (``4xx``: retried). A server that is
down or breaks off is a temporary failure for every recipient: the message
stays in the spool.

This module never touches the spool: it returns outcomes, and the worker
records them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailio_trio.client import SMTPError, TLSMode, open_smtp_client
from mailio_trio.relay.deliver import Outcome
from mailio_trio.relay.spool import ErrorInfo, RecipientStatus

if TYPE_CHECKING:
    from pathlib import Path

    from mailio_trio.config import RelayConfig
    from mailio_trio.config._transports import Transport

__all__ = ["deliver_lmtp"]

logger = logging.getLogger("mailio_trio.relay")


async def deliver_lmtp(
    *,
    transport: Transport,
    domain: str,
    sender: str,
    recipients: list[str],
    message: Path,
    smtputf8: bool,
    body_8bit: bool | None,
    config: RelayConfig,
    ehlo_name: str,
) -> dict[str, Outcome]:
    """Send ``message`` to ``recipients`` over one LMTP connection to ``transport``.

    Returns:
      Every recipient's outcome, from its own reply after the body (or its RCPT reply).
    """
    remote = f"lmtp:{transport.name}"
    try:
        async with open_smtp_client(
            transport.host or "localhost",
            transport.port,
            ehlo_name=ehlo_name,
            unix_socket=transport.unix_path,
            lmtp=True,
            # A local delivery agent on loopback or a socket: no STARTTLS to ask for.
            tls=TLSMode.NEVER,
            connect_timeout=config.connect_timeout,
            command_timeout=config.command_timeout,
            data_timeout=config.data_timeout,
        ) as client:
            result = await client.send_message(
                sender, recipients, message, smtputf8=smtputf8, eight_bit=body_8bit
            )
    except SMTPError as exc:
        error = ErrorInfo(exc.code, exc.enhanced, exc.text, remote)
        status = RecipientStatus.FAILED if exc.permanent else RecipientStatus.PENDING
        logger.info("LMTP delivery to %s for %s failed: %s", remote, domain, exc)
        return {r: Outcome(status, error) for r in recipients}
    outcomes: dict[str, Outcome] = {}
    for recipient, reply in result.recipients.items():
        info = ErrorInfo(reply.code, reply.enhanced, reply.text, remote)
        if reply.is_positive:
            # Dovecot's LMTP offers no DSN: a success report asked for (NOTIFY=SUCCESS) is
            # ours to send, as after an MX without DSN (RFC 3461 §5.2.2: "relayed").
            outcomes[recipient] = Outcome(RecipientStatus.DELIVERED, info, relayed=True)
        elif reply.is_permanent:
            outcomes[recipient] = Outcome(RecipientStatus.FAILED, info)
        else:
            outcomes[recipient] = Outcome(RecipientStatus.PENDING, info)
    return outcomes
