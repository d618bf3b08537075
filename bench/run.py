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

The machine is shared and noisy: compare only figures from the same run.

Usage::

    python bench/run.py --rounds 3
    python bench/run.py --rounds 2 --workloads W2,W2P --servers mailio,aiosmtpd
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import loadgen

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
    """How mailio_trio serves it: ``discard``, ``spool`` or ``maildir`` (the last two: ours only)"""


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
    ]
}


def _server_command(name: str, port: int, mode: str = "discard", scratch: str = "") -> list[str]:
    py = sys.executable
    extra = {"discard": [], "spool": ["--spool"], "maildir": ["--maildir", scratch]}[mode]
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
    if name.startswith("mailio"):
        # mailio-base is the same server, run with an older checkout's src/ first on
        # the path (--base-src, see _run_mode): before/after in one run.
        workers = name.partition("-w")[2] or "1"
        return [py, str(HERE / "serve_mailio.py"), str(port), workers, *extra]
    raise SystemExit(
        f"unknown server {name!r}: mailio, mailio-wN, mailio-base, probe, smtp-sink, aiosmtpd"
    )


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


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
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


def measure(server: str, workload: Workload, port: int, pids: list[int]) -> dict[str, float]:
    if workload.name == "W4":
        return _idle_sessions(port, workload.sessions, pids)
    rss0 = _status_kib(pids, "VmRSS")
    _reset_peak(pids)
    cpu0 = _cpu(pids)
    if GENERATOR == "smtp-source" and not workload.pipelining:
        r = _smtp_source(port, workload)
    else:
        r = loadgen.run(
            port,
            sessions=workload.sessions,
            messages=workload.messages,
            per_connection=workload.per_connection,
            size=workload.size,
            pipelining=workload.pipelining,
        )
    cpu = _cpu(pids) - cpu0
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
    }


def run_server(
    server: str, workloads: list[Workload], base_src: str | None = None
) -> dict[str, dict[str, float]]:
    """Every workload against ``server``: one fresh process per serving mode."""
    out: dict[str, dict[str, float]] = {}
    for mode in dict.fromkeys(w.mode for w in workloads):
        if mode != "discard" and not server.startswith("mailio"):
            continue  # ours only (see the module docstring)
        out.update(_run_mode(server, [w for w in workloads if w.mode == mode], mode, base_src))
    return out


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
    with tempfile.TemporaryDirectory(prefix="mailio-bench-") as scratch:
        command = _server_command(server, port, mode, scratch)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env, cwd=scratch)
        try:
            _wait_listening(port, proc)
            time.sleep(0.2)  # let workers finish starting
            pids = _tree(proc.pid)
            warm = loadgen.run(port, sessions=2, messages=20, per_connection=10, size=1024)
            if warm.errors:
                raise SystemExit(f"{server} ({mode}) failed the warm-up: {warm.first_error}")
            return {w.name: measure(server, w, port, pids) for w in workloads}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _headline(workload: str, m: dict[str, float]) -> float:
    """The one figure per round: RSS growth in MiB (BIG), KiB per connection (W4), or msg/s."""
    if workload == "BIG":
        return m["growth_kib"] / 1024
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
        help="who sends (pipelined workloads always use loadgen); smtp-source: Postfix's, "
        "see bench/get_postfix.sh",
    )
    args = parser.parse_args()
    global GENERATOR
    GENERATOR = args.generator
    workloads = [WORKLOADS[w] for w in args.workloads.split(",")]
    servers = args.servers.split(",")
    baseline = servers[-1]
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
    for rnd in range(args.rounds):
        for server in servers:
            out = run_server(server, workloads, args.base_src)
            for name, m in out.items():
                results[server].setdefault(name, []).append(m)
            summary = " ".join(f"{n}={_headline(n, m):.1f}" for n, m in out.items())
            print(f"round {rnd + 1} {server:10} {summary}", flush=True)
    print()
    print(
        "| workload | server | msg/s (median) | ratio | server CPU µs/msg | peak RSS MiB | "
        "generator CPU µs/msg |"
    )
    print("|---|---|---|---|---|---|---|")
    for w in workloads:
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
            base_runs = results[baseline][w.name]
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


if __name__ == "__main__":
    main()
