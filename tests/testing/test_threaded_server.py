"""The capturing server on its own thread (the sync fixture's engine): start, stop, leaks."""

from __future__ import annotations

import os
import smtplib
import socket
import threading

import pytest

from mailio_trio.testing import CaptureOptions, ThreadedServer, serve_in_thread
from mailio_trio.testing._threaded import THREAD_NAME

RUNS = 200


def _send(server: ThreadedServer, subject: str = "hi") -> None:
    with smtplib.SMTP(server.host, server.port, timeout=30) as client:
        client.sendmail("a@example.org", ["b@example.com"], f"Subject: {subject}\r\n\r\nx\r\n")


def _our_threads() -> list[threading.Thread]:
    # Trio keeps a process-wide cache of idle worker threads ("Trio thread N",
    # used by trio.to_thread) that exit after 10 s idle; they are Trio's, shared
    # by every trio.run, and hold no descriptor. Every other thread counts.
    return [t for t in threading.enumerate() if not t.name.startswith("Trio thread")]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _port_is_closed(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_many_runs_leave_no_thread_fd_or_port_behind() -> None:
    with serve_in_thread() as warm_up:  # Trio's worker-thread cache fills on first use
        _send(warm_up)
        warm_up.wait_for(1)
    threads, fds = len(_our_threads()), _open_fds()

    ports = []
    for i in range(RUNS):
        with serve_in_thread() as server:
            assert any(t.name == THREAD_NAME for t in threading.enumerate())
            _send(server, subject=f"run {i}")
            [captured] = server.wait_for(1)
            assert captured.message["Subject"] == f"run {i}"
            ports.append((server.host, server.port))

    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]
    assert len(_our_threads()) == threads
    assert _open_fds() == fds
    assert all(_port_is_closed(host, port) for host, port in set(ports))


def test_start_failure_is_raised_in_the_caller_and_leaves_no_thread() -> None:
    # 192.0.2.1 is TEST-NET-1: never a local address, so bind() fails.
    with (
        pytest.raises(OSError, match="assign requested address"),
        serve_in_thread(host="192.0.2.1"),
    ):
        pass
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_wait_for_times_out_with_a_count() -> None:
    with (
        serve_in_thread() as server,
        pytest.raises(TimeoutError, match=r"waited 0.05s for 1 message\(s\); 0 arrived"),
    ):
        server.wait_for(1, timeout=0.05)


def test_faults_armed_from_the_test_thread_fire_on_the_server_thread() -> None:
    with serve_in_thread() as server:
        server.fail_next("rcpt", 452, count=2)
        with smtplib.SMTP(server.host, server.port, timeout=30) as client:
            client.ehlo("client.test")
            client.mail("a@example.org")
            codes = [client.rcpt(f"r{i}@example.com")[0] for i in range(3)]
        assert codes == [452, 452, 250]
        assert server.faults.pending() == 0


def test_messages_is_a_snapshot_and_clear_empties_it() -> None:
    with serve_in_thread(options=CaptureOptions(hostname="mx.sync.test")) as server:
        _send(server, "one")
        [captured] = server.wait_for(1)
        snapshot = server.messages
        server.clear()
        assert snapshot == [captured]
        assert server.messages == []
        assert b"by mx.sync.test" in captured.raw
        assert server.find(subject="one") == []
