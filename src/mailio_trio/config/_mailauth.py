"""The ``[mailauth]`` section: what email authentication on receipt trusts and records.

The checks themselves are plugins with their own tables (``mail/spf``,
``queue/mailauth``); this section holds what they share.
"""

from __future__ import annotations

from typing import Any

import attrs

from mailio_trio.config._validators import networks

__all__ = ["MailauthConfig"]


def _trusted(value: Any) -> tuple[str, ...]:
    return networks(value, "mailauth.trusted_networks")


@attrs.frozen(kw_only=True)
class MailauthConfig:
    """SPF, DKIM, DMARC and ARC on receipt (see ``docs/authentication.md``).

    Verification runs wherever the server does DNS lookups (``[dns]``): the
    verdicts go into one ``Authentication-Results`` header and to handlers
    (``res.get("queue/mailauth")``). What may refuse mail is each plugin's
    table; by default only a domain's own published ``p=reject`` does.
    """

    _section = "mailauth"

    authserv_id: str | None = None
    """Our name in ``Authentication-Results`` (RFC 8601 §2.5); ``None`` is the hostname.
    A client's A-R header that claims it is removed."""
    trusted_networks: tuple[str, ...] = attrs.field(
        default=("127.0.0.0/8", "::1/128"), converter=_trusted
    )
    """Clients whose mail is not SPF- or DMARC-checked (local submission), as
    authenticated clients' is not; loopback by default."""
