"""A real SMTP server for tests: in-process, on loopback, keeping what it accepts.

Like ``trio.testing``, this package is public: a thin face over private modules
(``_capture``, ``_raw``, ``_threaded``, ``_faults``) plus the loopback DNS server
``mailio_trio.testing.dns``. Applications use it (and the pytest
fixtures over it, ``mailio_trio.pytest_plugin``) to test the mail they send:
over a real socket, with the real protocol, and with faults injected on cue
(:meth:`RunningServer.fail_next` and friends) to drive their retry paths.

Example::

    async def test_signup_mail(nursery):
        running = await start_capturing_server(nursery)
        await send_signup_mail(host=running.host, port=running.port)
        [captured] = await running.wait_for(1)
        assert captured.message["Subject"] == "Welcome"

Synchronous code gets the same server on its own thread with
:func:`serve_in_thread`.
"""

from __future__ import annotations

from mailio_trio.testing._capture import (
    CapturedMessage,
    CaptureOptions,
    Outbox,
    RunningServer,
    TLSMaterial,
    start_capturing_server,
)
from mailio_trio.testing._chaos import ChaosSettings, ChaosTrigger, RateLimit
from mailio_trio.testing._content import Attachment
from mailio_trio.testing._faults import Fault, FaultKind, Faults, Stage
from mailio_trio.testing._raw import RawConnection, open_raw_connection
from mailio_trio.testing._threaded import ThreadedServer, serve_in_thread

__all__ = [
    "Attachment",
    "CaptureOptions",
    "CapturedMessage",
    "ChaosSettings",
    "ChaosTrigger",
    "Fault",
    "FaultKind",
    "Faults",
    "Outbox",
    "RateLimit",
    "RawConnection",
    "RunningServer",
    "Stage",
    "TLSMaterial",
    "ThreadedServer",
    "open_raw_connection",
    "serve_in_thread",
    "start_capturing_server",
]

# Documented and shown (repr, tracebacks, Sphinx) under the public path, as trio does.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("mailio_trio.testing."):
        _obj.__module__ = __name__
