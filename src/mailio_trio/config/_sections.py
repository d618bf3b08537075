"""The configuration sections every server has: limits, relay, maildir, DNS.

Every limit, timeout and policy lives here with its default beside the reason
for it. Values come from code or a TOML table, and a bad one is refused with
one line naming the key, the value and what is allowed (``ConfigError``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs

from mailio_trio.config._transports import Transport, parse_transport, transports
from mailio_trio.config._validators import (
    ConfigError,
    at_least,
    each,
    networks,
    non_negative,
    positive,
    show,
    strings,
)
from mailio_trio.protocol import BareLineEndings

__all__ = ["DnsConfig", "Limits", "MaildirConfig", "RelayConfig"]


def _bare_line_endings(value: str | BareLineEndings) -> BareLineEndings:
    if isinstance(value, BareLineEndings):
        return value
    try:
        return BareLineEndings(str(value).lower())
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in BareLineEndings)
        raise ConfigError(
            f"limits.bare_line_endings = {show(value)}: must be one of {allowed}"
        ) from None


def _per_ip_exempt(value: Any) -> tuple[str, ...]:
    return networks(value, "limits.per_ip_exempt")


@attrs.frozen(kw_only=True)
class Limits:
    """What one client may cost us; defaults follow mail-io where it set one."""

    _section = "limits"

    idle_timeout: float = attrs.field(default=60.0, validator=positive)
    """Seconds from the last complete command line to the next (RFC 5321 §4.5.3.2.7 says 5 min)."""
    handler_timeout: float = attrs.field(default=30.0, validator=positive)
    """Seconds one handler may take before the client gets ``451 4.3.0``."""
    rollback_timeout: float = attrs.field(default=30.0, validator=positive)
    """Seconds each ``queue`` rollback step may take (shielded from cancellation) to remove
    what a refused or abandoned message left prepared; see ``Request.on_rollback``."""
    data_timeout: float = attrs.field(default=600.0, validator=positive)
    """Seconds for the whole DATA phase, so a drip-feeding client cannot hold a slot forever."""
    tls_handshake_timeout: float = attrs.field(default=30.0, validator=positive)
    farewell_timeout: float = attrs.field(default=1.0, validator=positive)
    """Seconds for the last words to a client we are done with (a refusal such as ``421`` or
    ``554``, or the final reply) and for the close (TLS ``close_notify``); short, since such a
    client may not read."""
    shutdown_grace: float = attrs.field(default=30.0, validator=positive)
    """Seconds a transaction in DATA may take to finish once shutdown starts."""
    message_size: int = attrs.field(default=100 * 1024 * 1024, validator=at_least(1))
    """Octets; advertised with SIZE and enforced while streaming."""
    max_connections: int = attrs.field(default=100, validator=at_least(1))
    max_recipients: int = attrs.field(default=100, validator=at_least(1))
    max_hops: int = attrs.field(default=50, validator=at_least(1))
    """``Received:`` headers that make a message a loop (RFC 5321 §6.3): one that arrives
    with this many is refused after DATA (``554 5.4.6``), and the relay bounces rather
    than sends one that carries this many, ours included. Postfix's limit is 50."""
    # Per client address (Postfix's anvil); addresses in per_ip_exempt are not counted.
    connections_per_ip: int = attrs.field(default=50, validator=at_least(0))
    """Concurrent connections one address may hold; more get ``421 4.7.0``; 0: no limit.
    Postfix's ``smtpd_client_connection_count_limit`` is 50 by default."""
    connection_rate_per_ip: int = attrs.field(default=0, validator=at_least(0))
    """New connections one address may open per minute (``421 4.7.0``); 0: no limit."""
    messages_per_connection: int = attrs.field(default=1000, validator=at_least(0))
    """Messages one connection may send before ``421 4.7.0`` (Exim's default); 0: no limit."""
    recipients_per_connection: int = attrs.field(default=0, validator=at_least(0))
    """Recipients over all of one connection's transactions (``452 4.5.3``); 0: no limit."""
    per_ip_exempt: tuple[str, ...] = attrs.field(default=(), converter=_per_ip_exempt)
    """CIDRs the per-address and per-connection limits never apply to."""
    unrecognized_commands: int = attrs.field(default=5, validator=at_least(1))
    """Unknown verbs, and lines that are no command at all (binary noise, over-long),
    a connection may send; the next gets ``421 4.7.0`` and the connection is closed."""
    auth_failures: int = attrs.field(default=5, validator=at_least(1))
    # A flood of hostile clients must not become a flood of log lines (mailio_trio.abuse).
    abuse_log_burst: int = attrs.field(default=10, validator=at_least(0))
    """Per-connection anti-abuse lines of one kind (early talkers, DNSBL listings,
    per-address refusals, ...) logged one by one per ``abuse_log_interval``; the
    rest are counted in one summary line per interval. 0: summaries only."""
    abuse_log_interval: float = attrs.field(default=60.0, validator=positive)
    """Seconds per anti-abuse log window; a minute keeps the summary lines few
    and still close to the event."""
    # RFC 5321 §4.5.3.1.4: 510 octets of command + CRLF = 512.
    command_line_length: int = attrs.field(default=512, validator=at_least(64))
    # RFC 5321 §4.5.3.1.6: 998 octets of text + CRLF = 1000; 0 turns the check off.
    text_line_length: int = attrs.field(default=1000, validator=at_least(0))
    bare_line_endings: BareLineEndings = attrs.field(
        default=BareLineEndings.NORMALISE, converter=_bare_line_endings
    )
    """``normalise`` bare CR/LF to CRLF inside DATA (as Postfix 3.9), or ``reject`` the message."""
    data_read_size: int = attrs.field(default=64 * 1024, validator=at_least(4096))
    """Octets asked of the socket per read during DATA.

    Larger reads mean fewer system calls per megabyte but each chunk is scanned
    several times, and 256 KiB measured slower than 64 KiB here (the chunk no
    longer stays in the CPU cache between passes; docs/performance.md)."""


def _smart_host(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(
            f"relay.smart_host = {show(value)}: must be HOST:PORT, e.g. smtp.example.com:587"
        )
    return str(value)


@attrs.frozen(kw_only=True)
class RelayConfig:
    """Relaying to other domains (``[relay]``); names are mail-io's, in snake case.

    Off by default, unlike mail-io: a server that spools and sends mail out
    must be asked to, and told where its durable spool lives.
    """

    _section = "relay"

    enabled: bool = False
    hostname: str | None = None
    """Our EHLO name towards remote servers; ``None`` is the server's hostname."""
    spool_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    """Durable queue directory; by default ``relay`` under the server's ``spool_dir``
    (never the system temp dir, which would not survive a reboot)."""
    retry_hours: float = attrs.field(default=48.0, validator=positive)
    """Give up on a temporarily failing recipient and bounce after this long."""
    retry_base_interval: float = attrs.field(default=60.0, validator=positive)
    """Seconds; the n-th retry waits ``base × n²`` (mail-io's back-off)."""
    delay_warning_hours: float = attrs.field(default=4.0, validator=non_negative)
    """Warn the sender once (a delay DSN, RFC 3464 ``Action: delayed``) when a
    message is still undelivered after this long; 0 turns warnings off.

    4 hours is sendmail's ``Timeout.queuewarn``: Postfix's default is off and
    Exim's 24 h, but with ``retry_hours`` at 48 a sender learning of a problem
    half-way through is too late to act (phone the recipient, use another
    address). Our senders are our own users (``rcpt/relay`` only relays for
    local senders unless ``open_relay``), so a warning is no backscatter."""
    concurrency: int = attrs.field(default=5, validator=at_least(1))
    """Deliveries (one per destination domain) in flight at once."""
    allow_unauthenticated: bool = False
    """Relay for clients that did not authenticate (a local sender is still needed)."""
    open_relay: bool = False
    """Relay for anyone to anywhere; only behind a firewall, never on the Internet."""
    local_sender_requires_auth: bool = False
    """A local sender writing to a local recipient must authenticate (mail-io's rule)."""
    port: int = attrs.field(default=25, validator=at_least(1))
    """Port of remote MX hosts (25; tests point it elsewhere)."""
    smart_host: str | None = attrs.field(default=None, converter=_smart_host)
    """``"host:port"``: send everything through this server instead of MX hosts;
    setting it turns relaying on, as ``--smart-host`` does."""
    smart_host_user: str | None = None
    smart_host_password: str | None = attrs.field(default=None, repr=False)
    require_tls: bool = False
    """Refuse to deliver in clear (temporary failure) when a server offers no STARTTLS."""
    verify_tls: bool = False
    """Check MX certificates; off by default as MX TLS is opportunistic (RFC 7435).
    The smart host's certificate is always checked."""
    tls_ca_file: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    """Extra CA bundle to trust for the smart host and verified MX connections."""
    connect_timeout: float = attrs.field(default=30.0, validator=positive)
    command_timeout: float = attrs.field(default=300.0, validator=positive)
    """Seconds for most replies (RFC 5321 §4.5.3.2 says 5 minutes)."""
    data_timeout: float = attrs.field(default=600.0, validator=positive)
    """Seconds for the reply after the body (RFC 5321 §4.5.3.2.6 says 10 minutes)."""
    scan_interval: float = attrs.field(default=30.0, validator=positive)
    """Seconds between spool scans, so ``mailio-trio queue flush`` from another
    process is noticed without signalling the server."""

    transports: dict[str, str] = attrs.field(factory=dict, converter=transports)
    """Domain → transport (``[relay.transports]``, as Postfix's ``transport_maps``):
    ``"lmtp:unix:/run/dovecot/lmtp"`` or ``"lmtp:inet:127.0.0.1:24"``. A listed
    domain is delivered only there, through the spool (never the maildir, the
    smart host or MX); see ``docs/relay.md``, "Transports (LMTP)"."""

    def transport_for(self, domain: str) -> Transport | None:
        """The transport configured for ``domain``, if any."""
        value = self.transports.get(domain.lower().rstrip("."))
        return None if value is None else parse_transport(value)

    def __attrs_post_init__(self) -> None:
        if self.transports and not self.enabled:
            # Mail for these domains goes through the relay's spool and worker only.
            raise ConfigError("relay.transports needs relay.enabled = true (the spool delivers)")
        # A smart host is a request to relay, as `serve --smart-host` is: without
        # this a file naming one would accept foreign mail and never send it.
        # The spool's default needs the server's spool_dir: Config settles it.
        if self.smart_host is not None and not self.enabled:
            object.__setattr__(self, "enabled", True)


def _maildir_template(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    # Security: the template is joined to the root; it must not climb out of it
    # by itself. Local parts and domains are checked per message (plugins/maildir.py).
    problem = None
    if not isinstance(value, str) or not value:
        problem = "must be a non-empty string"
    elif value.startswith("/") or any(part in ("", ".", "..") for part in value.split("/")):
        problem = "must be a relative path without empty, '.' or '..' parts"
    elif "%n" not in value:
        problem = "must contain %n (the local part), or every user would share one mailbox"
    elif "%" in re.sub("%[dn%]", "", value):
        problem = "may only use %d (domain), %n (local part) and %%"
    if problem:
        raise ConfigError(f"maildir.path = {show(value)}: {problem}")


def _mailboxes(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for item in value:
        local, at, domain = item.rpartition("@")
        if not at or not local or not domain:
            raise ConfigError(f"maildir.mailboxes: {show(item)} is not local-part@domain")


def _folder(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    # Maildir++: a folder is a dot-directory directly inside the mailbox.
    if (
        not isinstance(value, str)
        or not value.startswith(".")
        or value in (".", "..")
        or "/" in value
        or ".." in value
    ):
        raise ConfigError(
            f"maildir.{attribute.name} = {show(value)}: must be a Maildir++ folder "
            "name such as \".Sent\" (a leading dot, no '/' or '..')"
        )


def _hook(value: Any) -> Any:
    """Accept a callable, or ``"package.module:function"`` from a TOML file."""
    if value is None or callable(value):
        return value
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(
            f'maildir.extend = {show(value)}: must be "package.module:function" naming '
            "an async function"
        )
    import importlib

    module_name, _, attr = value.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as exc:  # any import-time failure is the operator's to fix
        raise ConfigError(f"maildir.extend = {show(value)}: cannot import: {exc}") from None
    if not callable(target):
        raise ConfigError(f"maildir.extend = {show(value)}: is not callable")
    return target


@attrs.frozen(kw_only=True)
class MaildirConfig:
    """Local delivery into Maildir++ mailboxes (``queue/maildir``, ``rcpt/local``).

    Mailboxes are at ``root / path`` with ``%d`` the domain and ``%n`` the local
    part, both folded to lower case. ``extend`` is an optional
    ``async def extend(address) -> list[address] | None``: aliases and lists
    return their members, ``[]`` accepts and drops, ``None`` means no such user.
    """

    _section = "maildir"

    enabled: bool = False
    """Deliver to maildirs; the library default is off, ``mailio-trio serve`` turns it on."""
    root: Path = attrs.field(default=Path("mail"), converter=Path)
    """Directory under which every mailbox lives; nothing is ever written outside it."""
    path: str = attrs.field(default="%d/%n", validator=_maildir_template)
    """Mailbox path under ``root``: ``%d`` domain, ``%n`` local part, ``%%`` a percent sign."""
    mailboxes: tuple[str, ...] = attrs.field(default=(), converter=strings, validator=_mailboxes)
    """Known mailboxes (``user@domain``); when set, other local users get ``550 5.1.1``."""
    any_domain: bool = False
    """Deliver for every domain, not only the local ones (``serve --capture --maildir``)."""
    fold_local_part: bool = True
    """Treat ``Alice@`` and ``alice@`` as one mailbox, as Postfix's local delivery does."""
    sent_folder: str = attrs.field(default=".Sent", validator=_folder)
    junk_folder: str = attrs.field(default=".Junk", validator=_folder)
    extend: Any = attrs.field(default=None, converter=_hook)
    """The address-expansion hook, a callable or ``"package.module:function"``."""


def _nameservers(value: Any) -> tuple[str, ...]:
    return each(
        value, "dns.nameservers", __import__("ipaddress").ip_address, "IPv4 or IPv6 addresses"
    )


@attrs.frozen(kw_only=True)
class DnsConfig:
    """The DNS resolver the server's own lookups use (reverse DNS, DNSBL, relay MX).

    Example:
      >>> DnsConfig(nameservers=["127.0.0.1"], port=5353).nameservers
      ('127.0.0.1',)
    """

    _section = "dns"

    nameservers: tuple[str, ...] = attrs.field(default=(), converter=_nameservers)
    """Addresses of recursive resolvers; empty means the system's ``/etc/resolv.conf``."""
    port: int = attrs.field(default=53, validator=at_least(1))
    timeout: float = attrs.field(default=5.0, validator=positive)
    """Seconds one lookup may take, retries included (dnspython's ``lifetime``)."""
    cache_size: int = attrs.field(default=10_000, validator=at_least(0))
    """Answers kept (each until its TTL runs out); 0 turns the cache off."""

    def __attrs_post_init__(self) -> None:
        if self.port > 65535:
            raise ConfigError(f"dns.port = {self.port!r}: must be a port number 1..65535")
