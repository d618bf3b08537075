"""Discard mode and multi-process serving (``serve --discard --workers N``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from serve_process import serving

from mailio_trio import Config, Limits, Server
from mailio_trio.cli._workers import add_workers_arguments
from mailio_trio.protocol.catalogue import MESSAGE_TOO_BIG
from mailio_trio.server.workers import _serve_sockets, open_sockets
from mailio_trio.testing import open_raw_connection

if TYPE_CHECKING:
    from collections.abc import Callable


async def test_discard_reads_whole_body_and_stores_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = Config(hostname="mx.test", spool_dir=tmp_path, limits=Limits(message_size=4096))
    server = Server(config, discard=True)
    [(host, port)] = await nursery.start(server.serve, "127.0.0.1", 0)
    async with open_raw_connection(host, port) as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        for _ in range(2):
            await conn.command("MAIL FROM:<a@example.org>")
            assert (await conn.command("RCPT TO:<anyone@anywhere.example>")).code == 250
            assert (await conn.command("DATA")).code == 354
            # A body split over writes, with a dot-stuffed line and a pipelined NOOP after it.
            await conn.send(b"Subject: x\r\n\r\n" + b"y" * 900 + b"\r\n..dot\r\n")
            await conn.send(b".\r\nNOOP\r\n")
            reply = await conn.read_reply()
            assert (reply.code, reply.enhanced) == (250, "2.0.0")
            assert (await conn.read_reply()).code == 250  # the NOOP: DATA ended exactly
        # The limits still hold in discard mode.
        await conn.command("MAIL FROM:<a@example.org>")
        await conn.command("RCPT TO:<b@example.com>")
        await conn.command("DATA")
        reply = await conn.command((b"z" * 900 + b"\r\n") * 6 + b".")
        assert reply == MESSAGE_TOO_BIG
    assert _nothing_stored(tmp_path)


def _nothing_stored(spool: Path) -> bool:
    # /dev/null stands in for the message file in discard mode: it must never be unlinked.
    return not list(spool.iterdir()) and os.path.exists(os.devnull)


_WORKER_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from mailio_trio.server import workers
    from mailio_trio.config import Config
    from mailio_trio.server import Server

    config = Config(hostname="mx.test")

    def make_server():
        server = Server(config, discard=True)
        server.chain.add_extension(lambda session: f"X-WORKER {os.getpid()}")
        return server

    sys.exit(workers.serve(
        config, [("127.0.0.1", 0)], workers=2, make_server=make_server,
        announce=lambda line: print(line, flush=True),
    ))
    """
)


def _worker_of(client: smtplib.SMTP) -> str:
    code, text = client.ehlo("c.test")
    assert code == 250
    [pid] = [line.split()[1] for line in text.decode().splitlines() if line.startswith("X-WORKER")]
    return pid


def test_workers_share_the_port_and_stop_gracefully_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        pids = set()
        # With SO_REUSEPORT the kernel hashes each connection to a worker: 24
        # connections all landing on one of two workers has odds of 2**-23.
        for _ in range(24):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                pids.add(_worker_of(client))
                client.sendmail("a@example.org", ["b@example.com"], b"Subject: w\r\n\r\nhi\r\n")
        assert len(pids) == 2
        assert str(proc.pid) not in pids

        # A client idle in a session when SIGTERM arrives gets 421 4.3.2, then the close.
        client = smtplib.SMTP("127.0.0.1", port, timeout=30)
        try:
            _worker_of(client)
            proc.send_signal(signal.SIGTERM)
            code, text = client.getreply()
            assert code == 421
            assert text.startswith(b"4.3.2")
        finally:
            client.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_workers_flag_is_one_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="mailio-trio serve")
    add_workers_arguments(parser)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--workers", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--workers {value!r}: must be a whole number >= 1" in err


def test_flags_parse() -> None:
    parser = argparse.ArgumentParser()
    add_workers_arguments(parser)
    args = parser.parse_args(["--workers", "3", "--discard"])
    assert (args.workers, args.discard) == (3, True)
    args = parser.parse_args([])
    assert (args.workers, args.discard) == (1, False)


def _children_of(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The command name (field 2) may hold spaces; ppid is the 2nd field after ")".
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                out.add(int(stat.parent.name))
    return out


def _exited(pid: int) -> bool:
    """Gone, or a zombie nobody reaped (a container's pid 1 may not reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


def _wait_until(condition: Callable[[], bool], what: str, bound: float = 60.0) -> None:
    """Poll ``condition``; the bound only turns a hang into a failure, nothing is timed."""
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers in /proc")
def test_workers_stop_gracefully_when_the_parent_is_killed(tmp_path: Path) -> None:
    with serving(tmp_path, "--workers", "2") as (proc, port):
        _wait_until(lambda: len(_children_of(proc.pid)) == 2, "two workers forked")
        children = _children_of(proc.pid)
        # A client idle in a worker when the parent dies sees a graceful stop:
        # 421 4.3.2 (as on SIGTERM), not a connection cut by SIGKILL.
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            assert client.ehlo("c.test")[0] == 250
            proc.kill()  # SIGKILL to the parent alone, not to its process group
            proc.wait()
            code, text = client.getreply()
        assert (code, text[:5]) == (421, b"4.3.2")
        _wait_until(lambda: all(_exited(pid) for pid in children), "orphaned workers exited")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=30).close()


async def test_worker_stops_when_its_parent_is_gone_without_pdeathsig(tmp_path: Path) -> None:
    """The non-Linux fallback, run here directly: a parent pid that is not ours
    any more makes the worker shut down by itself (a real listening socket)."""
    config = Config(hostname="mx.test", spool_dir=tmp_path, worker_parent_check=0.01)
    [sockets] = open_sockets([("127.0.0.1", 0)], 1)
    try:
        with trio.fail_after(60):  # a hang fails instead of blocking the suite
            await _serve_sockets(Server(config), sockets, watch_parent=os.getppid() + 1)
    finally:
        for sock in sockets:
            sock.close()
