"""Benchmark runner: mailio_trio's discard server vs aiosmtpd's Sink, A B A B on loopback.

Each round starts every server in turn (fresh process, same order every
round), runs every workload against it, and stops it. Reported per workload:
the median messages/s over the rounds, the ratio of medians against the
baseline (aiosmtpd), the server's CPU time per message (utime + stime from
``/proc/<pid>/stat``, summed over worker processes), its peak RSS during the
workload (``VmHWM`` after resetting it through ``/proc/<pid>/clear_refs``),
and the load generator's own CPU per message, so a saturated generator shows.

Two workloads run on mailio_trio only (aiosmtpd's Sink keeps bodies in memory
and has no durable store): BIG, one 100 MiB message streamed to a spool file,
reporting the server's RSS growth (peak ``VmHWM`` minus ``VmRSS`` before); and
WD, W2-like traffic into durable maildirs (file and directory fsync'd before
each ``250``), reporting the rate.

The new capabilities, ours only too, each next to the same traffic without it:

- email authentication (issue #14): WS/WA, W2's traffic spooled with
  verification off/on (SPF pass, no signature); WSK/WAK, the same with a
  pre-signed 1 KiB DKIM message; LAT0/LAT, NOOP round-trip latency on one
  session while another sends a 10 MiB signed message, verification off/on
  (see ``sessions.noop_latency``). Serving mode ``auth`` starts the loopback
  DNS server ``serve_dns.py`` (SPF, DMARC, the DKIM key) and checks once per
  start that SPF, DMARC and DKIM really decide (``_check_mailauth``).
- the PROXY protocol (issue #16): W2H, W2 through HAProxy forwarding plain
  TCP; W2X, through HAProxy with ``send-proxy-v2`` to a server expecting the
  header. Against W2 direct, in the same run; HAProxy's own CPU is reported.
- Redis-backed per-address limits (issue #16): W2R, W2 with the concurrency
  and rate limits per address counted in a ``redis-server`` started per round
  (serving mode ``redis``, ``serve_mailio.py --redis URL``), limits set far
  above the traffic so nothing is refused; the runner checks once per start
  that the warm-up's connections were counted there (``_check_redis``).
  Against W2 (no per-address limit); redis-server's own CPU is reported.
- BDAT (CHUNKING, RFC 3030): W2B, W2's traffic with each message sent as one
  ``BDAT <size> LAST`` chunk after EHLO (``loadgen.py --bdat``), against W2L,
  W2 sent by loadgen whatever ``--generator`` says; both run against the same
  server process as W2.
- the Prometheus endpoint (``[metrics] listen``): W2M, W2 with metrics on
  (serving mode ``metrics``, ``serve_mailio.py --metrics PORT``); against W2. At
  the end of each start the runner scrapes every worker's ``/metrics`` and
  checks that ``mailio_messages_total{outcome="accepted"}`` adds up to the
  messages sent (warm-up included), so a server that counted nothing, or
  something else, fails the run (``_check_metrics``).

Reference servers: aiosmtpd's Sink, Postfix's smtp-sink, the Trio probe (``probe-fast``: the
probe with our plain-TCP socket I/O, that strategy's floor), and
nodemailer's smtp-server (issue #18; ``smtp-server`` as shipped, with its fixed
100 ms wait before the greeting, and ``smtp-server-nodelay`` without it, see
``smtp-server/sink.js``).

The machine is shared and noisy: compare only figures from the same run.

Usage::

    python bench/run.py --rounds 3
    python bench/run.py --rounds 2 --workloads W2,W2P --servers mailio,aiosmtpd
    python bench/run.py --rounds 3 --workloads WS,WA,WSK,WAK,LAT0,LAT --servers mailio
    python bench/run.py --rounds 3 --workloads W2,W2H,W2X --servers mailio
    python bench/run.py --rounds 3 --workloads W2,W2R --servers mailio
    python bench/run.py --rounds 3 --workloads W2,W2L,W2B,W2M --servers mailio
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).parent))

import loadgen
import sessions

if TYPE_CHECKING:
    from collections.abc import Sequence

HERE = Path(__file__).parent
TICK = os.sysconf("SC_CLK_TCK")
GENERATOR = "loadgen"
"""Who sends the non-pipelined workloads: ``loadgen`` or Postfix's ``smtp-source``."""


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    sessions: int
    messages: int
    per_connection: int
    size: int
    pipelining: bool = False
    mode: str = "discard"
    """How mailio_trio serves it: ``discard``, ``spool``, ``maildir``, ``auth`` (spool with
    verification), ``haproxy`` (discard, behind HAProxy), ``proxy`` (discard, behind HAProxy
    with ``send-proxy-v2``), ``redis`` (discard, per-address limits counted in a
    redis-server) or ``metrics`` (discard, ``[metrics] listen`` on); all but ``discard``
    are ours only"""
    message: str = ""
    """A file of ``serve_dns.py make`` sent as it is (pre-signed); empty: ``make_body(size)``"""
    loadgen_only: bool = False
    """Sent by loadgen whatever ``--generator`` says: its group compares with workloads
    smtp-source cannot send (a given message), so the whole group uses one generator"""
    bdat: bool = False
    """Each message as one ``BDAT <size> LAST`` chunk (``loadgen.py --bdat``); loadgen
    only, and ours only even in ``discard`` mode (a reference server may lack CHUNKING)"""


WORKLOADS = {
    w.name: w
    for w in [
        Workload("W1", "1 KiB, 50 sessions, 1 msg/conn", 50, 1500, 1, 1024),
        Workload("W2", "1 KiB, 20 sessions, 100 msg/conn", 20, 2000, 100, 1024),
        Workload("W2P", "W2 pipelined (EHLO, PIPELINING)", 20, 2000, 100, 1024, True),
        Workload("W3", "1 MiB, 4 sessions, 10 msg/conn", 4, 40, 10, 1024 * 1024),
        Workload("W4", "1000 idle sessions after EHLO", 1000, 0, 0, 0),
        Workload("BIG", "one 100 MiB message, spooled to disk", 1, 1, 1, 100 << 20, mode="spool"),
        Workload("WD", "W2 into durable maildirs (fsync)", 20, 1000, 50, 1024, mode="maildir"),
        # Email authentication (issue #14): spooled, as verification needs the body kept.
        Workload(
            "WS",
            "W2 spooled, verification off",
            20,
            2000,
            100,
            1024,
            mode="spool",
            loadgen_only=True,
        ),
        Workload(
            "WA",
            "W2 spooled, SPF+DMARC on (unsigned)",
            20,
            2000,
            100,
            1024,
            mode="auth",
            loadgen_only=True,
        ),
        Workload(
            "WSK",
            "W2 spooled, DKIM-signed, verification off",
            20,
            2000,
            100,
            1024,
            mode="spool",
            message="signed-1k.eml",
        ),
        Workload(
            "WAK",
            "W2 spooled, DKIM-signed, SPF+DKIM+DMARC on",
            20,
            2000,
            100,
            1024,
            mode="auth",
            message="signed-1k.eml",
        ),
        # sessions = 2: the big-message session and the NOOP session; messages: repeats.
        Workload(
            "LAT0",
            "NOOP latency beside a 10 MiB signed message, verification off",
            2,
            3,
            3,
            10 << 20,
            mode="spool",
            message="signed-10m.eml",
        ),
        Workload(
            "LAT",
            "NOOP latency beside a 10 MiB signed message being verified",
            2,
            3,
            3,
            10 << 20,
            mode="auth",
            message="signed-10m.eml",
        ),
        # The PROXY protocol (issue #16): compare with W2 (direct) in the same run.
        Workload("W2H", "W2 through HAProxy (plain TCP)", 20, 2000, 100, 1024, mode="haproxy"),
        Workload("W2X", "W2 through HAProxy, send-proxy-v2", 20, 2000, 100, 1024, mode="proxy"),
        # Redis-backed per-address limits (issue #16): compare with W2 (no per-address
        # limit) in the same run; a redis-server is started per round (_start_redis).
        Workload("W2R", "W2, per-address limits in Redis", 20, 2000, 100, 1024, mode="redis"),
        # BDAT (CHUNKING): compare W2B with W2L, both sent by loadgen (W2 may be smtp-source's).
        Workload("W2L", "W2 sent by loadgen", 20, 2000, 100, 1024, loadgen_only=True),
        Workload(
            "W2B",
            "W2 as BDAT LAST, one chunk",
            20,
            2000,
            100,
            1024,
            loadgen_only=True,
            bdat=True,
        ),
        # The Prometheus endpoint: compare with W2 in the same run (same generator).
        Workload("W2M", "W2 with [metrics] listen on", 20, 2000, 100, 1024, mode="metrics"),
    ]
}
LATENCY = ("LAT0", "LAT")
PROXY_MODES = ("haproxy", "proxy")


def _server_command(
    name: str,
    port: int,
    mode: str = "discard",
    scratch: str = "",
    dns_port: int = 0,
    redis_port: int = 0,
    metrics_port: int = 0,
) -> list[str]:
    py = sys.executable
    extra = _mailio_flags(mode, scratch, dns_port, redis_port, metrics_port)
    if name == "aiosmtpd":
        return [
            py,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{port}",
        ]
    if name == "smtp-sink":
        # Postfix's C sink: the fastest real SMTP receiver at hand (-u: drop to that user).
        sink = _postfix_tool("smtp-sink")
        return [sink, "-u", "nobody", "-m", "2000", f"127.0.0.1:{port}", "2000"]
    if name == "probe":
        return [py, str(HERE / "serve_probe.py"), str(port)]
    if name == "probe-fast":
        # The probe with mailio_trio's plain-TCP I/O (os.read/os.write): that strategy's floor.
        return [py, str(HERE / "serve_probe.py"), str(port), "--fast"]
    if name in ("smtp-server", "smtp-server-nodelay"):
        # nodemailer's smtp-server (issue #18): `npm ci` in bench/smtp-server first.
        if not (SMTP_SERVER / "node_modules" / "smtp-server").is_dir():
            raise SystemExit(
                f"{SMTP_SERVER}/node_modules is missing: run `npm ci` there "
                "(nox -s bench does when --servers names smtp-server)"
            )
        nodelay = ["--no-greeting-delay"] if name == "smtp-server-nodelay" else []
        return ["node", str(SMTP_SERVER / "sink.js"), str(port), *nodelay]
    if name.startswith("mailio"):
        # mailio-base is the same server, run with an older checkout's src/ first on
        # the path (--base-src, see _run_mode): before/after in one run.
        workers = name.partition("-w")[2] or "1"
        return [py, str(HERE / "serve_mailio.py"), str(port), workers, *extra]
    raise SystemExit(
        f"unknown server {name!r}: mailio, mailio-wN, mailio-base, probe, probe-fast, smtp-sink, "
        "smtp-server, smtp-server-nodelay, aiosmtpd"
    )


def _mailio_flags(
    mode: str, scratch: str, dns_port: int, redis_port: int = 0, metrics_port: int = 0
) -> list[str]:
    """serve_mailio.py's flags for a serving mode."""
    return {
        "discard": [],
        "spool": ["--spool"],
        "maildir": ["--maildir", scratch],
        "auth": ["--spool", "--mailauth", str(dns_port)],
        "haproxy": [],
        "proxy": ["--proxy-protocol"],
        "redis": ["--redis", f"redis://127.0.0.1:{redis_port}/0"],
        "metrics": ["--metrics", str(metrics_port)],
    }[mode]


SMTP_SERVER = HERE / "smtp-server"
UNSUPPORTED = 3
"""serve_mailio.py's exit status when the src/ it runs lacks a mode's feature."""


POSTFIX_ROOT = os.environ.get("MAILIO_BENCH_POSTFIX", str(HERE / ".postfix"))


def _postfix_tool(name: str) -> str:
    """A program from Debian's postfix package, unpacked under POSTFIX_ROOT (no daemon runs).

    ``bench/get_postfix.sh`` unpacks it: ``apt-get download postfix`` and ``dpkg -x``.
    """
    path = Path(POSTFIX_ROOT) / "usr" / "sbin" / name
    if not path.exists():
        raise SystemExit(f"{path} is missing: run bench/get_postfix.sh first (needs apt-get)")
    return str(path)


def _postfix_env() -> dict[str, str]:
    return {**os.environ, "LD_LIBRARY_PATH": str(Path(POSTFIX_ROOT) / "usr" / "lib" / "postfix")}


def _smtp_source(port: int, workload: Workload) -> loadgen.Result:
    """Run Postfix's smtp-source (HELO, no pipelining): W1 reconnects per message, else -d."""
    command = [
        _postfix_tool("smtp-source"),
        "-s", str(workload.sessions),
        "-l", str(workload.size),
        "-m", str(workload.messages),
        "-f", "bench@example.org",
        "-t", "sink@example.net",
    ]  # fmt: skip
    if workload.per_connection > 1:
        command.append("-d")  # keep each session for its share of the messages
    command.append(f"127.0.0.1:{port}")
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=_postfix_env(), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    # smtp-source stops at the first negative reply and says why on stderr.
    failed = done.returncode != 0 or "fatal" in done.stderr or "error" in done.stderr
    return loadgen.Result(
        messages=0 if failed else workload.messages,
        errors=int(failed),
        seconds=seconds,
        cpu=cpu,
        first_error=done.stderr.strip()[:300],
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], greets: bool = True) -> None:
    """Until ``port`` greets (``greets=False``: accepts; a PROXY server waits for a header)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            if greets:
                s.recv(100)  # the greeting: the server is really serving
            return
        time.sleep(0.05)
    raise SystemExit("server did not start listening")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the worker processes)."""
    out = [pid]
    for p in out:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                text = Path(f"/proc/{p}/task/{task}/children").read_text()
                out.extend(int(c) for c in text.split())
    return out


def _cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICK


def _status_kib(pids: list[int], key: str) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


def _reset_peak(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def _idle_sessions(port: int, count: int, pids: list[int]) -> dict[str, float]:
    """W4: open ``count`` sessions, EHLO each, measure RSS growth per connection."""
    before = _status_kib(pids, "VmRSS")
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), 10)
            socks.append(s)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"EHLO bench.example.org\r\n")
            while (line := f.readline())[3:4] == b"-":
                pass
            f.close()
            if not line.startswith(b"250"):
                raise SystemExit(f"EHLO refused: {line!r}")
        time.sleep(0.5)  # let the server finish its bookkeeping; RSS is read once, after
        after = _status_kib(pids, "VmRSS")
    finally:
        for s in socks:
            s.close()
    return {"kib_per_conn": (after - before) / count, "rss_kib": after}


MESSAGES: Path | None = None
"""Where ``serve_dns.py make`` wrote the zone and the pre-signed messages (once per run)."""


def _message(workload: Workload) -> bytes | None:
    if not workload.message:
        return None
    assert MESSAGES is not None
    return (MESSAGES / workload.message).read_bytes()


def measure(
    server: str, workload: Workload, port: int, pids: list[int], proxy_pids: Sequence[int] = ()
) -> dict[str, float]:
    """One workload; ``proxy_pids``: HAProxy or redis-server, whose CPU is reported apart."""
    if workload.name == "W4":
        return _idle_sessions(port, workload.sessions, pids)
    message = _message(workload)
    rss0 = _status_kib(pids, "VmRSS")
    _reset_peak(pids)
    cpu0 = _cpu(pids)
    proxy_cpu0 = _cpu(list(proxy_pids))
    if workload.name in LATENCY:
        assert message is not None
        latency = sessions.noop_latency(port, message, repeats=workload.messages)
        return {
            **latency,
            "cpu_us": (_cpu(pids) - cpu0) / workload.messages * 1e6,
            "peak_kib": _status_kib(pids, "VmHWM"),
            "growth_kib": _status_kib(pids, "VmHWM") - rss0,
        }
    if GENERATOR == "smtp-source" and not (
        workload.pipelining or workload.loadgen_only or message is not None
    ):
        r = _smtp_source(port, workload)
    else:
        # loadgen: pipelined workloads, and a given message (smtp-source makes its own).
        r = loadgen.run(
            port,
            sessions=workload.sessions,
            messages=workload.messages,
            per_connection=workload.per_connection,
            size=workload.size,
            pipelining=workload.pipelining,
            message=message,
            bdat=workload.bdat,
        )
    cpu = _cpu(pids) - cpu0
    proxy_cpu = _cpu(list(proxy_pids)) - proxy_cpu0
    if r.errors or r.messages != workload.messages:
        raise SystemExit(
            f"{server} {workload.name}: {r.errors} errors, {r.messages} messages ({r.first_error})"
        )
    return {
        "rate": r.messages / r.seconds,
        "cpu_us": cpu / r.messages * 1e6,
        "gen_cpu_us": r.cpu / r.messages * 1e6,
        "peak_kib": _status_kib(pids, "VmHWM"),
        "growth_kib": _status_kib(pids, "VmHWM") - rss0,
        **({"proxy_cpu_us": proxy_cpu / r.messages * 1e6} if proxy_pids else {}),
    }


def run_server(
    server: str, workloads: list[Workload], base_src: str | None = None
) -> dict[str, dict[str, float]]:
    """Every workload against ``server``: one fresh process per serving mode."""
    out: dict[str, dict[str, float]] = {}
    ours = server.startswith("mailio")
    for mode in dict.fromkeys(w.mode for w in workloads):
        if mode != "discard" and not ours:
            continue  # ours only (see the module docstring)
        group = [w for w in workloads if w.mode == mode and (ours or not w.bdat)]
        if group:
            out.update(_run_mode(server, group, mode, base_src))
    return out


def _start_helper(command: list[str], what: str) -> tuple[subprocess.Popen[str], int]:
    """A helper process that prints ``listening on HOST:PORT``; it and its port."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the helper prints it or exits
    if not line.startswith("listening on "):
        _stop(proc)
        raise SystemExit(f"{what} did not start: {line!r}")
    return proc, int(line.rpartition(":")[2])


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


HAPROXY = os.environ.get("MAILIO_BENCH_HAPROXY", "haproxy")


def _start_haproxy(
    scratch: str, backend_port: int, send_proxy: bool
) -> tuple[subprocess.Popen[bytes], int]:
    """HAProxy (Debian's) on a free loopback port in front of ``backend_port``, one thread.

    One thread: it shares the two vCPUs with the server and the generator; a
    deployment runs it on a machine of its own. Its CPU is reported apart.
    """
    binary = shutil.which(HAPROXY)
    if binary is None:
        raise SystemExit("haproxy is not installed (apt-get install haproxy)")
    port = _free_port()
    config = Path(scratch) / "haproxy.cfg"
    option = " send-proxy-v2" if send_proxy else ""
    config.write_text(
        f"""\
global
    maxconn 4000
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
    server s1 127.0.0.1:{backend_port}{option}
"""
    )
    with open(Path(scratch) / "haproxy.log", "wb") as log:  # its notices; shown if it fails
        proc = subprocess.Popen(
            [binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=scratch
        )
    return proc, port


REDIS = os.environ.get("MAILIO_BENCH_REDIS", "redis-server")


def _redis_command(port: int, *command: str) -> bytes:
    """One inline command to the redis-server on ``port``; its raw reply (one read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(" ".join(command).encode() + b"\r\n")
        return s.recv(4096)


def _start_redis(scratch: str) -> tuple[subprocess.Popen[bytes], int]:
    """Debian's redis-server on a free loopback port, no persistence, answering PING."""
    binary = shutil.which(REDIS)
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", scratch]
    with open(Path(scratch) / "redis.log", "wb") as log:  # its notices; shown if it fails
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=scratch)
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError):
            if _redis_command(port, "PING").startswith(b"+PONG"):
                return proc, port
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            print((Path(scratch) / "redis.log").read_text(errors="replace"), file=sys.stderr)
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)  # polling the port, not guessing a start-up time


def _check_redis(port: int) -> None:
    """The limits really go through Redis: the warm-up's connections left their rate key."""
    if not _redis_command(port, "EXISTS", "mailio:rate:127.0.0.1").startswith(b":1"):
        raise SystemExit("the server did not count its connections in Redis")


def _check_mailauth(port: int) -> None:
    """SPF, DMARC and DKIM really decide: the plain check message refused, the signed accepted.

    ``check.example.org`` fails SPF from 127.0.0.1 and publishes ``p=reject``
    (``serve_dns.py``), so DMARC passes only through a verified DKIM signature.
    """
    assert MESSAGES is not None
    sender = "bench@check.example.org"
    plain = sessions.send_one(port, sender, (MESSAGES / "check-plain.eml").read_bytes())
    signed = sessions.send_one(port, sender, (MESSAGES / "check-signed.eml").read_bytes())
    if not plain.startswith(b"5") or not signed.startswith(b"250"):
        raise SystemExit(
            f"verification is not deciding: unsigned {plain!r} (want 5xx), signed {signed!r}"
        )


def _scrape_accepted(port: int) -> int:
    """``mailio_messages_total{outcome="accepted"}`` from the ``/metrics`` on ``port``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        response = b""
        while chunk := s.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or head.split()[1] != b"200":
        raise SystemExit(f"/metrics on {port} answered {head[:100]!r}")
    for line in body.decode().splitlines():
        if line.startswith('mailio_messages_total{outcome="accepted"} '):
            return round(float(line.rpartition(" ")[2]))
    raise SystemExit(f"/metrics on {port} has no mailio_messages_total for accepted messages")


def _check_metrics(port: int, workers: int, sent: int) -> None:
    """The endpoint counted what was measured: accepted messages over every worker == sent."""
    counted = sum(_scrape_accepted(port + i) for i in range(workers))
    if counted != sent:
        raise SystemExit(f"/metrics counted {counted} accepted messages, {sent} were sent")


def _run_mode(
    server: str, workloads: list[Workload], mode: str, base_src: str | None
) -> dict[str, dict[str, float]]:
    port = _free_port()
    env = None
    if server == "smtp-sink":
        env = _postfix_env()
    if server == "mailio-base":
        if not base_src:
            raise SystemExit("mailio-base needs --base-src DIR (an older checkout's src/)")
        env = {**os.environ, "PYTHONPATH": base_src}
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="mailio-bench-"))
        dns_port = 0
        if mode == "auth":
            assert MESSAGES is not None
            dns, dns_port = _start_helper(
                [sys.executable, str(HERE / "serve_dns.py"), "serve", str(MESSAGES)], "serve_dns"
            )
            stack.callback(_stop, dns)
        redis_port, helper_pids = 0, []
        if mode == "redis":
            redis, redis_port = _start_redis(scratch)
            stack.callback(_stop, redis)
            helper_pids = [redis.pid]
        # Worker i serves its metrics on metrics_port + i (workers.serve_worker).
        metrics_port = _free_port() if mode == "metrics" else 0
        command = _server_command(server, port, mode, scratch, dns_port, redis_port, metrics_port)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env, cwd=scratch)
        stack.callback(_stop, proc)
        try:
            _wait_listening(port, proc, greets=mode != "proxy")
        except SystemExit:
            if proc.returncode == UNSUPPORTED:
                print(f"# {server}: its src/ has no {mode} mode; skipped", flush=True)
                return {}
            raise
        client_port, proxy_pids = port, helper_pids
        if mode in PROXY_MODES:
            haproxy, client_port = _start_haproxy(scratch, port, send_proxy=mode == "proxy")
            stack.callback(_stop, haproxy)
            try:
                _wait_listening(client_port, haproxy)
            except SystemExit:
                print((Path(scratch) / "haproxy.log").read_text(errors="replace"), file=sys.stderr)
                raise
            proxy_pids = [haproxy.pid]
        time.sleep(0.2)  # let workers finish starting
        pids = _tree(proc.pid)
        warm = loadgen.run(client_port, sessions=2, messages=20, per_connection=10, size=1024)
        if warm.errors:
            raise SystemExit(f"{server} ({mode}) failed the warm-up: {warm.first_error}")
        if mode == "auth":
            _check_mailauth(client_port)
        if mode == "redis":
            _check_redis(redis_port)
        out = {w.name: measure(server, w, client_port, pids, proxy_pids) for w in workloads}
        if mode == "metrics":
            workers = int(server.partition("-w")[2] or "1")
            _check_metrics(
                metrics_port, workers, warm.messages + sum(w.messages for w in workloads)
            )
        return out
    raise AssertionError("unreachable")  # ExitStack does not swallow exceptions


def _headline(workload: str, m: dict[str, float]) -> float:
    """The one figure per round: RSS growth in MiB (BIG), KiB per connection (W4), or msg/s."""
    if workload == "BIG":
        return m["growth_kib"] / 1024
    if workload in LATENCY:
        return m["all_p99_ms"]
    return m.get("rate", m.get("kib_per_conn", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", default="W1,W2,W2P,W3,W4")
    parser.add_argument("--servers", default="mailio,aiosmtpd", help="the last is the baseline")
    parser.add_argument(
        "--base-src",
        metavar="DIR",
        help="src/ of an older checkout, run as server mailio-base (before/after in one run)",
    )
    parser.add_argument(
        "--generator",
        choices=["loadgen", "smtp-source"],
        default="loadgen",
        help="who sends (pipelined workloads and those sending a given message always use "
        "loadgen); smtp-source: Postfix's, see bench/get_postfix.sh",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every workload's message count (at least 1 each): 0.1 for a smoke test",
    )
    args = parser.parse_args()
    global GENERATOR, MESSAGES
    GENERATOR = args.generator
    unknown = [w for w in args.workloads.split(",") if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}: {', '.join(WORKLOADS)}")
    workloads = [_scaled(WORKLOADS[w], args.scale) for w in args.workloads.split(",")]
    servers = args.servers.split(",")
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        s: {w.name: [] for w in workloads} for s in servers
    }
    print(
        f"# {datetime.datetime.now().isoformat(timespec='seconds')} {platform.node()} "
        f"{platform.processor() or platform.machine()} cpus={os.cpu_count()} "
        f"python {platform.python_version()} load={os.getloadavg()[0]:.2f} "
        f"generator={GENERATOR}",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        if any(w.message or w.mode == "auth" for w in workloads):
            MESSAGES = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailio-msg-")))
            # One key and one set of pre-signed messages for the whole run.
            subprocess.run(
                [sys.executable, str(HERE / "serve_dns.py"), "make", str(MESSAGES)],
                check=True,
                timeout=300,
            )
        _rounds(args.rounds, servers, workloads, results, args.base_src)
    _report(workloads, servers, results)


def _scaled(workload: Workload, scale: float) -> Workload:
    if scale == 1.0 or workload.name == "W4":
        return workload
    return replace(workload, messages=max(1, round(workload.messages * scale)))


def _rounds(
    rounds: int,
    servers: list[str],
    workloads: list[Workload],
    results: dict[str, dict[str, list[dict[str, float]]]],
    base_src: str | None,
) -> None:
    for rnd in range(rounds):
        for server in servers:
            out = run_server(server, workloads, base_src)
            for name, m in out.items():
                results[server].setdefault(name, []).append(m)
            summary = " ".join(f"{n}={_headline(n, m):.1f}" for n, m in out.items())
            print(f"round {rnd + 1} {server:10} {summary}", flush=True)


def _report(
    workloads: list[Workload],
    servers: list[str],
    results: dict[str, dict[str, list[dict[str, float]]]],
) -> None:
    baseline = servers[-1]
    print()
    print(
        "| workload | server | msg/s (median) | ratio | server CPU µs/msg | peak RSS MiB | "
        "generator CPU µs/msg |"
    )
    print("|---|---|---|---|---|---|---|")
    for w in workloads:
        if w.name in LATENCY:
            continue  # their own table, below
        for server in servers:
            runs = results[server][w.name]
            if not runs:
                continue  # a workload this server does not run
            if w.name == "BIG":
                growth = statistics.median(r["growth_kib"] for r in runs) / 1024
                print(
                    f"| {w.name} {w.title} | {server} | RSS +{growth:.1f} MiB | | "
                    f"{statistics.median(r['cpu_us'] for r in runs):,.0f} | "
                    f"{statistics.median(r['peak_kib'] for r in runs) / 1024:.1f} | "
                    f"{statistics.median(r['gen_cpu_us'] for r in runs):,.0f} |"
                )
                continue
            if w.name == "W4":
                kib = statistics.median(r["kib_per_conn"] for r in runs)
                base = statistics.median(r["kib_per_conn"] for r in results[baseline][w.name])
                print(
                    f"| {w.name} {w.title} | {server} | {kib:.1f} KiB/conn | "
                    f"{kib / base:.2f} | | "
                    f"{statistics.median(r['rss_kib'] for r in runs) / 1024:.1f} | |"
                )
                continue
            rate = statistics.median(r["rate"] for r in runs)
            base_runs = results[baseline].get(w.name, [])
            ratio = (
                f"{rate / statistics.median(r['rate'] for r in base_runs):.2f}×"
                if base_runs
                else "—"
            )
            print(
                f"| {w.name} {w.title} | {server} | {rate:,.0f} | {ratio} | "
                f"{statistics.median(r['cpu_us'] for r in runs):,.0f} | "
                f"{statistics.median(r['peak_kib'] for r in runs) / 1024:.1f} | "
                f"{statistics.median(r['gen_cpu_us'] for r in runs):,.0f} |"
            )
    print(
        f"\nratio = median msg/s ÷ {baseline}'s median in this run "
        "(W4: KiB per idle connection, lower is better)"
    )
    _report_proxy(workloads, servers, results)
    _report_latency(workloads, servers, results)


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _report_proxy(
    workloads: list[Workload],
    servers: list[str],
    results: dict[str, dict[str, list[dict[str, float]]]],
) -> None:
    for modes, helper in ((PROXY_MODES, "HAProxy"), (("redis",), "redis-server")):
        rows = [
            (w, s, results[s][w.name])
            for w in workloads
            if w.mode in modes
            for s in servers
            if results[s][w.name]
        ]
        if not rows:
            continue
        note = "one thread; " if helper == "HAProxy" else ""
        print(f"\n{helper}'s own CPU ({note}not in the server's figure above):\n")
        print(f"| workload | server | {helper} CPU µs/msg |")
        print("|---|---|---|")
        for w, server, runs in rows:
            print(f"| {w.name} {w.title} | {server} | {_median(runs, 'proxy_cpu_us'):,.0f} |")


def _report_latency(
    workloads: list[Workload],
    servers: list[str],
    results: dict[str, dict[str, list[dict[str, float]]]],
) -> None:
    rows = [
        (w, s, results[s][w.name])
        for w in workloads
        if w.name in LATENCY
        for s in servers
        if results[s][w.name]
    ]
    if not rows:
        return
    print(
        "\nNOOP round trips on one session while another sends a 10 MiB DKIM-signed message "
        "(medians over the rounds; ms). verify: NOOPs overlapping the wait between the big "
        "message's final dot and its reply; transfer: the rest.\n"
    )
    print(
        "| workload | server | final dot → reply | verify NOOPs | p50 | p99 | max | "
        "transfer NOOPs | p50 | p99 | max |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w, server, runs in rows:
        cells = [f"{_median(runs, 'final_dot_ms'):,.1f}"]
        for phase in ("verify", "transfer"):
            cells.append(f"{_median(runs, phase + '_n'):,.0f}")
            cells += [f"{_median(runs, f'{phase}_{q}_ms'):,.2f}" for q in ("p50", "p99", "max")]
        print(f"| {w.name} | {server} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
