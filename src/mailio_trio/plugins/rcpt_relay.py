"""Relay policy (``rcpt/relay``): who may send to recipients outside our domains.

mail-io's rules, configured in ``[relay]``:

- a recipient in a foreign domain needs an authenticated client (unless
  ``allow_unauthenticated``) and a sender in one of our domains (unless
  ``open_relay``);
- with ``relay.local_sender_requires_auth`` (mail-io's behaviour, off by
  default here), a sender in our domains writing to our domains must
  authenticate too, so nobody outside can forge our users to each other.
  Off by default because a server without AUTH configured would otherwise
  refuse all mail between its own users;
- with ``relay.enabled`` false nothing would ever deliver a foreign
  recipient, so they are refused unless ``open_relay`` (a capturing sink).

Refusal is ``550 5.7.1 Relay access denied``. 550, not 554: RFC 5321 §4.2.2
gives 550 to a command "rejected for policy reasons" about one mailbox, and
554 to the failure of a whole transaction (or the connection greeting);
refusing one RCPT leaves the transaction and its other recipients standing.
RFC 3463 §3.8 gives X.7.1 "delivery not authorized". mail-io's ``502`` means
"command not implemented" and misleads clients.

Nothing is relayed by default: there is no open relay unless configured.
"""

from __future__ import annotations

from mailio_trio.chain import Chain, Handler, Request, Response

RELAY_DENIED = "5.7.1 Relay access denied"


async def relay_policy(req: Request, res: Response) -> None:
    session = req.session
    config = session.config
    relay = config.relay
    assert req.to is not None
    sender = session.envelope.sender
    local_sender = sender is not None and config.is_local_domain(sender.domain)
    # Domain-less "Postmaster" (RFC 5321 §4.5.1) is always ours.
    local_recipient = not req.to.domain or config.is_local_domain(req.to.domain)
    authenticated = session.user is not None or relay.allow_unauthenticated
    if local_recipient:
        if relay.local_sender_requires_auth and local_sender and not authenticated:
            res.reject(550, RELAY_DENIED)
        else:
            res.accept()
        return
    # The application's own submissions (Server.send_mail, its DSNs from <>) choose
    # their envelope: their user says so (ApiUser; the plugin cannot import it).
    trusted = getattr(session.user, "relays_any_sender", False) is True
    if relay.open_relay:
        res.accept()
    elif not relay.enabled or not authenticated or not (local_sender or trusted):
        res.reject(550, RELAY_DENIED)
    else:
        res.accept()


def register(chain: Chain) -> None:
    chain.add(Handler(command="rcpt", name="relay", func=relay_policy))
