"""Single SMTP sessions for the runner: a sanity-check send, and command latency under load.

Plain blocking sockets with timeouts, so every exchange is bounded.

:func:`noop_latency` answers issue #14's question "does verifying a big signed
message stall other sessions?": one session (a thread) sends a 10 MiB
DKIM-signed message ``repeats`` times; meanwhile another session sends NOOPs
back to back and times each round trip. Each NOOP is put in the *verify*
phase when it overlaps the time between the big message's final dot and its
reply (what the server spends verifying and storing it), else in the
*transfer* phase. Reported: the count, p50, p99 and max in each phase, and how
long the server took to answer the final dot.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from dataclasses import dataclass, field

import loadgen

EHLO = b"EHLO bench.example.org\r\n"


class _Session:
    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def reply(self) -> bytes:
        """The last line of one (possibly multiline) reply."""
        while (line := self.file.readline())[3:4] == b"-":
            pass
        if not line:
            raise ConnectionError("server closed the connection")
        return line.rstrip(b"\r\n")

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        return self.reply()

    def expect(self, line: bytes, code: bytes) -> None:
        reply = self.command(line)
        if not reply.startswith(code):
            raise ConnectionError(f"{line.strip()!r}: {reply!r}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _stuffed(message: bytes) -> bytes:
    return loadgen.stuff(message) + b".\r\n"


def send_one(port: int, sender: str, message: bytes, *, timeout: float = 30) -> bytes:
    """Deliver ``message`` once from ``sender``; the reply to the final dot (or the refusal)."""
    s = _Session(port, timeout)
    try:
        if not s.reply().startswith(b"220"):
            raise ConnectionError("no greeting")
        s.expect(EHLO, b"250")
        for line in (f"MAIL FROM:<{sender}>\r\n".encode(), b"RCPT TO:<sink@example.net>\r\n"):
            reply = s.command(line)
            if not reply.startswith(b"250"):
                return reply
        reply = s.command(b"DATA\r\n")
        if not reply.startswith(b"354"):
            return reply
        s.sock.sendall(_stuffed(message))
        final = s.reply()
        s.command(b"QUIT\r\n")
        return final
    finally:
        s.close()


@dataclass
class _Big:
    """The big-message session's timeline: (final dot sent, reply read) per message."""

    windows: list[tuple[float, float]] = field(default_factory=list)
    error: str = ""


def _send_big(port: int, message: bytes, repeats: int, timeout: float, out: _Big) -> None:
    try:
        s = _Session(port, timeout)
        try:
            s.reply()
            s.expect(EHLO, b"250")
            body = _stuffed(message)
            for _ in range(repeats):
                s.expect(b"MAIL FROM:<bench@example.org>\r\n", b"250")
                s.expect(b"RCPT TO:<sink@example.net>\r\n", b"250")
                s.expect(b"DATA\r\n", b"354")
                s.sock.sendall(body)
                sent = time.perf_counter()
                reply = s.reply()
                out.windows.append((sent, time.perf_counter()))
                if not reply.startswith(b"250"):
                    raise ConnectionError(f"final dot: {reply!r}")
            s.command(b"QUIT\r\n")
        finally:
            s.close()
    except (OSError, ConnectionError) as exc:
        out.error = str(exc) or type(exc).__name__


def _summary(prefix: str, samples: list[float]) -> dict[str, float]:
    if not samples:
        return {f"{prefix}_n": 0, f"{prefix}_p50_ms": 0.0, f"{prefix}_p99_ms": 0.0,
                f"{prefix}_max_ms": 0.0}  # fmt: skip
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        f"{prefix}_n": len(ordered),
        f"{prefix}_p50_ms": statistics.median(ordered) * 1e3,
        f"{prefix}_p99_ms": p99 * 1e3,
        f"{prefix}_max_ms": ordered[-1] * 1e3,
    }


def noop_latency(
    port: int, message: bytes, *, repeats: int, max_noops: int = 200_000, timeout: float = 120
) -> dict[str, float]:
    """NOOP round trips on one session while another sends ``message`` ``repeats`` times.

    Bounded: at most ``max_noops`` NOOPs, and every socket operation has ``timeout``.

    Raises:
      SystemExit: Either session failed (a refused message or a dropped connection).
    """
    probe = _Session(port, timeout)
    big = _Big()
    try:
        probe.reply()
        probe.expect(EHLO, b"250")
        sender = threading.Thread(
            target=_send_big, args=(port, message, repeats, timeout, big), daemon=True
        )
        start = time.perf_counter()
        sender.start()
        rounds: list[tuple[float, float]] = []
        while sender.is_alive() and len(rounds) < max_noops:
            t0 = time.perf_counter()
            reply = probe.command(b"NOOP\r\n")
            rounds.append((t0, time.perf_counter()))
            if not reply.startswith(b"250"):
                raise SystemExit(f"NOOP: {reply!r}")
        sender.join(timeout)
        seconds = time.perf_counter() - start
        probe.command(b"QUIT\r\n")
    finally:
        probe.close()
    if big.error or sender.is_alive() or len(big.windows) != repeats:
        raise SystemExit(f"big-message session failed: {big.error or 'did not finish'}")

    def in_verify(t0: float, t1: float) -> bool:
        return any(t0 < end and t1 > sent for sent, end in big.windows)

    verify = [t1 - t0 for t0, t1 in rounds if in_verify(t0, t1)]
    transfer = [t1 - t0 for t0, t1 in rounds if not in_verify(t0, t1)]
    final = [end - sent for sent, end in big.windows]
    return {
        **_summary("all", [t1 - t0 for t0, t1 in rounds]),
        **_summary("verify", verify),
        **_summary("transfer", transfer),
        "final_dot_ms": statistics.median(final) * 1e3,
        "seconds": seconds,
    }
