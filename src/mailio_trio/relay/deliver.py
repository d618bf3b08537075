"""Delivering one domain's recipients of a spooled message: route, connect, send.

Routing (RFC 5321 §5.1): the domain's MX hosts by preference; no MX records
means the domain itself is the one host (implicit MX, its A/AAAA records); a
null MX (RFC 7505) means the domain takes no mail, a permanent failure
(``556 5.1.10``); an address literal (``[192.0.2.1]``) is its own host. A
smart host replaces all of this with one configured server, and a domain's
transport (``[relay.transports]``, LMTP: ``relay/lmtp.py``) replaces both.

Each host's addresses are tried in order; a connection failure, a timeout or
a ``4xx`` before any recipient was answered moves on to the next address
(RFC 5321 §5.1: "try the next"). A ``5xx`` is permanent; ``4xx`` to a
recipient leaves it pending for a later attempt. One connection carries all
the group's recipients (one domain's, per attempt).

This module never touches the spool: it returns outcomes, and the worker
records them.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Protocol

import attrs

from mailio_trio.client import SMTPError, TLSMode, default_tls_context, open_smtp_client
from mailio_trio.relay.spool import ErrorInfo, RecipientStatus

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping
    from pathlib import Path

    from mailio_trio.config import RelayConfig
    from mailio_trio.protocol.dsn import DsnRcpt, Ret

__all__ = ["MxResolver", "Outcome", "Target", "deliver_group", "route"]

logger = logging.getLogger("mailio_trio.relay")


class MxResolver(Protocol):
    """The part of :class:`mailio_trio.dns.Resolver` delivery needs."""

    async def mx(self, domain: str) -> list[tuple[int, str]]: ...

    async def addresses(self, host: str) -> list[str]: ...


@attrs.frozen
class Target:
    """One address to try: ``name`` is for SNI and logs, ``address`` is connected to."""

    name: str
    address: str | None
    port: int


@attrs.frozen
class Outcome:
    status: RecipientStatus
    error: ErrorInfo | None = None
    relayed: bool = False
    """Delivered to a host that does not offer DSN: its reports stop with us."""


class RouteError(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.text)
        self.error = error

    @property
    def permanent(self) -> bool:
        return self.error.code >= 500


def _temporary(text: str, enhanced: str = "4.4.3") -> RouteError:
    return RouteError(ErrorInfo(451, enhanced, text))


def _permanent(text: str, enhanced: str, code: int = 550) -> RouteError:
    return RouteError(ErrorInfo(code, enhanced, text))


async def _host_addresses(resolver: MxResolver, host: str) -> list[str]:
    from mailio_trio.dns import DNSError

    try:
        return await resolver.addresses(host)
    except DNSError as exc:
        logger.info("no addresses for MX host %s: %s", host, exc)
        return []


async def route(domain: str, config: RelayConfig, resolver: MxResolver) -> list[Target]:
    """The addresses to try for ``domain``, best first.

    Raises:
      RouteError: permanent (null MX, no such domain, no addresses) or
        temporary (DNS failure).
    """
    from mailio_trio.dns import DNSNotFound, DNSTemporaryError, NullMX

    if config.smart_host is not None:
        host, _, port = config.smart_host.rpartition(":")
        return [Target(host.strip("[]"), None, int(port))]
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        literal = literal[5:] if literal.lower().startswith("ipv6:") else literal
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            raise _permanent(f"bad address literal {domain}", "5.1.2") from None
        return [Target(literal, literal, config.port)]
    try:
        exchanges = [host for _, host in await resolver.mx(domain)]
    except NullMX:
        # RFC 7505 §4.2: the domain accepts no mail; 556 5.1.10 to the sender.
        raise _permanent(f"{domain} does not accept mail (null MX)", "5.1.10", 556) from None
    except DNSNotFound as exc:
        if exc.nxdomain:
            raise _permanent(f"no such domain: {domain}", "5.1.2") from None
        exchanges = [domain]  # RFC 5321 §5.1: implicit MX
    except DNSTemporaryError as exc:
        raise _temporary(f"MX lookup for {domain} failed: {exc}") from None
    targets: list[Target] = []
    for host in exchanges:
        targets.extend(
            Target(host, address, config.port) for address in await _host_addresses(resolver, host)
        )
    if not targets:
        if exchanges == [domain]:
            raise _permanent(f"{domain} has no MX and no A/AAAA records", "5.1.2")
        # MX hosts named but none resolvable now: DNS may recover.
        raise _temporary(f"no address for any MX host of {domain}", "4.4.4")
    return targets


def tls_context(config: RelayConfig, *, verify: bool) -> ssl.SSLContext:
    context = default_tls_context(verify=verify)
    if config.tls_ca_file is not None:
        context.load_verify_locations(cafile=str(config.tls_ca_file))
    return context


def _error(exc: SMTPError, remote: str | None) -> ErrorInfo:
    return ErrorInfo(exc.code, exc.enhanced, exc.text, remote)


async def deliver_group(
    *,
    domain: str,
    sender: str,
    recipients: list[str],
    message: Path,
    smtputf8: bool,
    body_8bit: bool | None,
    config: RelayConfig,
    ehlo_name: str,
    resolver: MxResolver,
    dsn: Mapping[str, DsnRcpt] | None = None,
    ret: Ret | None = None,
    envid: str | None = None,
) -> dict[str, Outcome]:
    """Send ``message`` to ``recipients`` (all in ``domain``) over one connection.

    A host that offers DSN gets the client's parameters (RFC 3461 §5.2.1):
    ``RET`` and ``ENVID`` on MAIL, each recipient's ``NOTIFY`` and ``ORCPT``
    (from ``dsn``) on its RCPT. To one that does not, the recipients it
    takes are ``relayed`` (§5.2.2): their success report is ours to send.

    Returns:
      Every recipient's outcome: delivered, failed (permanent) or pending (retry).
    """

    def everyone(status: RecipientStatus, error: ErrorInfo) -> dict[str, Outcome]:
        return {r: Outcome(status, error) for r in recipients}

    transport = config.transport_for(domain)
    if transport is not None:
        from mailio_trio.relay.lmtp import deliver_lmtp  # it imports Outcome from here

        return await deliver_lmtp(
            transport=transport,
            domain=domain,
            sender=sender,
            recipients=recipients,
            message=message,
            smtputf8=smtputf8,
            body_8bit=body_8bit,
            config=config,
            ehlo_name=ehlo_name,
        )

    try:
        targets = await route(domain, config, resolver)
    except RouteError as exc:
        status = RecipientStatus.FAILED if exc.permanent else RecipientStatus.PENDING
        return everyone(status, exc.error)
    smart = config.smart_host is not None
    context = tls_context(config, verify=smart or config.verify_tls)
    last = ErrorInfo(451, "4.4.1", f"no host for {domain} could be reached")
    for target in targets:
        remote = f"{target.name} [{target.address}]" if target.address else target.name
        try:
            async with open_smtp_client(
                target.name,
                target.port,
                ehlo_name=ehlo_name,
                connect_address=target.address,
                tls=TLSMode.REQUIRE if (config.require_tls or smart) else TLSMode.OPPORTUNISTIC,
                ssl_context=context,
                username=config.smart_host_user if smart else None,
                password=config.smart_host_password if smart else None,
                connect_timeout=config.connect_timeout,
                command_timeout=config.command_timeout,
                data_timeout=config.data_timeout,
            ) as client:
                offers_dsn = client.supports("DSN")
                mail_params, rcpt_params = (
                    _dsn_params(recipients, dsn or {}, ret, envid) if offers_dsn else ((), {})
                )
                result = await client.send_message(
                    sender,
                    recipients,
                    message,
                    smtputf8=smtputf8,
                    eight_bit=body_8bit,
                    mail_params=mail_params,
                    rcpt_params=rcpt_params,
                )
        except SMTPError as exc:
            last = _error(exc, remote)
            if exc.permanent:
                logger.info("delivery to %s for %s failed permanently: %s", remote, domain, exc)
                return everyone(RecipientStatus.FAILED, last)
            logger.info(
                "delivery to %s for %s failed, trying the next host: %s", remote, domain, exc
            )
            continue
        outcomes: dict[str, Outcome] = {}
        for recipient, reply in result.recipients.items():
            info = ErrorInfo(reply.code, reply.enhanced, reply.text, remote)
            if reply.is_positive:
                outcomes[recipient] = Outcome(RecipientStatus.DELIVERED, info, not offers_dsn)
            elif reply.is_permanent:
                outcomes[recipient] = Outcome(RecipientStatus.FAILED, info)
            else:
                outcomes[recipient] = Outcome(RecipientStatus.PENDING, info)
        return outcomes
    return everyone(RecipientStatus.PENDING, last)


def _dsn_params(
    recipients: list[str], dsn: Mapping[str, DsnRcpt], ret: Ret | None, envid: str | None
) -> tuple[list[str], dict[str, list[str]]]:
    """The DSN parameters to pass on, as MAIL's and each RCPT's ``KEY=value`` words."""
    from mailio_trio.protocol.dsn import xtext_encode

    mail = [f"RET={ret.value}"] if ret is not None else []
    if envid is not None:
        mail.append(f"ENVID={xtext_encode(envid)}")
    rcpt: dict[str, list[str]] = {}
    for recipient in recipients:
        given = dsn.get(recipient)
        if given is None:
            continue
        words = rcpt.setdefault(recipient, [])
        if given.notify is not None:
            # RFC 3461 §4.1 orders nothing; sorted, so the wire form is stable.
            words.append("NOTIFY=" + ",".join(sorted(n.value for n in given.notify)))
        if given.orcpt is not None:
            words.append(f"ORCPT={given.orcpt.encode()}")
    return mail, rcpt
