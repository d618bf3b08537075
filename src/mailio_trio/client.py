"""An SMTP client on Trio: what the relay delivers with, usable on its own.

One connection is one :class:`SMTPClient`, opened with :func:`open_smtp_client`
(greeting, EHLO with HELO fallback, STARTTLS, AUTH) and closed with a clean
``QUIT``. :meth:`SMTPClient.send_message` runs one transaction: SIZE checked
before anything is sent (RFC 1870), MAIL and every RCPT in one write when the
server offers PIPELINING (RFC 2920), ``BODY=8BITMIME`` / ``SMTPUTF8`` when the
message needs them (RFC 6152, RFC 6531), the body streamed from a file in
chunks: as ``BDAT`` chunks of its stored octets where the server offers
CHUNKING (RFC 3030; pipelined behind the envelope with PIPELINING), else
after ``DATA`` with dot-stuffing (RFC 5321 §4.5.2), and one result per
recipient: a refused RCPT does not fail the others.

Errors are :class:`SMTPError` subclasses that carry the reply code, enhanced
status, text and whether retrying can help (``permanent``). Trio's errors are
mapped here, at the boundary: ``trio.TooSlowError`` → :class:`SMTPTimeout`,
``trio.BrokenResourceError`` / ``ClosedResourceError`` / ``OSError`` →
:class:`SMTPConnectionLost`; both are temporary.

Security: what we send after DATA is always re-normalised to CRLF before
dot-stuffing, so a bare LF or CR in a stored body can never end DATA early at
a lax receiver (SMTP smuggling). A ``BDAT`` chunk is counted, not terminated,
so its octets go as stored: nothing in them can end the message. Credentials
are never sent in clear unless the caller says ``allow_insecure_auth``, and
never logged.

Example::

    async with open_smtp_client("mx.example.net", 25, ehlo_name="me.example.com") as smtp:
        result = await smtp.send_message("a@example.com", ["b@example.net"], body)
    print(result.accepted)

or in one call: ``await send("mx.example.net", 25, sender, recipients, body)``.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import ssl
from contextlib import aclosing, asynccontextmanager
from pathlib import Path  # noqa: TC003  # isinstance() needs it at run time
from typing import TYPE_CHECKING, Any

import attrs
import trio

# DotStuffer lived here first; the name stays importable from the client.
from mailio_trio.protocol import (
    DotStuffer,
    Need,
    Reply,
    ReplyReader,
    ServerProtocolError,
    mail_parameters,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence

__all__ = [
    "DotStuffer",
    "SMTPClient",
    "SMTPConnectionLost",
    "SMTPError",
    "SMTPProtocolError",
    "SMTPReplyError",
    "SMTPTimeout",
    "SendResult",
    "TLSMode",
    "open_smtp_client",
    "send",
]

CHUNK_SIZE = 64 * 1024
BDAT_CHUNK_SIZE = 256 * 1024
"""Octets per ``BDAT`` chunk: what one is held in memory (two, with the look-ahead)."""
BDAT_WINDOW = 8
"""Pipelined ``BDAT`` chunks that may be unanswered at once (2 MiB in flight)."""


class TLSMode(enum.Enum):
    """When to use STARTTLS (RFC 3207)."""

    OPPORTUNISTIC = "opportunistic"
    """Use it when offered, go on in clear otherwise (RFC 7435)."""
    REQUIRE = "require"
    """Fail (temporarily) when the server does not offer it."""
    NEVER = "never"


class SMTPError(Exception):
    """A failure talking to an SMTP server.

    Attributes:
      code: The SMTP reply code (ours for local failures: 4xx temporary, 5xx permanent).
      enhanced: The RFC 3463 status (``"5.1.1"``), or ``None`` if the server gave none.
      text: The server's text, or our reason.
      permanent: True when retrying the same thing cannot succeed.
    """

    def __init__(self, code: int, text: str, enhanced: str | None = None) -> None:
        super().__init__(f"{code} {enhanced + ' ' if enhanced else ''}{text}")
        self.code = code
        self.enhanced = enhanced
        self.text = text

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def reply(self) -> Reply:
        return Reply(self.code, self.text.replace("\r", " "), self.enhanced)


class SMTPReplyError(SMTPError):
    """The server refused a command; ``command`` says which."""

    def __init__(self, reply: Reply, command: str) -> None:
        super().__init__(reply.code, reply.text, reply.enhanced)
        self.command = command


class SMTPTimeout(SMTPError):
    """The server did not answer (or take our data) in time; temporary."""

    def __init__(self, text: str) -> None:
        super().__init__(451, text, "4.4.2")


class SMTPConnectionLost(SMTPError):
    """The connection could not be made or broke; temporary."""

    def __init__(self, text: str) -> None:
        super().__init__(451, text, "4.4.1")


class SMTPProtocolError(SMTPError):
    """The server spoke something that is not SMTP; temporary (it may be fixed)."""

    def __init__(self, text: str) -> None:
        super().__init__(451, text, "4.5.0")


@attrs.frozen
class SendResult:
    """The outcome of one transaction.

    Attributes:
      recipients: Each recipient (as given) → the server's RCPT reply, or the
        reply after the body (DATA's or ``BDAT LAST``'s; LMTP: its own) for
        those it accepted.
      data_reply: The reply after the body (LMTP: the last recipient's),
        ``None`` if no recipient was accepted.
    """

    recipients: dict[str, Reply]
    data_reply: Reply | None

    @property
    def accepted(self) -> list[str]:
        return [r for r, reply in self.recipients.items() if reply.is_positive]

    @property
    def refused(self) -> dict[str, Reply]:
        return {r: reply for r, reply in self.recipients.items() if not reply.is_positive}


def _is_8bit(data: bytes) -> bool:
    return not data.isascii()


@attrs.define(eq=False)
class SMTPClient:
    """One connection to an SMTP server; get one from :func:`open_smtp_client`.

    Attributes:
      host: The name we connected to (SNI and certificate checks use it).
      extensions: EHLO keywords (upper case) → their parameters (``"SIZE"`` → ``"1000"``).
      secure: True once STARTTLS succeeded.
      greeting: The server's ``220`` reply.
    """

    stream: trio.abc.Stream
    host: str
    timeout: float = 300.0
    data_timeout: float = 600.0
    extensions: dict[str, str] = attrs.field(factory=dict)
    esmtp: bool = False
    secure: bool = False
    greeting: Reply | None = None
    chunking: bool = True
    """Send bodies with ``BDAT`` when the server offers CHUNKING (RFC 3030)."""
    lmtp: bool = False
    """Speak LMTP (RFC 2033): one reply per accepted recipient after the body."""
    _reader: ReplyReader = attrs.field(factory=ReplyReader)

    # -- wire ----------------------------------------------------------------

    async def _send(self, data: bytes, seconds: float | None = None) -> None:
        try:
            with trio.fail_after(self.timeout if seconds is None else seconds):
                await self.stream.send_all(data)
        except trio.TooSlowError:
            raise SMTPTimeout(f"timed out sending to {self.host}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise SMTPConnectionLost(f"connection to {self.host} lost: {exc}") from exc

    async def read_reply(self, seconds: float | None = None) -> Reply:
        """Read one (possibly multi-line) reply.

        Raises:
          SMTPTimeout, SMTPConnectionLost, SMTPProtocolError
        """
        try:
            with trio.fail_after(self.timeout if seconds is None else seconds):
                return await self._read_reply()
        except trio.TooSlowError:
            raise SMTPTimeout(f"timed out waiting for {self.host}") from None

    async def _read_reply(self) -> Reply:
        while True:
            try:
                reply = self._reader.next_reply()
            except ServerProtocolError as exc:
                raise SMTPProtocolError(f"{self.host} {exc}") from None
            if reply is not Need.DATA:
                assert isinstance(reply, Reply)
                return reply
            try:
                chunk = await self.stream.receive_some(CHUNK_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise SMTPConnectionLost(f"connection to {self.host} lost: {exc}") from exc
            if not chunk:
                raise SMTPConnectionLost(f"{self.host} closed the connection")
            self._reader.feed(bytes(chunk))

    async def command(self, line: str) -> Reply:
        """Send one command line (CRLF added) and return the reply, whatever its code."""
        await self._send(line.encode("utf-8") + b"\r\n")
        return await self.read_reply()

    async def _expect(self, line: str, name: str, codes: Iterable[int] = (250,)) -> Reply:
        reply = await self.command(line)
        if reply.code not in tuple(codes):
            raise SMTPReplyError(reply, name)
        return reply

    # -- session setup -------------------------------------------------------

    async def ehlo(self, name: str) -> Reply:
        """EHLO, falling back to HELO if the server does not know it (RFC 5321 §4.1.1.1).

        In LMTP mode it is LHLO (RFC 2033 §4.1), with no fallback.
        """
        reply = await self.command(f"{'LHLO' if self.lmtp else 'EHLO'} {name}")
        self.extensions = {}
        if reply.code == 250:
            self.esmtp = True
            for line in reply.lines[1:]:
                keyword, _, params = line.strip().partition(" ")
                self.extensions[keyword.upper()] = params
            return reply
        if (
            reply.code // 100 == 5 and not self.lmtp
        ):  # 500/502: an RFC 821 server that knows only HELO
            self.esmtp = False
            return await self._expect(f"HELO {name}", "HELO")
        raise SMTPReplyError(reply, "LHLO" if self.lmtp else "EHLO")

    def supports(self, keyword: str) -> bool:
        return keyword.upper() in self.extensions

    async def starttls(self, context: ssl.SSLContext, ehlo_name: str) -> None:
        """Upgrade to TLS (RFC 3207) and say EHLO again; SNI is :attr:`host`."""
        await self._expect("STARTTLS", "STARTTLS", (220,))
        # RFC 3207 §4.2: anything the server sent before the handshake is not trusted.
        self._reader.take_buffered()
        stream = trio.SSLStream(self.stream, context, server_hostname=self.host)
        try:
            with trio.fail_after(self.timeout):
                await stream.do_handshake()
        except trio.TooSlowError:
            raise SMTPTimeout(f"TLS handshake with {self.host} timed out") from None
        except (trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
            raise SMTPConnectionLost(f"TLS handshake with {self.host} failed: {cause}") from exc
        self.stream = stream
        self.secure = True
        await self.ehlo(ehlo_name)

    async def login(
        self, username: str, password: str, *, allow_insecure_auth: bool = False
    ) -> Reply:
        """AUTH PLAIN (RFC 4616), or LOGIN where PLAIN is not offered.

        Raises:
          SMTPError: 530 5.7.11 when the connection is not encrypted and
            ``allow_insecure_auth`` is false; the server's reply if it refuses.
        """
        if not self.secure and not allow_insecure_auth:
            raise SMTPError(530, "refusing to send credentials without TLS", "5.7.11")
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms or not mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
            return await self._expect(f"AUTH PLAIN {token}", "AUTH", (235,))
        if "LOGIN" in mechanisms:
            await self._expect("AUTH LOGIN", "AUTH", (334,))
            await self._expect(base64.b64encode(username.encode()).decode(), "AUTH", (334,))
            return await self._expect(base64.b64encode(password.encode()).decode(), "AUTH", (235,))
        raise SMTPError(504, f"{self.host} offers no AUTH mechanism we know", "5.7.4")

    async def quit(self) -> None:
        """Say QUIT and wait (briefly) for the answer; errors here are ignored."""
        try:
            await self._send(b"QUIT\r\n")
            await self.read_reply()
        except SMTPError:
            pass

    async def reset(self) -> None:
        """RSET: end a transaction without sending (RFC 5321 §4.1.1.5)."""
        await self._expect("RSET", "RSET")

    # -- a transaction -------------------------------------------------------

    async def send_message(
        self,
        sender: str,
        recipients: Sequence[str],
        body: bytes | Path,
        *,
        smtputf8: bool | None = None,
        eight_bit: bool | None = None,
        mail_params: Sequence[str] = (),
        rcpt_params: Mapping[str, Sequence[str]] | None = None,
    ) -> SendResult:
        """Send one message to the recipients the server accepts.

        Args:
          sender: The reverse-path without brackets (``""`` is the null sender).
          recipients: Forward-paths without brackets.
          body: The message, as bytes or a file streamed in chunks (never read whole).
          smtputf8: Whether the message needs SMTPUTF8; ``None`` means "if any
            address is not ASCII". A server without SMTPUTF8 then fails it
            permanently (RFC 6531 §3.7.2: no downgrade).
          eight_bit: Whether the body has 8-bit octets (``BODY=8BITMIME``);
            ``None`` means scan it. Without 8BITMIME at the server it is sent
            anyway, as Postfix does, rather than mangled.
          mail_params: More ``KEY=value`` parameters for MAIL (``RET=HDRS``);
            the caller checks the server offers their extension.
          rcpt_params: More parameters for a recipient's RCPT, by recipient
            (``NOTIFY=SUCCESS``).

        Returns:
          Each recipient's reply; see :class:`SendResult`.

        Raises:
          SMTPReplyError: MAIL or DATA refused (then no recipient got it).
          SMTPError: Too big for the server's SIZE (552 5.3.4), SMTPUTF8 needed
            but missing (553 5.6.7), and the transport errors.
        """
        size = (
            len(body)
            if isinstance(body, bytes)
            else await trio.to_thread.run_sync(_file_size, body)
        )
        if smtputf8 is None:
            smtputf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
        if eight_bit is None:
            eight_bit = (
                _is_8bit(body)
                if isinstance(body, bytes)
                else await trio.to_thread.run_sync(_file_is_8bit, body)
            )
        params = mail_parameters(
            self.extensions, size, eight_bit=eight_bit, smtputf8=smtputf8, server=self.host
        )
        if isinstance(params, Reply):
            raise SMTPError(params.code, params.text, params.enhanced)
        mail = " ".join([f"MAIL FROM:<{sender}>", *params, *mail_params])
        extra = rcpt_params or {}
        rcpts = [" ".join([f"RCPT TO:<{r}>", *extra.get(r, ())]) for r in recipients]
        if self.chunking and self.supports("CHUNKING"):
            return await self._send_chunked(mail, rcpts, recipients, body)
        replies: dict[str, Reply] = {}
        if self.supports("PIPELINING"):
            # RFC 2920 §3.1: MAIL and RCPTs may go in one group; read the replies in order.
            await self._send("".join(f"{c}\r\n" for c in [mail, *rcpts]).encode("utf-8"))
            mail_reply = await self.read_reply()
            for recipient in recipients:
                replies[recipient] = await self.read_reply()
            if mail_reply.code != 250:
                raise SMTPReplyError(mail_reply, "MAIL")
        else:
            mail_reply = await self.command(mail)
            if mail_reply.code != 250:
                raise SMTPReplyError(mail_reply, "MAIL")
            for recipient, line in zip(recipients, rcpts, strict=True):
                replies[recipient] = await self.command(line)
        accepted = [r for r, reply in replies.items() if reply.code in (250, 251)]
        if not accepted:
            await self.reset()
            return SendResult(replies, None)
        await self._expect("DATA", "DATA", (354,))
        await self._send_body(body)
        return await self._final_replies(replies, accepted, "DATA")

    async def _final_replies(
        self, replies: dict[str, Reply], accepted: list[str], command: str
    ) -> SendResult:
        """Read the reply after the body (LMTP: one per accepted recipient, in RCPT order)."""
        if self.lmtp:
            # RFC 2033 §4.2: after the body, one reply per RCPT that succeeded.
            for recipient in accepted:
                replies[recipient] = await self.read_reply(self.data_timeout)
            final = replies[accepted[-1]]
            if not any(replies[r].is_positive for r in accepted):
                raise SMTPReplyError(final, command)
            return SendResult(replies, final)
        data_reply = await self.read_reply(self.data_timeout)
        if data_reply.code != 250:
            raise SMTPReplyError(data_reply, command)
        for recipient in accepted:
            replies[recipient] = data_reply
        return SendResult(replies, data_reply)

    async def _send_chunked(
        self,
        mail: str,
        rcpts: list[str],
        recipients: Sequence[str],
        body: bytes | Path,
    ) -> SendResult:
        """One transaction with the body in ``BDAT`` chunks (RFC 3030), octets as stored.

        With PIPELINING (RFC 2920 §3.1, RFC 3030 §4.2) MAIL, every RCPT and the
        first chunk go in one write: a message that fits one chunk takes one
        round trip. Later chunks are pipelined too, with at most
        :data:`BDAT_WINDOW` unanswered, so replies never pile up unread while
        we write (neither side can deadlock on a full socket buffer).
        """
        pipelined = self.supports("PIPELINING")
        window = BDAT_WINDOW if pipelined else 0
        replies: dict[str, Reply] = {}
        async with aclosing(_chunks(body, BDAT_CHUNK_SIZE)) as chunks:
            chunk, last = await anext(chunks)
            pending = 0  # BDAT commands sent and not yet answered
            if pipelined:
                envelope = "".join(f"{c}\r\n" for c in [mail, *rcpts]).encode("utf-8")
                await self._send(envelope + _bdat(chunk, last))
                pending = 1
                mail_reply = await self.read_reply()
                for recipient in recipients:
                    replies[recipient] = await self.read_reply()
            else:
                mail_reply = await self.command(mail)
                if mail_reply.code == 250:
                    for recipient, line in zip(recipients, rcpts, strict=True):
                        replies[recipient] = await self.command(line)
            accepted = [r for r, reply in replies.items() if reply.code in (250, 251)]
            if mail_reply.code != 250 or not accepted:
                if pending:
                    # The server read the chunk and refused it (RFC 3030 §2: 503, no RCPT).
                    await self.read_reply(self._bdat_timeout(last))
                if mail_reply.code != 250:
                    raise SMTPReplyError(mail_reply, "MAIL")
                await self.reset()
                return SendResult(replies, None)
            if not pipelined:
                await self._send(_bdat(chunk, last))
                pending = 1
            failed: Reply | None = None
            while not last and failed is None:
                while pending > window and failed is None:
                    failed = _refusal(await self.read_reply())
                    pending -= 1
                if failed is None:
                    chunk, last = await anext(chunks)
                    await self._send(_bdat(chunk, last))
                    pending += 1
        if failed is None:
            while pending > 1 and failed is None:  # the chunks before LAST
                failed = _refusal(await self.read_reply())
                pending -= 1
            if failed is None:
                return await self._final_replies(replies, accepted, "BDAT")
        # RFC 3030 §2: a failed chunk fails the message; keep the replies in step, then RSET.
        for _ in range(pending):
            await self.read_reply(self.data_timeout)
        with contextlib.suppress(SMTPReplyError):
            await self.reset()
        raise SMTPReplyError(failed, "BDAT")

    def _bdat_timeout(self, last: bool) -> float:
        return self.data_timeout if last else self.timeout

    async def _send_body(self, body: bytes | Path) -> None:
        stuffer = DotStuffer()
        if isinstance(body, bytes):
            for start in range(0, len(body), CHUNK_SIZE):
                await self._send(stuffer.feed(body[start : start + CHUNK_SIZE]))
        else:
            async with await trio.open_file(body, "rb") as f:
                while chunk := await f.read(CHUNK_SIZE):
                    await self._send(stuffer.feed(chunk))
        await self._send(stuffer.finish())


def _refusal(reply: Reply) -> Reply | None:
    return None if reply.code == 250 else reply


def _bdat(chunk: bytes, last: bool) -> bytes:
    return f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode("ascii") + chunk


async def _chunks(body: bytes | Path, size: int) -> AsyncGenerator[tuple[bytes, bool]]:
    """The body in chunks of at most ``size`` octets, each with "is it the last?".

    A file is read one chunk ahead (to know which is last), never whole; an
    empty body is one empty last chunk (``BDAT 0 LAST``).
    """
    if isinstance(body, bytes):
        starts = range(0, len(body), size) or range(1)
        for start in starts:
            yield body[start : start + size], start + size >= len(body)
        return
    async with await trio.open_file(body, "rb") as f:
        chunk = await f.read(size)
        while True:
            ahead = await f.read(size) if chunk else b""
            yield chunk, not ahead
            if not ahead:
                return
            chunk = ahead


def _file_size(path: Path) -> int:
    return path.stat().st_size


def _file_is_8bit(path: Path) -> bool:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            if _is_8bit(chunk):
                return True
    return False


def default_tls_context(*, verify: bool = True) -> ssl.SSLContext:
    """A client context; ``verify=False`` still encrypts (opportunistic TLS, RFC 7435)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@asynccontextmanager
async def open_smtp_client(
    host: str,
    port: int = 25,
    *,
    ehlo_name: str = "localhost",
    connect_address: str | None = None,
    tls: TLSMode = TLSMode.OPPORTUNISTIC,
    ssl_context: ssl.SSLContext | None = None,
    verify_tls: bool = True,
    username: str | None = None,
    password: str | None = None,
    allow_insecure_auth: bool = False,
    connect_timeout: float = 30.0,
    command_timeout: float = 300.0,
    data_timeout: float = 600.0,
    chunking: bool = True,
    lmtp: bool = False,
    unix_socket: str | None = None,
) -> AsyncIterator[SMTPClient]:
    """Connect, greet, EHLO, STARTTLS and AUTH as asked; QUIT and close on exit.

    Args:
      host: The server's name: used for SNI and certificate checks, and
        connected to unless ``connect_address`` is given.
      port: 25 for relaying, 587 for submission.
      ehlo_name: Our name in EHLO.
      connect_address: An IP address to connect to instead of resolving
        ``host`` (the relay resolves MX hosts itself).
      tls: See :class:`TLSMode`.
      ssl_context: The context for STARTTLS; by default the system's trust
        store, with ``verify_tls`` deciding whether certificates are checked.
      username: With ``password``, AUTH after TLS.
      connect_timeout: Seconds to connect and get the greeting.
      command_timeout: Seconds for each command's reply (RFC 5321 §4.5.3.2 suggests 5 minutes).
      data_timeout: Seconds for the reply after the body (RFC 5321: 10 minutes).
      chunking: Send bodies with ``BDAT`` where CHUNKING is offered (RFC 3030);
        false always uses ``DATA``.
      lmtp: Speak LMTP (RFC 2033): LHLO, and after the body one reply per
        accepted recipient (``SendResult.recipients``), in RCPT order.
      unix_socket: Connect to this Unix socket path instead of TCP
        (``host`` then only names the server in errors; LMTP's usual way).

    Raises:
      SMTPError: Including :class:`SMTPConnectionLost` when nothing listens.
    """
    where = unix_socket if unix_socket is not None else f"{host}:{port}"
    try:
        with trio.fail_after(connect_timeout):
            stream: trio.abc.Stream
            if unix_socket is not None:
                stream = await trio.open_unix_socket(unix_socket)
            else:
                stream = await trio.open_tcp_stream(connect_address or host, port)
    except trio.TooSlowError:
        raise SMTPTimeout(f"connecting to {where} timed out") from None
    except OSError as exc:
        raise SMTPConnectionLost(f"cannot connect to {where}: {exc}") from exc
    client = SMTPClient(
        stream,
        host,
        timeout=command_timeout,
        data_timeout=data_timeout,
        chunking=chunking,
        lmtp=lmtp,
    )
    try:
        client.greeting = await client.read_reply(connect_timeout)
        if client.greeting.code != 220:
            raise SMTPReplyError(client.greeting, "connect")
        await client.ehlo(ehlo_name)
        if tls is not TLSMode.NEVER and client.supports("STARTTLS"):
            context = ssl_context or default_tls_context(verify=verify_tls)
            await client.starttls(context, ehlo_name)
        elif tls is TLSMode.REQUIRE:
            raise SMTPError(451, f"{host} does not offer STARTTLS and TLS is required", "4.7.10")
        if username is not None and password is not None:
            await client.login(username, password, allow_insecure_auth=allow_insecure_auth)
        yield client
        await client.quit()
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(client.stream)


async def send(
    host: str,
    port: int,
    sender: str,
    recipients: Sequence[str],
    body: bytes | Path,
    **options: Any,
) -> SendResult:
    """Connect, send one message, quit: :func:`open_smtp_client` options pass through.

    Example::

        result = await send("127.0.0.1", 2525, "a@example.com", ["b@example.net"],
                            b"Subject: hi\\r\\n\\r\\nHello\\r\\n")
    """
    async with open_smtp_client(host, port, **options) as client:
        return await client.send_message(sender, recipients, body)
