"""systemd integration: readiness notification, the watchdog, socket activation.

All of it is a no-op outside systemd. ``sd_notify(3)``: when ``NOTIFY_SOCKET``
names a unix datagram socket (a path, or ``@name`` in the abstract namespace),
each state is one datagram (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``,
``STATUS=...``). The watchdog pings every half ``WATCHDOG_USEC``, from the Trio
loop itself, so a wedged loop is what stops the pings. ``sd_listen_fds(3)``:
when ``LISTEN_PID`` is our pid, fds 3 .. 3 + ``LISTEN_FDS`` - 1 are listening
sockets systemd opened for us; ``LISTEN_FDNAMES`` (``FileDescriptorName=``)
``smtps`` marks implicit-TLS ones. The variables are removed once read, as
``sd_listen_fds(1)`` does, so a child process does not take them for its own.

Written from the protocol (a dozen lines) rather than depending on a binding:
python-systemd needs libsystemd headers to build, and sdnotify covers only
half of this.
"""

from __future__ import annotations

import logging
import os
import socket

import trio

__all__ = ["LISTEN_FDS_START", "listen_sockets", "notify", "watchdog", "watchdog_interval"]

logger = logging.getLogger("mailio_trio.server")

LISTEN_FDS_START = 3
"""The first inherited fd (SD_LISTEN_FDS_START)."""


def notify(*states: str) -> bool:
    """Send ``states`` to systemd as one message; False when not under systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not states:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)  # a datagram to a local socket: never worth waiting for
            sock.sendto("\n".join(states).encode(), address)
    except OSError as exc:
        logger.warning("sd_notify %s to %s failed: %s", states[0], address, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half ``WATCHDOG_USEC``), or ``None`` if it is off."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


async def watchdog(interval: float) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` seconds until cancelled."""
    while True:
        notify("WATCHDOG=1")
        await trio.sleep(interval)


def listen_sockets() -> dict[str, list[socket.socket]]:
    """Sockets systemd passed us, by name (``smtp`` when unnamed); empty when none."""
    pid, count = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if pid != str(os.getpid()) or not count.isdigit():
        return {}
    labels = names.split(":") if names else []
    out: dict[str, list[socket.socket]] = {}
    for index in range(int(count)):
        fd = LISTEN_FDS_START + index
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
        label = labels[index] if index < len(labels) and labels[index] else "smtp"
        out.setdefault(label, []).append(sock)
    return out
