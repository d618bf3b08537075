"""The byte side on its own: a ``Connection`` needs no session, and a session has one.

Over ``trio.testing`` memory streams: these pin down what the session relies
on the connection for (lines, a DATA body and what follows it, the idle
scope), which a socket test can only see through a whole session.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mailio_trio import Config, Server
from mailio_trio.protocol import DataReader, Reply
from mailio_trio.server._connection import Connection
from mailio_trio.server._session import ClientInfo, Session, command_line_limit


def make_connection() -> tuple[Connection, trio.abc.Stream]:
    context = Server(Config(hostname="mx.test"))._context
    client, server_end = trio.testing.memory_stream_pair()
    return Connection(context, server_end, line_limit=command_line_limit(context.config)), client


def test_a_session_has_a_connection_and_is_none() -> None:
    context = Server(Config(hostname="mx.test"))._context
    _, server_end = trio.testing.memory_stream_pair()
    session = Session.for_stream(context, server_end, ClientInfo(address="127.0.0.1", port=1))
    assert Connection not in Session.__mro__
    assert session.stream is session.connection.stream is server_end
    assert session.id == session.connection.id
    assert session.queue_reply == session.connection.queue_reply


async def test_lines_and_a_data_body_then_the_command_after_it() -> None:
    connection, client = make_connection()
    chunks: list[bytes] = []
    with trio.fail_after(5):
        # Pipelined: the command, its body and the next command in one send.
        await client.send_all(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        with connection.new_idle_scope():
            assert await connection.next_command_line() == b"DATA"
            reader = DataReader(max_size=0)
            await connection.receive_data(reader, chunks.append, 10)
            assert reader.done
            assert await connection.next_command_line() == b"QUIT"
            connection.queue_reply(Reply(221, "Bye", "2.0.0"))
            await connection.flush()
        connection.drop_idle_scope()
        assert await client.receive_some() == b"221 2.0.0 Bye\r\n"
    assert b"".join(chunks) == b"Subject: x\r\n\r\nhi\r\n"
    assert not connection.data_timed_out


async def test_a_data_body_past_its_seconds_sets_data_timed_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    connection, client = make_connection()
    with trio.fail_after(60):
        await client.send_all(b"DATA\r\nSubject: slow\r\n")
        with connection.new_idle_scope():
            assert await connection.next_command_line() == b"DATA"
            await connection.receive_data(DataReader(max_size=0), lambda _: None, 5)
            pytest.fail("the body never ended, the timeout must cancel the read")
        connection.drop_idle_scope()
    assert connection.data_timed_out


async def test_reads_on_the_idle_scope_need_the_command_loop() -> None:
    connection, _ = make_connection()
    with pytest.raises(RuntimeError):
        await connection.next_command_line()
    with pytest.raises(RuntimeError):
        await connection.receive_data(DataReader(max_size=0), lambda _: None, 5)
