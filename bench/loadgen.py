"""An SMTP load generator: plain non-blocking sockets on one epoll loop per process.

Each connection follows a script of (octets to send, final replies to wait for)
steps. Without pipelining it behaves like Postfix's ``smtp-source`` (HELO, then
MAIL, RCPT, DATA, body one at a time, each waiting for its reply); with
pipelining it sends EHLO, then ``MAIL RCPT DATA`` as one group and each body
together with the next ``MAIL RCPT DATA`` (RFC 2920 lets a group start with
message content and end with DATA). With ``--bdat`` it sends EHLO, checks that
the server offers CHUNKING, then per message ``MAIL``, ``RCPT`` and ``BDAT <size>
LAST`` followed by the whole message as one chunk (RFC 3030: no dot-stuffing,
no terminator), each waiting for its reply like the non-pipelined DATA script.

Every reply's code is checked: a 4xx/5xx or a dropped connection counts as an
error and the run reports it, so a server cannot look fast by refusing mail.

Usage (also imported by ``bench/run.py``)::

    python bench/loadgen.py --port 2525 --sessions 20 --messages 2000 --size 1024
    python bench/loadgen.py --port 2525 --message signed-1k.eml   # a given (pre-signed) message
    python bench/loadgen.py --port 2525 --bdat                    # BDAT LAST, one chunk
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import resource
import selectors
import socket
import time
from dataclasses import dataclass, field

_SEL_READ = selectors.EVENT_READ
_SEL_WRITE = selectors.EVENT_WRITE


def make_body(size: int) -> bytes:
    """A message of about ``size`` octets: headers, then 76-octet text lines."""
    header = (
        b"From: bench <bench@example.org>\r\nTo: sink <sink@example.net>\r\n"
        b"Subject: benchmark\r\nMessage-ID: <bench@example.org>\r\n\r\n"
    )
    line = b"x" * 74 + b"\r\n"
    lines = max(1, (size - len(header)) // len(line))
    return header + line * lines


def stuff(message: bytes) -> bytes:
    """``message`` as DATA content: dot-stuffed (RFC 5321 §4.5.2), ending in CRLF."""
    data = message.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def script(
    messages: int, body: bytes, *, pipelining: bool, bdat: bool = False
) -> list[tuple[bytes, int]]:
    """The steps of one connection carrying ``messages`` messages.

    ``body`` is DATA content (dot-stuffed, see :func:`stuff`), or with ``bdat``
    the message as it is, sent as one ``BDAT <size> LAST`` chunk.
    """
    mail = b"MAIL FROM:<bench@example.org>\r\n"
    rcpt = b"RCPT TO:<sink@example.net>\r\n"
    data = b"DATA\r\n"
    end = body + b".\r\n"
    steps: list[tuple[bytes, int]] = [(b"", 1)]  # the greeting
    if bdat:
        if pipelining:
            raise ValueError("bdat sends like the non-pipelined script: no pipelining")
        # The command and its chunk in one write, answered by one reply.
        chunk = b"BDAT %d LAST\r\n" % len(body) + body
        steps.append((b"EHLO bench.example.org\r\n", 1))  # step EHLO_STEP
        for _ in range(messages):
            steps += [(mail, 1), (rcpt, 1), (chunk, 1)]
        steps.append((b"QUIT\r\n", 1))
        return steps
    if not pipelining:
        steps.append((b"HELO bench.example.org\r\n", 1))
        for _ in range(messages):
            steps += [(mail, 1), (rcpt, 1), (data, 1), (end, 1)]
        steps.append((b"QUIT\r\n", 1))
        return steps
    steps.append((b"EHLO bench.example.org\r\n", 1))
    if messages == 0:
        steps.append((b"QUIT\r\n", 1))
        return steps
    steps.append((mail + rcpt + data, 3))
    for _ in range(messages - 1):
        steps.append((end + mail + rcpt + data, 4))
    steps.append((end + b"QUIT\r\n", 2))
    return steps


EHLO_STEP = 1
"""The index of the EHLO step in :func:`script` (after the greeting)."""


@dataclass
class _Conn:
    sock: socket.socket
    steps: list[tuple[bytes, int]]
    messages: int
    step: int = 0
    out: memoryview = field(default_factory=lambda: memoryview(b""))
    waiting: int = 0
    partial: bytes = b""
    need: bytes = b""
    """An EHLO keyword the server must offer (``bdat``: ``CHUNKING``); empty: none."""
    offered: bool = False


@dataclass
class Result:
    messages: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    first_error: str = ""


def run(
    port: int,
    *,
    sessions: int,
    messages: int,
    per_connection: int,
    size: int,
    pipelining: bool = False,
    host: str = "127.0.0.1",
    message: bytes | None = None,
    bdat: bool = False,
) -> Result:
    """Deliver ``messages`` messages over ``sessions`` concurrent connections.

    Args:
      per_connection: Messages per connection; a connection that finishes is
        replaced by a new one while messages remain.
      message: Send this message as it is (dot-stuffed here), e.g. a pre-signed
        one, instead of ``make_body(size)``.
      bdat: Send each message as one ``BDAT <size> LAST`` chunk (not dot-stuffed);
        a server whose EHLO reply lacks CHUNKING fails the run (no new connection
        is opened after the first such reply).
    """
    # BDAT sends the message as it is: a chunk needs no dot-stuffing (RFC 3030 §2).
    body = make_body(size) if message is None else message if bdat else stuff(message)
    sel = selectors.DefaultSelector()
    result = Result()
    remaining = messages
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()

    def open_one() -> None:
        nonlocal remaining
        count = min(per_connection, remaining)
        remaining -= count
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect((host, port))
        conn = _Conn(sock, script(count, body, pipelining=pipelining, bdat=bdat), count)
        conn.need = b"CHUNKING" if bdat else b""
        conn.waiting = conn.steps[0][1]
        sel.register(sock, _SEL_READ, conn)

    def fail(conn: _Conn, why: str) -> None:
        result.errors += 1
        if not result.first_error:
            result.first_error = why
        close(conn)

    def close(conn: _Conn) -> None:
        sel.unregister(conn.sock)
        conn.sock.close()
        if remaining > 0:
            open_one()

    def advance(conn: _Conn) -> None:
        conn.step += 1
        if conn.step == len(conn.steps):
            close(conn)
            return
        data, conn.waiting = conn.steps[conn.step]
        conn.out = memoryview(data)
        write(conn)

    def write(conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            fail(conn, f"send: {exc}")
            return
        conn.out = conn.out[sent:]
        sel.modify(conn.sock, _SEL_WRITE if conn.out else _SEL_READ, conn)

    def read(conn: _Conn) -> None:
        nonlocal remaining
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            fail(conn, f"recv: {exc}")
            return
        if not data:
            fail(conn, "server closed the connection")
            return
        data = conn.partial + data
        lines = data.split(b"\r\n")
        conn.partial = lines.pop()
        for line in lines:
            if conn.need and conn.step == EHLO_STEP:
                conn.offered |= line[4:].split(b" ")[0].upper() == conn.need
            if line[3:4] == b"-":
                continue
            if line[:1] not in (b"2", b"3"):
                fail(conn, f"reply {line[:80]!r}")
                return
            conn.waiting -= 1
            if line.startswith(b"221"):
                result.messages += conn.messages
        if conn.waiting == 0:
            if conn.need and conn.step == EHLO_STEP and not conn.offered:
                remaining = 0  # every connection would fail alike: stop here
                fail(conn, f"the server does not offer {conn.need.decode()} in its EHLO reply")
                return
            advance(conn)

    for _ in range(min(sessions, messages) or 1):
        open_one()
    while sel.get_map():
        for key, events in sel.select():
            conn = key.data
            if events & _SEL_WRITE:
                write(conn)
            elif events & _SEL_READ:
                read(conn)
    result.seconds = time.perf_counter() - start
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    sel.close()
    return result


def _child(args: tuple[int, dict[str, object]]) -> Result:
    port, kwargs = args
    return run(port, **kwargs)  # type: ignore[arg-type]


def run_parallel(
    port: int, *, procs: int, sessions: int, messages: int, **kwargs: object
) -> Result:
    """Split the load over ``procs`` processes; seconds is the slowest one's."""
    if procs <= 1:
        return run(port, sessions=sessions, messages=messages, **kwargs)  # type: ignore[arg-type]
    parts = []
    for i in range(procs):
        s = sessions // procs + (i < sessions % procs)
        m = messages // procs + (i < messages % procs)
        parts.append((port, {"sessions": s, "messages": m, **kwargs}))
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        results = pool.map(_child, parts)
    total = Result()
    for r in results:
        total.messages += r.messages
        total.errors += r.errors
        total.cpu += r.cpu
        total.seconds = max(total.seconds, r.seconds)
        total.first_error = total.first_error or r.first_error
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--per-connection", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--pipelining", action="store_true")
    mode.add_argument(
        "--bdat", action="store_true", help="each message as one BDAT LAST chunk (CHUNKING)"
    )
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument(
        "--message", metavar="FILE", help="send this message file as it is (e.g. DKIM-signed)"
    )
    a = parser.parse_args()
    message = None
    if a.message:
        with open(a.message, "rb") as f:
            message = f.read()
    r = run_parallel(
        a.port,
        procs=a.procs,
        sessions=a.sessions,
        messages=a.messages,
        per_connection=a.per_connection,
        size=a.size,
        pipelining=a.pipelining,
        host=a.host,
        message=message,
        bdat=a.bdat,
    )
    print(json.dumps({**r.__dict__, "rate": r.messages / r.seconds if r.seconds else 0}))


if __name__ == "__main__":
    main()
