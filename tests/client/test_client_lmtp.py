"""The client's LMTP mode (RFC 2033) against a scripted LMTP peer on a Unix socket.

The peer is a few lines of Trio on a socket in ``tmp_path``: it answers LHLO
(refusing EHLO, so a client saying EHLO fails), then after the body one
scripted reply per accepted recipient, in RCPT order. The real thing
(Dovecot) is tests/e2e/test_e2e_lmtp.py; this one runs everywhere and scripts
what Dovecot will not do on demand (a ``452`` after the body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import pytest
import trio

from mailio_trio.client import SMTPReplyError, open_smtp_client

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 20
BODY = b"Subject: lmtp\r\n\r\n.dot\r\nhello\r\n"


@attrs.define
class LmtpPeer:
    """Scripted LMTP: ``rcpt`` and ``final`` map a recipient to its reply line."""

    chunking: bool
    rcpt: dict[str, bytes] = attrs.field(factory=dict)
    final: dict[str, bytes] = attrs.field(factory=dict)
    commands: list[str] = attrs.field(factory=list)
    bodies: list[bytes] = attrs.field(factory=list)

    async def serve(self, stream: trio.abc.Stream) -> None:
        buffer = b""

        async def line() -> str:
            nonlocal buffer
            while b"\r\n" not in buffer:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    raise EOFError
                buffer += chunk
            got, _, buffer = buffer.partition(b"\r\n")
            return got.decode()

        async def exactly(size: int) -> bytes:
            nonlocal buffer
            while len(buffer) < size:
                buffer += await stream.receive_some(65536)
            got, buffer = buffer[:size], buffer[size:]
            return got

        await stream.send_all(b"220 lmtp.test LMTP ready\r\n")
        accepted: list[str] = []
        body = b""
        try:
            while True:
                command = await line()
                self.commands.append(command.split(" ", 1)[0] if command else command)
                verb = command[:4].upper()
                if verb == "LHLO":
                    extra = b"250-CHUNKING\r\n" if self.chunking else b""
                    await stream.send_all(
                        b"250-lmtp.test\r\n250-PIPELINING\r\n" + extra + b"250 8BITMIME\r\n"
                    )
                elif verb == "MAIL":
                    accepted, body = [], b""
                    await stream.send_all(b"250 2.1.0 OK\r\n")
                elif verb == "RCPT":
                    address = command.partition("<")[2].partition(">")[0]
                    reply = self.rcpt.get(address, b"250 2.1.5 OK")
                    if reply.startswith(b"250"):
                        accepted.append(address)
                    await stream.send_all(reply + b"\r\n")
                elif verb == "BDAT":
                    size, *last = command.split()[1:]
                    body += await exactly(int(size))
                    if not last:
                        await stream.send_all(b"250 2.0.0 chunk OK\r\n")
                        continue
                    await self._finish(stream, accepted, body)
                elif verb == "DATA":
                    await stream.send_all(b"354 go ahead\r\n")
                    while b"\r\n.\r\n" not in buffer:
                        buffer += await stream.receive_some(65536)
                    data, _, buffer = buffer.partition(b"\r\n.\r\n")
                    await self._finish(stream, accepted, data + b"\r\n")
                elif verb == "QUIT":
                    await stream.send_all(b"221 2.0.0 bye\r\n")
                    return
                elif verb == "RSET":
                    await stream.send_all(b"250 2.0.0 OK\r\n")
                else:
                    await stream.send_all(b"500 5.5.1 LMTP: say LHLO\r\n")
        except (EOFError, trio.BrokenResourceError):
            return

    async def _finish(self, stream: trio.abc.Stream, accepted: list[str], body: bytes) -> None:
        self.bodies.append(body)
        replies = b"".join(self.final.get(r, b"250 2.0.0 saved") + b"\r\n" for r in accepted)
        await stream.send_all(replies)


async def start_peer(nursery: trio.Nursery, tmp_path: Path, peer: LmtpPeer) -> str:
    path = str(tmp_path / "lmtp.sock")
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen()
    listener = trio.SocketListener(sock)
    nursery.start_soon(trio.serve_listeners, peer.serve, [listener])
    return path


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_one_reply_per_accepted_recipient_after_the_body(
    nursery: trio.Nursery, tmp_path: Path, chunking: bool
) -> None:
    peer = LmtpPeer(
        chunking=chunking,
        rcpt={"bob@example.com": b"550 5.1.1 <bob@example.com> User doesn't exist"},
        final={"cy@example.com": b"452 4.2.2 <cy@example.com> Mailbox full"},
    )
    path = await start_peer(nursery, tmp_path, peer)
    recipients = ["amy@example.com", "bob@example.com", "cy@example.com", "dan@example.com"]
    with trio.fail_after(WAIT):
        async with open_smtp_client("lmtp.test", lmtp=True, unix_socket=path) as client:
            result = await client.send_message("a@example.org", recipients, BODY)
            # Still in step: a second transaction on the same connection.
            again = await client.send_message("a@example.org", ["amy@example.com"], BODY)
    assert peer.commands[0] == "LHLO"
    assert ("BDAT" in peer.commands) is chunking
    assert ("DATA" in peer.commands) is not chunking
    codes = {r: (reply.code, reply.enhanced) for r, reply in result.recipients.items()}
    assert codes == {
        "amy@example.com": (250, "2.0.0"),
        "bob@example.com": (550, "5.1.1"),
        "cy@example.com": (452, "4.2.2"),
        "dan@example.com": (250, "2.0.0"),
    }
    assert result.accepted == ["amy@example.com", "dan@example.com"]
    assert again.accepted == ["amy@example.com"]
    assert peer.bodies[0].replace(b"\r\n..", b"\r\n.") == BODY


async def test_every_recipient_refused_after_the_body_raises(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    full = b"452 4.2.2 Mailbox full"
    peer = LmtpPeer(chunking=True, final={"amy@example.com": full, "cy@example.com": full})
    path = await start_peer(nursery, tmp_path, peer)
    with trio.fail_after(WAIT):
        async with open_smtp_client("lmtp.test", lmtp=True, unix_socket=path) as client:
            with pytest.raises(SMTPReplyError) as caught:
                await client.send_message(
                    "a@example.org", ["amy@example.com", "cy@example.com"], BODY
                )
    assert (caught.value.command, caught.value.code) == ("BDAT", 452)
    assert not caught.value.permanent


async def test_nothing_on_the_socket_is_connection_lost(tmp_path: Path) -> None:
    from mailio_trio.client import SMTPConnectionLost

    with trio.fail_after(WAIT), pytest.raises(SMTPConnectionLost) as caught:
        async with open_smtp_client("x", lmtp=True, unix_socket=str(tmp_path / "none")):
            pass
    assert str(tmp_path / "none") in caught.value.text
