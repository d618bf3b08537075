"""What DKIM and ARC verification share: the header block, key prefetch, dkimpy glue.

Verifying a signature needs its public key from DNS (``s._domainkey.d``, RFC 6376
§3.6.2) and a pass over the whole message. dkimpy does the pass, but it looks keys up
with a blocking ``dnsfunc`` from inside it. So the work is split:

1. On the event loop: read only the header block (bounded), find the signatures'
   ``d=``/``s=``, and fetch every key through our async
   :class:`~mailio_trio.dns.Resolver`, concurrently, under one deadline.
2. In a worker thread: load the message once and let dkimpy verify, with a
   ``dnsfunc`` (:class:`ServedKeys`) that only serves the answers fetched in step 1
   and never touches the network.

Nothing here is public; :mod:`mailio_trio.mailauth.dkim` and
:mod:`mailio_trio.mailauth.arc` are.
"""

from __future__ import annotations

import enum
import logging
import os
import re
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import dkim
import dkim.util
import trio

from mailio_trio.dns import DNSNotFound, DNSTemporaryError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, MutableMapping

    from mailio_trio.dns import Resolver

MessageSource = bytes | os.PathLike[str]
"""A whole message as bytes, or the path of a file holding one (a spool file)."""

_D = TypeVar("_D", "dkim.DKIM", "dkim.ARC")
_CHUNK = 64 * 1024
# The end of the header block; dkimpy accepts LF as well as CRLF line ends.
_BLANK_LINE = re.compile(rb"\n\r?\n")


class KeyStatus(enum.Enum):
    """How the key lookup for one ``selector._domainkey.domain`` ended."""

    FOUND = "found"
    MISSING = "missing"
    """NXDOMAIN, NODATA or no DNS name at all: definitive (a permerror)."""
    TEMPORARY = "temporary"
    """Timeout, SERVFAIL, network trouble: may work later (a temperror)."""


@attrs.frozen
class KeyLookup:
    """The answer for one key name: the TXT record, or why there is none."""

    status: KeyStatus
    record: bytes = b""
    reason: str = ""


def key_name(selector: bytes, domain: bytes) -> str | None:
    """``selector._domainkey.domain`` in lower case, or ``None`` if that is no host name."""
    try:
        name = b"%s._domainkey.%s" % (selector.strip(), domain.strip().rstrip(b"."))
        text = name.decode("ascii").lower()
    except UnicodeDecodeError:
        # A U-label d= is not how RFC 6376 §3.5 spells it (A-labels only); no key is found.
        return None
    if not text or len(text) > 253 or any(c.isspace() for c in text):
        return None
    return text


def _normalise(name: str | bytes) -> str:
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    return text.lower().rstrip(".")


async def prefetch_keys(
    names: Iterable[str], *, resolver: Resolver, within: float
) -> dict[str, KeyLookup]:
    """Fetch the TXT key record of every name, all at once, within ``within`` seconds.

    Args:
      names: Key names from :func:`key_name`; duplicates are looked up once.
      resolver: Our async resolver (its own per-lookup deadline also applies).
      within: Seconds for the whole batch; a name still unanswered then is
        :attr:`KeyStatus.TEMPORARY` (a deadline of our own rather than the caller's
        cancel scope, because a late key is a verdict, not an abandoned verification).

    Returns:
      A lookup for every name given, keyed by its lower-case form.
    """
    wanted = {_normalise(n) for n in names}
    found: dict[str, KeyLookup] = {}

    async def one(name: str) -> None:
        try:
            records = await resolver.txt(name)
        except DNSNotFound as exc:
            found[name] = KeyLookup(KeyStatus.MISSING, reason=f"no key for {name}: {exc}")
        except DNSTemporaryError as exc:
            found[name] = KeyLookup(KeyStatus.TEMPORARY, reason=f"key lookup failed: {exc}")
        else:
            if not records:
                found[name] = KeyLookup(KeyStatus.MISSING, reason=f"no key for {name}")
            else:
                # RFC 6376 §3.6.2.2: with several records the outcome is undefined; like
                # dkimpy's own lookup and OpenDKIM we take the first.
                found[name] = KeyLookup(KeyStatus.FOUND, record=records[0].encode("utf-8"))

    with trio.move_on_after(within):
        async with trio.open_nursery() as nursery:
            for name in sorted(wanted):
                nursery.start_soon(one, name)
    late = KeyLookup(KeyStatus.TEMPORARY, reason=f"key lookup timed out after {within}s")
    return {name: found.get(name, late) for name in wanted}


@attrs.frozen
class ServedKeys:
    """A dkimpy ``dnsfunc`` answering only from prefetched lookups; it never does I/O.

    dkimpy calls it as ``dnsfunc(name, timeout=...)`` with ``name`` as bytes and a
    trailing dot; ``None`` means "no such record" to it, and
    :class:`dkim.DnsTimeoutError` a temporary failure.
    """

    keys: MutableMapping[str, KeyLookup]

    def __call__(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        lookup = self.keys.get(_normalise(name))
        if lookup is None or lookup.status is KeyStatus.TEMPORARY:
            raise dkim.DnsTimeoutError(lookup.reason if lookup else "key was not prefetched")
        return lookup.record if lookup.status is KeyStatus.FOUND else None


class _QuietAdapter(logging.LoggerAdapter[logging.Logger]):
    """dkimpy logs every bad signature at ERROR; for us that is hostile input, so DEBUG."""

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


def dkimpy_logger() -> logging.LoggerAdapter[logging.Logger]:
    """The logger handed to dkimpy (``mailio_trio.mailauth.dkimpy``, errors demoted)."""
    return _QuietAdapter(logging.getLogger("mailio_trio.mailauth.dkimpy"), {})


# -- the header block ----------------------------------------------------------


def _cut(data: bytes, limit: int) -> tuple[bytes, int | None]:
    """The header block within the first ``limit`` octets of ``data``, and the body's offset.

    Without a blank line in reach, keep only the fields that start and end before the
    limit (a field cut in two is dropped rather than parsed half); the body's offset
    is then unknown (``None``).
    """
    match = _BLANK_LINE.search(data, 0, limit)
    if match is not None:
        return data[: match.start() + 1], match.end()
    if len(data) <= limit:
        return data, len(data)  # a message of headers only
    block = data[:limit]
    end = len(block) - 1
    while (end := block.rfind(b"\n", 0, end)) >= 0:
        if end + 1 < len(block) and block[end + 1 : end + 2] not in (b" ", b"\t"):
            return block[: end + 1], None
    return b"", None


def _read_head(path: os.PathLike[str], limit: int) -> tuple[bytes, int | None]:
    data = b""
    with open(path, "rb") as file:
        while len(data) < limit + 2 and (chunk := file.read(_CHUNK)):
            data += chunk
            if _BLANK_LINE.search(data) is not None:
                break
    return _cut(data, limit)


def source_size(source: MessageSource) -> int:
    """The message's size in octets (a path is stat'ed: cheap, no read)."""
    return len(source) if isinstance(source, bytes) else os.stat(source).st_size


async def header_block(source: MessageSource, limit: int) -> tuple[bytes, int | None]:
    """The message's header fields, at most ``limit`` octets of them, and where the body starts.

    A path is read in a worker thread and only as far as the blank line (or the limit).
    """
    if isinstance(source, bytes):
        return _cut(source, limit)
    return await trio.to_thread.run_sync(_read_head, source, limit)


def header_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """``(name, raw value)`` pairs of a header block, parsed exactly as dkimpy will.

    The same parser as the verification in the thread, so the n-th DKIM-Signature
    here is dkimpy's ``idx=n``.

    Raises:
      dkim.MessageFormatError: A line that is neither a field nor a continuation.
    """
    try:
        headers, _ = dkim.rfc822_parse(block + b"\r\n")
    except IndexError:
        # dkimpy's parser trips over a continuation line before any field.
        raise dkim.MessageFormatError("a folded line before the first header field") from None
    return [(bytes(name), bytes(value)) for name, value in headers]


def parse_tags(value: bytes) -> dict[bytes, bytes] | None:
    """A signature's tag=value list (RFC 6376 §3.2), or ``None`` if it does not parse."""
    try:
        tags: dict[bytes, bytes] = dkim.util.parse_tag_value(value)
    except dkim.util.InvalidTagValueList:
        return None
    return tags


def _load_message(source: MessageSource) -> bytes:
    if isinstance(source, bytes):
        return source
    with open(source, "rb") as file:
        return file.read()


def _load_body(source: MessageSource, offset: int) -> bytes:
    """The body from ``offset``, with CRLF line ends as dkimpy's own parser leaves it."""
    if isinstance(source, bytes):
        body = source[offset:]
    else:
        with open(source, "rb") as file:
            file.seek(offset)
            body = file.read()
    if body.count(b"\n") != body.count(b"\r\n"):
        body = re.sub(rb"\r?\n", b"\r\n", body)  # what rfc822_parse's split and join do
    return body


def dkimpy_message(
    factory: Callable[..., _D],
    source: MessageSource,
    fields: list[tuple[bytes, bytes]],
    body_offset: int | None,
    *,
    min_rsa_bits: int,
) -> _D:
    """A dkimpy ``DKIM`` or ``ARC`` holding the message; call it in a worker thread.

    Memory: dkimpy's own parser holds the message, its lines and its body at once.
    With the header fields already parsed and the body's offset known, it is handed
    the fields and the body alone (read from the file from that offset), so a spool
    file is in memory once. Only when the header block was longer than the limit is
    the whole message read and parsed by dkimpy.
    """
    if body_offset is None:
        return factory(_load_message(source), logger=dkimpy_logger(), minkey=min_rsa_bits)
    message = factory(None, logger=dkimpy_logger(), minkey=min_rsa_bits)
    message.headers = [[name, value] for name, value in fields]
    message.body = _load_body(source, body_offset)
    return message
