"""A bare-bones Trio accept-and-discard SMTP server: the floor for this machine.

Not an SMTP server anyone should run: no limits, no timeouts, no checks, no
handler chain, fixed replies. It answers just enough of SMTP for the load
generator, so that the runner can show what Trio itself costs per message on
this machine, next to mailio_trio and aiosmtpd in the same run. Plain
``trio.SocketStream`` I/O, one ``send_all`` per drained input.

``--fast``: the I/O strategy of mailio_trio's plain-TCP sessions instead of
``SocketStream`` — ``os.read``/``os.write`` on the non-blocking socket, waiting
(``wait_readable``) only when the kernel has nothing, and one shielded yield
after each reply. The floor of that strategy, with no SMTP logic.

Usage: ``python bench/serve_probe.py PORT [--fast]``
"""

from __future__ import annotations

import functools
import os
import signal
import sys

import trio

REPLIES = {
    b"EHLO": b"250-probe\r\n250 PIPELINING\r\n",
    b"HELO": b"250 probe\r\n",
    b"MAIL": b"250 OK\r\n",
    b"RCPT": b"250 OK\r\n",
    b"RSET": b"250 OK\r\n",
    b"NOOP": b"250 OK\r\n",
    b"DATA": b"354 go\r\n",
    b"QUIT": b"221 bye\r\n",
}


async def session(stream: trio.SocketStream) -> None:
    buf = b""
    in_data = False
    async with stream:
        await stream.send_all(b"220 probe ESMTP\r\n")
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buf += chunk
            out = []
            while True:
                if in_data:
                    end = buf.find(b"\r\n.\r\n")
                    if end < 0:
                        buf = buf[-4:]
                        break
                    buf = buf[end + 5 :]
                    in_data = False
                    out.append(b"250 OK queued\r\n")
                    continue
                eol = buf.find(b"\r\n")
                if eol < 0:
                    break
                verb = buf[:4].upper()
                buf = buf[eol + 2 :]
                out.append(REPLIES.get(verb, b"500 what\r\n"))
                if verb == b"DATA":
                    # Keep the CRLF before the body so a body of "." alone still ends.
                    buf = b"\r\n" + buf
                    in_data = True
                elif verb == b"QUIT":
                    await stream.send_all(b"".join(out))
                    return
            if out:
                await stream.send_all(b"".join(out))


def _replies(buf: bytes, in_data: bool) -> tuple[list[bytes], bytes, bool, bool]:
    """Answer what ``buf`` holds; returns (replies, rest, in_data, quit)."""
    out = []
    while True:
        if in_data:
            end = buf.find(b"\r\n.\r\n")
            if end < 0:
                return out, buf[-4:], True, False
            buf = buf[end + 5 :]
            in_data = False
            out.append(b"250 OK queued\r\n")
            continue
        eol = buf.find(b"\r\n")
        if eol < 0:
            return out, buf, False, False
        verb = buf[:4].upper()
        buf = buf[eol + 2 :]
        out.append(REPLIES.get(verb, b"500 what\r\n"))
        if verb == b"DATA":
            buf = b"\r\n" + buf
            in_data = True
        elif verb == b"QUIT":
            return out, buf, False, True


async def session_fast(stream: trio.SocketStream) -> None:
    fd = stream.socket.fileno()
    buf = b""
    in_data = False
    async with stream:
        os.write(fd, b"220 probe ESMTP\r\n")
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                continue
            if not chunk:
                return
            out, buf, in_data, done = _replies(buf + chunk, in_data)
            if out:
                os.write(fd, b"".join(out))  # replies this small always fit the send buffer
                if done:
                    return
                # What mailio_trio does after a reply: let the client answer before reading.
                await trio.lowlevel.cancel_shielded_checkpoint()


async def main(port: int, fast: bool) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(
                    trio.serve_tcp, session_fast if fast else session, port, host="127.0.0.1"
                )
            )
            print(f"listening on 127.0.0.1:{port}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), "--fast" in sys.argv[2:])
