"""Where a message's crypto runs: a worker thread when it is small, a worker process when large.

dkimpy canonicalises a body with regular expressions over the whole of it, and a
regular expression never releases the GIL: verifying a 10 MiB message in a thread
held it for ~160 ms here, stalling every other session's replies for as long.
Above ``process_above`` octets the same function runs in a worker process
instead, waited for from a worker thread, so the event loop's process stays free.
Small messages stay in threads: a process hop costs more than their whole check.

The workers are ``python -m mailio_trio.mailauth._offload`` children fed pickled
calls over a pipe, not a ``multiprocessing`` pool: ``fork`` in a process running
Trio and threads can deadlock the child, and ``spawn``/``forkserver`` re-import
the application's main module in every child — an embedding script without an
``if __name__ == "__main__":`` guard would start a second server there.
"""

from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PROCESS_ABOVE", "run_heavy"]

P = ParamSpec("P")
T = TypeVar("T")

PROCESS_ABOVE = 1024 * 1024
"""Octets above which a message's verification runs in a worker process (the default)."""

MAX_WORKERS = 2
_LENGTH = struct.Struct("!Q")


class WorkerGone(RuntimeError):
    """The worker process died (or was killed) during a call."""


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _send(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    (size,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    return pickle.loads(_read_exactly(stream, size))  # our own child, over a pipe


class _Worker:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailio_trio.mailauth._offload"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def call(self, func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        try:
            _send(stdin, (func, args, kwargs))
            ok, value = _receive(stdout)
        except (OSError, EOFError) as exc:
            raise WorkerGone(f"the verification worker exited ({self.process.poll()})") from exc
        if not ok:
            raise cast("BaseException", value)
        return cast("T", value)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


_idle: list[_Worker] = []
_started = 0
_lock = threading.Condition()


def _call_in_worker(func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    """Blocking: run one call in an idle worker, starting one if fewer than MAX_WORKERS run."""
    global _started
    with _lock:
        while not _idle and _started >= MAX_WORKERS:
            _lock.wait()
        if _idle:
            worker = _idle.pop()
        else:
            if _started == 0:
                atexit.register(_close_all)
            _started += 1
            worker = None
    if worker is None:
        try:
            worker = _Worker()
        except BaseException:
            with _lock:
                _started -= 1
                _lock.notify()
            raise
    try:
        result = worker.call(func, args, kwargs)
    except WorkerGone:
        worker.close()
        with _lock:
            _started -= 1
            _lock.notify()
        raise
    except BaseException:
        with _lock:
            _idle.append(worker)
            _lock.notify()
        raise
    with _lock:
        _idle.append(worker)
        _lock.notify()
    return result


def _close_all() -> None:
    with _lock:
        workers = list(_idle)
        _idle.clear()
    for worker in workers:
        worker.close()


async def run_heavy(
    size: int, process_above: int | None, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``func(*args)`` in a worker thread, or in a worker process when ``size > process_above``.

    ``func`` and its arguments must pickle when they may go to a process (module-level
    functions, attrs values, bytes, paths). ``process_above=None`` keeps it in a thread.
    """
    if process_above is None or size <= process_above:
        return await trio.to_thread.run_sync(lambda: func(*args, **kwargs))
    return await trio.to_thread.run_sync(_call_in_worker, func, args, kwargs)


def _serve() -> None:
    """The worker's loop: one pickled call in on stdin, its outcome out on stdout."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the replies
    while True:
        try:
            func, args, kwargs = _receive(stdin)
        except EOFError:
            return
        try:
            outcome: tuple[bool, object] = (True, func(*args, **kwargs))
        except Exception as exc:  # handed back to the caller, raised there
            outcome = (False, exc)
        _send(stdout, outcome)


if __name__ == "__main__":
    _serve()
