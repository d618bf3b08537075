"""A real HAProxy (Debian's) on loopback in front of several backends, for the fleet tests.

Unprivileged, in the foreground (``-db``), with a generated configuration.
Where it is not installed the tests skip, unless ``MAILIO_REQUIRE_HAPROXY=1``
(set by ``.ci/run``), where they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def haproxy_binary() -> str:
    binary = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if os.path.exists(p)), None
    )
    if binary is None:
        if os.environ.get("MAILIO_REQUIRE_HAPROXY") == "1":
            pytest.fail("haproxy is required (MAILIO_REQUIRE_HAPROXY=1) but not installed")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    return binary


@contextlib.contextmanager
def run_haproxy(
    directory: Path, backend_ports: Sequence[int], server_options: str = "send-proxy-v2"
) -> Iterator[int]:
    """HAProxy balancing ``roundrobin`` over ``backend_ports``; yields its frontend's port.

    One thread, so the round robin is one strict rotation (``s1``, ``s2``,
    ``s1``, ...) whatever thread accepts. Stopped (killed if need be) on exit.
    """
    binary = haproxy_binary()
    port = free_port()
    servers = "".join(
        f"    server s{i} 127.0.0.1:{backend} {server_options}\n"
        for i, backend in enumerate(backend_ports, 1)
    )
    config = directory / "haproxy.cfg"
    config.write_text(
        f"""\
global
    maxconn 100
    nbthread 1

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend smtp_in
    bind 127.0.0.1:{port}
    default_backend mailio

backend mailio
    balance roundrobin
{servers}"""
    )
    with (directory / "haproxy.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
