"""The client and the test harness read every reply the same way.

``SMTPClient.read_reply`` and ``RawConnection.read_reply`` both wrap
:class:`~mailio_trio.protocol.ReplyReader`; this drives the two I/O shells with
the same bytes, cut into the same chunks, over memory streams (a socket could
merge the chunks; here each one is received on its own).
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from reply_strategies import chunked, replies

from mailio_trio.client import SMTPClient, SMTPConnectionLost, SMTPProtocolError
from mailio_trio.protocol import Reply, ServerProtocolError
from mailio_trio.testing import RawConnection

Outcome = list[Reply | tuple[str, str]]


async def _client_outcome(stream: trio.abc.Stream) -> Outcome:
    client = SMTPClient(stream, "peer.test")
    out: Outcome = []
    while True:
        try:
            out.append(await client.read_reply())
        except SMTPProtocolError as exc:
            out.append(("protocol", exc.text.removeprefix("peer.test ")))
            return out
        except SMTPConnectionLost:
            out.append(("eof", ""))
            return out


async def _raw_outcome(stream: trio.abc.Stream) -> Outcome:
    raw = RawConnection(stream)
    out: Outcome = []
    while True:
        try:
            out.append(await raw.read_reply())
        except ServerProtocolError as exc:
            out.append(("protocol", str(exc)))
            return out
        except EOFError:
            out.append(("eof", ""))
            return out


def outcome(chunks: list[bytes], reader: str) -> Outcome:
    """What one reader makes of ``chunks``, each received separately, then EOF."""

    async def main() -> Outcome:
        server, ours = trio.testing.memory_stream_pair()
        result: Outcome = []

        async def read() -> None:
            read_with = _client_outcome if reader == "client" else _raw_outcome
            result.extend(await read_with(ours))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                for chunk in chunks:
                    # Let the reader take this chunk before the next one arrives.
                    await trio.testing.wait_all_tasks_blocked()
                    await server.send_all(chunk)
                await trio.testing.wait_all_tasks_blocked()
                await server.send_stream.aclose()
        return result

    return trio.run(main)


@given(st.lists(replies(), min_size=1, max_size=3), st.lists(st.integers(0, 600), max_size=8))
def test_client_and_harness_agree_on_replies(batch: list[Reply], cuts: list[int]) -> None:
    chunks = chunked(b"".join(reply.to_bytes() for reply in batch), cuts)
    expected: Outcome = [*batch, ("eof", "")]
    assert outcome(chunks, "client") == expected
    assert outcome(chunks, "raw") == expected


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=5))
def test_client_and_harness_agree_on_any_bytes(data: bytes, cuts: list[int]) -> None:
    chunks = chunked(data, cuts)
    assert outcome(chunks, "client") == outcome(chunks, "raw") == outcome([data], "raw")
