"""The ``queue`` event: a received message, ready for handlers that keep it (``queue/core``).

``req.message`` is the :class:`~mailio_trio.message.Message` (spool path,
envelope, lazily parsed ``email``). Handlers after this one store, scan or
relay it; a handler that keeps the message must make it durable before it
accepts, since ``250`` promises the message is not lost. With no other
handler the message is acknowledged and dropped (an embedded sink).
"""

from __future__ import annotations

from mailio_trio.chain import CORE, Chain, Handler, Request, Response, never_waits


@never_waits
async def queue(req: Request, res: Response) -> None:
    assert req.message is not None
    res.accept(250, f"OK: queued as {req.message.id}", "2.0.0")


def register(chain: Chain) -> None:
    chain.add(Handler(command="queue", name=CORE, func=queue))
