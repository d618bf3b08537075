"""The handler chain: ordering, configuration, and what a faulty handler costs (one reply)."""

from __future__ import annotations

import logging

import attrs
import pytest
import trio

from mailio_trio import Config, Handler, Limits, Request, Response, Server, Session
from mailio_trio.chain import Chain, ChainError, HandlerMisuse, order_handlers
from mailio_trio.protocol import Command
from mailio_trio.protocol.catalogue import INTERNAL_ERROR
from mailio_trio.testing import RunningServer, start_capturing_server

STATUS_451 = (INTERNAL_ERROR.code, INTERNAL_ERROR.enhanced)


async def nothing(req: Request, res: Response) -> None:
    res.accept()


def names(handlers: list[Handler]) -> list[str]:
    return [h.name for h in handlers]


def h(name: str, *, before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> Handler:
    return Handler(command="rcpt", name=name, func=nothing, before=before, after=after)


def test_core_first_then_registration_order() -> None:
    assert names(order_handlers([h("a"), h("core"), h("b")])) == ["core", "a", "b"]


def test_before_and_after_reorder() -> None:
    ordered = order_handlers([h("core"), h("a", after=("c",)), h("b"), h("c", before=("b",))])
    assert names(ordered) == ["core", "c", "a", "b"]


def test_cycle_is_an_error_naming_the_handlers() -> None:
    with pytest.raises(ChainError, match=r"cycle"):
        order_handlers([h("a", before=("b",)), h("b", before=("a",))])


def test_unknown_name_is_an_error_at_registration() -> None:
    chain = Chain()
    chain.add(h("core"))
    with pytest.raises(ChainError, match=r"rcpt/dnsbl.*not registered|'dnsbl'"):
        chain.add(h("mine", before=("dnsbl",)))
    assert names(list(chain.handlers("rcpt"))) == ["core"]


def test_ordering_against_core_is_refused() -> None:
    with pytest.raises(ChainError, match="before rcpt/core"):
        order_handlers([h("core"), h("a", before=("core",))])


def test_duplicate_name_is_an_error() -> None:
    with pytest.raises(ChainError, match="twice"):
        order_handlers([h("a"), h("a")])


def test_disabled_handler_is_skipped_but_may_be_named() -> None:
    chain = Chain(plugins={"rcpt/dnsbl": False})
    chain.add(h("dnsbl"))
    chain.add(h("mine", before=("dnsbl",)))
    assert names(list(chain.handlers("rcpt"))) == ["mine"]


def test_disabling_a_core_plugin_makes_its_command_502() -> None:
    server = Server(Config(plugins={"vrfy/core": False}))
    assert server.chain.handlers("vrfy") == ()


async def _start(nursery: trio.Nursery, server: Server) -> RunningServer:
    return await start_capturing_server(nursery, server=server)


def _server(**limits: float) -> Server:
    return Server(Config(hostname="mx.test", limits=Limits(**limits)))  # type: ignore[arg-type]  # test-chosen limits


async def _rcpt_reply(
    running: RunningServer, address: str = "b@example.com"
) -> tuple[int, str | None]:
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.command("MAIL FROM:<a@example.org>")
        reply = await conn.command(f"RCPT TO:<{address}>")
        # The session survives whatever the handler did.
        assert (await conn.command("NOOP")).code == 250
    return reply.code, reply.enhanced


@pytest.mark.parametrize(
    ("fault", "logged"),
    [
        ("raises", "boom"),
        ("undecided", "returned without deciding"),
        ("twice", "decided twice"),
        ("twice, error swallowed", "decided twice"),
    ],
)
async def test_faulty_handler_answers_451_and_logs(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, fault: str, logged: str
) -> None:
    server = _server()

    @server.handler("rcpt")
    async def faulty(req: Request, res: Response) -> None:
        if fault == "raises":
            raise RuntimeError("boom")
        if fault.startswith("twice"):
            res.accept()
            try:
                res.reject(550, "no")
            except HandlerMisuse:
                if fault == "twice":
                    raise

    with caplog.at_level(logging.ERROR):
        assert await _rcpt_reply(await _start(nursery, server)) == STATUS_451
    assert any(
        "rcpt/faulty" in r.getMessage() and r.exc_info and logged in str(r.exc_info[1])
        for r in caplog.records
    )


async def test_slow_handler_times_out_with_451(nursery: trio.Nursery) -> None:
    server = _server(handler_timeout=0.05)

    @server.handler("rcpt")
    async def slow(req: Request, res: Response) -> None:
        await trio.sleep_forever()

    assert await _rcpt_reply(await _start(nursery, server)) == STATUS_451


async def test_last_accept_reply_wins_and_reject_stops_chain(nursery: trio.Nursery) -> None:
    server = _server()
    ran: list[str] = []

    @server.handler("rcpt")
    async def first(req: Request, res: Response) -> None:
        ran.append("first")
        assert req.to is not None
        if req.to.local_part == "nobody":
            res.reject(550, "No such user", "5.1.1")
        else:
            res.accept(251, "User not local; will forward", "2.1.5")

    @server.handler("rcpt")
    async def second(req: Request, res: Response) -> None:
        ran.append("second")
        res.accept()

    running = await _start(nursery, server)
    assert await _rcpt_reply(running, "nobody@example.com") == (550, "5.1.1")
    assert ran == ["first"]
    assert await _rcpt_reply(running) == (251, "2.1.5")
    assert ran == ["first", "first", "second"]


async def test_rejected_recipient_is_not_added(nursery: trio.Nursery) -> None:
    server = _server()

    @server.handler("rcpt")
    async def refuse_x(req: Request, res: Response) -> None:
        assert req.to is not None
        if req.to.local_part == "x":
            res.reject(550, "5.1.1 No such user")
        else:
            res.accept()

    running = await _start(nursery, server)
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.command("MAIL FROM:<a@example.org>")
        assert (await conn.command("RCPT TO:<x@example.com>")).code == 550
        assert (await conn.command("RCPT TO:<y@example.com>")).code == 250
        await conn.command("DATA")
        await conn.command(b"body\r\n.")
    [captured] = await running.outbox.wait_for(1)
    assert [str(r) for r in captured.envelope.recipients] == ["y@example.com"]


async def test_connect_handler_can_refuse_client(nursery: trio.Nursery) -> None:
    server = _server()

    @server.handler("connect")
    async def refuse(req: Request, res: Response) -> None:
        res.end(554, "5.7.1 Not from your address")

    running = await _start(nursery, server)
    async with running.open_raw() as conn:
        reply = await conn.read_reply()
        assert (reply.code, reply.enhanced, reply.text) == (554, "5.7.1", "Not from your address")
        assert await conn.at_eof()


async def test_write_read_set_get_and_per_session_handlers(nursery: trio.Nursery) -> None:
    """A mail-io style exchange: a per-session handler asks a question mid-command."""
    server = _server()
    sessions: list[Session] = []

    @server.on_session
    def per_session(session: Session) -> None:
        sessions.append(session)

        @session.handler("vrfy", "ask")
        async def ask(req: Request, res: Response) -> None:
            await res.write("334 Who is asking?")
            answer = await res.read()
            res.set(answer)
            res.accept(250, f"Hello {answer}")

    @server.handler("noop")
    async def recall(req: Request, res: Response) -> None:
        res.accept(250, f"remembered {res.get('vrfy/ask')}")

    running = await _start(nursery, server)
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.send(b"VRFY someone\r\n")
        assert (await conn.read_reply()).code == 334
        reply = await conn.command("me")
        assert (reply.code, reply.text) == (250, "Hello me")
        assert (await conn.command("NOOP")).text == "remembered me"
    assert sessions[0].accepted["vrfy"] == 250
    # The session's own handler runs after the server's, and only in that session.
    assert [h.key for h in sessions[0].handlers("vrfy")] == ["vrfy/core", "vrfy/ask"]
    assert [h.key for h in server.chain.handlers("vrfy")] == ["vrfy/core"]
    assert sessions[0].handlers("noop") == server.chain.handlers("noop")


async def test_end_from_handler_closes_after_reply(nursery: trio.Nursery) -> None:
    server = _server()

    @server.handler("mail")
    async def bye(req: Request, res: Response) -> None:
        res.end(421, "4.7.0 Go away")

    running = await _start(nursery, server)
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        reply = await conn.command("MAIL FROM:<a@example.org>")
        assert (reply.code, reply.enhanced) == (421, "4.7.0")
        assert await conn.at_eof()


async def test_queue_handler_failure_is_451_and_nothing_is_kept(nursery: trio.Nursery) -> None:
    server = _server()

    @server.handler("queue")
    async def store(req: Request, res: Response) -> None:
        raise OSError("disk full")

    running = await _start(nursery, server)
    async with running.open_raw() as conn:
        await conn.read_reply()
        await conn.command("EHLO c.test")
        await conn.command("MAIL FROM:<a@example.org>")
        await conn.command("RCPT TO:<b@example.com>")
        await conn.command("DATA")
        reply = await conn.command(b"x\r\n.")
    assert reply == INTERNAL_ERROR


async def test_plugin_config_reaches_handler(nursery: trio.Nursery) -> None:
    server = Server(Config(hostname="mx.test", plugins={"rcpt/limit": {"allowed": "example.com"}}))

    @server.handler("rcpt", "limit")
    async def limit(req: Request, res: Response) -> None:
        assert req.to is not None
        if req.to.domain == req.config["allowed"]:
            res.accept()
        else:
            res.reject(550, "5.7.1 Not here")

    running = await _start(nursery, server)
    assert await _rcpt_reply(running, "b@example.com") == (250, "2.1.5")
    assert await _rcpt_reply(running, "b@example.org") == (550, "5.7.1")


def test_if_present_ordering_binds_handlers_registered_later() -> None:
    chain = Chain()
    chain.add(h("core"))
    chain.add(
        Handler(command="rcpt", name="local", func=nothing, after=("relay",), if_present=True)
    )
    assert names(list(chain.handlers("rcpt"))) == ["core", "local"]  # relay absent: no error
    chain.add(h("relay"))
    assert names(list(chain.handlers("rcpt"))) == ["core", "relay", "local"]


def test_without_if_present_an_absent_name_is_still_an_error() -> None:
    chain = Chain()
    with pytest.raises(ChainError, match="not registered"):
        chain.add(Handler(command="rcpt", name="local", func=nothing, after=("relay",)))


@attrs.frozen(kw_only=True)
class _Settings:
    zones: tuple[str, ...] = ("a.example",)
    timeout: float = 1.0


def test_config_as_builds_each_table_once() -> None:
    # Plugins ask on every command; a table is built into its class once and shared.
    table = {"zones": ("b.example",), "timeout": 2.0}
    first = Request(Command(None, "rcpt", ""), None, config=table)  # type: ignore[arg-type]
    again = Request(Command(None, "rcpt", ""), None, config=table)  # type: ignore[arg-type]
    built = first.config_as(_Settings)
    assert built == _Settings(zones=("b.example",), timeout=2.0)
    assert again.config_as(_Settings) is built
    other = Request(Command(None, "rcpt", ""), None, config={"timeout": 3.0})  # type: ignore[arg-type]
    assert other.config_as(_Settings) == _Settings(timeout=3.0)
    assert Request(Command(None, "rcpt", ""), None).config_as(_Settings) == _Settings()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected _Settings or a table"):
        Request(Command(None, "rcpt", ""), None, config=7).config_as(_Settings)  # type: ignore[arg-type]
