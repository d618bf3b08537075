"""chain.py's edges, as mutation testing (nox -s mutants) asked for them.

The replies a handler's decision gives the client, the codes each decision
takes, and what a plugin's configuration of ``true`` / ``false`` means.
"""

from __future__ import annotations

import functools
from pathlib import Path

import attrs
import pytest

from mailio_trio.chain import (
    Chain,
    ChainError,
    Handler,
    Request,
    Response,
    handler_decorator,
    order_handlers,
)
from mailio_trio.message import Envelope, Message
from mailio_trio.protocol import Address, Command


async def nothing(req: Request, res: Response) -> None:
    res.accept()


def _response(command: str = "rcpt") -> Response:
    # accept/reject/end decide without touching the session.
    return Response(None, Handler(command=command, name="t", func=nothing))  # type: ignore[arg-type]  # never used


def test_accept_takes_2xx_and_3xx_only() -> None:
    for code in (200, 250, 354, 399):
        res = _response()
        res.accept(code)
        assert res.reply is not None
        assert res.reply.code == code
    for code in (199, 400):
        with pytest.raises(ValueError, match=rf"^accept takes a 2xx or 3xx code, not {code}$"):
            _response().accept(code)


def test_reject_takes_4xx_and_5xx_only() -> None:
    for code in (400, 421, 599):
        res = _response()
        res.reject(code, "no")
        assert res.reply is not None
        assert res.reply.code == code
    for code in (399, 600):
        with pytest.raises(ValueError, match=rf"^reject takes a 4xx or 5xx code, not {code}$"):
            _response().reject(code, "no")


def test_default_reply_texts() -> None:
    res = _response()
    res.accept(250)
    assert (res.reply and (res.reply.code, res.reply.enhanced, res.reply.text)) == (
        250,
        "2.0.0",
        "OK",
    )
    res = _response()
    res.end(421)
    assert res.reply is not None
    assert (res.reply.enhanced, res.reply.text) == ("4.0.0", "Closing connection")
    res = _response()
    res.end(421, enhanced="4.7.0")
    assert res.reply is not None
    assert res.reply.enhanced == "4.7.0"
    # end() without a code closes without a reply of its own.
    res = _response()
    res.end()
    assert (res.decision, res.reply) == ("end", None)


def test_a_plugin_configured_true_gets_its_defaults_false_is_an_error() -> None:
    # [plugins] "rcpt/x" = true: enabled with defaults. false disables the
    # handler before it ever runs, so a handler seeing it is misconfigured.
    # A class of this test's own: config_as caches by (table, class).
    @attrs.frozen
    class Settings:
        timeout: float = 1.0

    for enabled in (True, None):
        req = Request(Command(None, "rcpt", ""), None, config=enabled)  # type: ignore[arg-type]
        assert req.config_as(Settings) == Settings()
    false = Request(Command(None, "rcpt", ""), None, config=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^configuration of rcpt is bool, expected Settings"):
        false.config_as(Settings)


def test_the_decorator_names_a_nameless_callable_handler() -> None:
    added: list[Handler] = []
    register = handler_decorator(added.append, "rcpt", None, ["b"], "a")
    register(functools.partial(nothing))  # a callable without __name__
    register(nothing)
    assert [(h.name, h.before, h.after) for h in added] == [
        ("handler", ("b",), ("a",)),
        ("nothing", ("b",), ("a",)),
    ]


def test_disabled_and_plans_of_unknown_commands() -> None:
    chain = Chain(plugins={"rcpt/x": False})
    chain.add(Handler(command="rcpt", name="x", func=nothing))
    assert chain.disabled("rcpt") == frozenset({"x"})
    assert chain.disabled("mail") == frozenset()
    assert chain.plan("mail") == ()
    assert chain.handlers("rcpt") == ()


def test_an_auth_handler_s_250_becomes_235() -> None:
    # mail-io's handlers accept AUTH with "250 OK"; the client needs 235 2.7.0.
    res = _response("auth")
    res.accept(250, "Welcome")
    assert res.reply is not None
    assert (res.reply.code, res.reply.enhanced, res.reply.text) == (235, "2.7.0", "Welcome")
    res = _response("auth")
    res.accept(200, "Fine")  # any 2xx
    assert res.reply is not None
    assert res.reply.code == 235
    for code, text, enhanced in ((235, "In", "2.0.0"), (334, "VXNlcm5hbWU6", None)):
        res = _response("auth")
        res.accept(code, text)
        assert res.reply is not None
        assert (res.reply.code, res.reply.text) == (code, text)
        assert res.reply.enhanced == enhanced
    res = _response("rcpt")
    res.accept(250, "Fine")
    assert res.reply is not None
    assert (res.reply.code, res.reply.enhanced) == (250, "2.0.0")


def test_order_errors_name_the_handlers() -> None:
    def h(name: str, after: tuple[str, ...] = ()) -> Handler:
        return Handler(command="rcpt", name=name, func=nothing, after=after)

    with pytest.raises(ChainError, match=r"^handler 'rcpt/a' is registered twice$"):
        order_handlers([h("core"), h("a"), h("b"), h("a")])
    with pytest.raises(
        ChainError,
        match=r"^handler 'rcpt/a' is ordered against rcpt/'zz', which is not registered$",
    ):
        order_handlers([h("a", after=("zz",))])
    with pytest.raises(
        ChainError, match=r"^rcpt handlers \['a', 'b'\] order each other in a cycle$"
    ):
        order_handlers([h("core"), h("c"), h("a", after=("b",)), h("b", after=("a",))])
    with pytest.raises(ChainError, match=r"^'rcpt/x' asks to run before rcpt/core$"):
        order_handlers([h("core", after=("x",)), h("x")])


# --- the transaction bookkeeping of a Request (on_accept, after_reply, commit, rollback)

BOB = Address("Bob", "Example.COM")


def queue_request() -> Request:
    """A queue command's request for a message to alice and Bob (no session: no I/O)."""
    envelope = Envelope(recipients=[Address("alice", "example.com"), BOB])
    message = Message(id="m.0", path=Path("/nonexistent"), envelope=envelope, size=0)
    return Request(Command(None, "queue", ""), None, message=message)  # type: ignore[arg-type]


def test_every_registered_effect_and_after_reply_step_is_kept_in_order() -> None:
    req = Request(Command(None, "data", ""), None)  # type: ignore[arg-type]  # no I/O here
    ran: list[str] = []
    req.on_accept(lambda: ran.append("first"))
    req.on_accept(lambda: ran.append("second"))  # the second goes through append()
    for effect in req.take_effects():
        effect()
    assert ran == ["first", "second"]

    async def step() -> None:
        return None

    req.after_reply(step)
    req.after_reply(step)
    assert list(req.take_after_reply()) == [step, step]


@pytest.mark.parametrize("code", [400, 599])
def test_reject_recipient_takes_both_ends_of_4xx_and_5xx(code: int) -> None:

    req = queue_request()
    req.reject_recipient(BOB, code, "no")
    assert req.refused_recipients[BOB.key()].code == code


def test_reject_recipient_outside_queue_says_why() -> None:
    req = Request(Command(None, "rcpt", ""), None)  # type: ignore[arg-type]

    with pytest.raises(
        ValueError, match=r"\Areject_recipient is for queue handlers, with a message\Z"
    ):
        req.reject_recipient(Address("bob", "example.com"), 550, "no")


def _session_stub() -> object:
    """What commit and roll_back read of a session: its stream, limits and log."""
    import logging
    import types

    import trio.testing

    from mailio_trio.config import Config

    return types.SimpleNamespace(
        stream=trio.testing.MemorySendStream(),  # not a socket: never "peer closed"
        config=Config(),
        log=logging.getLogger("tests.chain_mutants"),
    )


async def test_after_a_commit_nothing_is_left_to_commit_or_roll_back() -> None:

    from mailio_trio.protocol import Reply

    req = queue_request()
    req.session = _session_stub()  # type: ignore[assignment]
    ran: list[str] = []

    async def commit() -> None:
        ran.append("commit")

    async def undo() -> None:
        ran.append("undo")

    req.on_rollback(undo)
    req.on_commit(commit)
    ok = Reply(250, "OK", "2.0.0")
    assert await req.commit(ok) is ok
    assert not req.prepared  # "" instead of None would still count as prepared
    await req.roll_back()  # committed: the rollback step must not run now
    assert await req.commit(ok) is ok  # nothing to commit twice
    assert ran == ["commit"]


async def test_refusals_without_owned_steps_commit_everything() -> None:
    # _drop_refused runs only when a step belongs to some recipients and some were refused.

    from mailio_trio.protocol import Reply

    req = queue_request()
    req.session = _session_stub()  # type: ignore[assignment]
    ran: list[str] = []

    async def commit() -> None:
        ran.append("commit")

    req.on_commit(commit)
    req.reject_recipient(BOB, 550, "no")
    ok = Reply(250, "OK", "2.0.0")
    assert await req.commit(ok) is ok
    assert ran == ["commit"]


async def test_a_refused_recipients_own_steps_are_undone_and_the_others_kept() -> None:

    from mailio_trio.protocol import Reply

    alice = Address("alice", "example.com")
    req = queue_request()
    req.session = _session_stub()  # type: ignore[assignment]
    ran: list[str] = []

    def step(what: str) -> object:
        async def run() -> None:
            ran.append(what)

        return run

    undo_bob, undo_alice, undo_all = step("undo bob"), step("undo alice"), step("undo all")
    req.on_rollback(undo_bob, recipients=[BOB])  # type: ignore[arg-type]
    req.on_rollback(undo_alice, recipients=[alice])  # type: ignore[arg-type]
    req.on_rollback(undo_all)  # type: ignore[arg-type]
    req.on_commit(step("keep bob"), recipients=[BOB])  # type: ignore[arg-type]
    req.on_commit(step("keep alice"), recipients=[alice])  # type: ignore[arg-type]
    req.reject_recipient(BOB, 550, "no")
    ok = Reply(250, "OK", "2.0.0")
    assert await req.commit(ok) is ok
    # Bob's copy is undone before the commit; Alice's is committed, her undo kept until then.
    assert ran == ["undo bob", "keep alice"]
    await req.roll_back()
    assert ran == ["undo bob", "keep alice"]  # committed: nothing of the rest runs


async def test_a_failed_commit_undoes_the_steps_left_after_the_refused_ones() -> None:

    from mailio_trio.protocol import Reply

    alice = Address("alice", "example.com")
    req = queue_request()
    req.session = _session_stub()  # type: ignore[assignment]
    ran: list[str] = []

    async def undo_bob() -> None:
        ran.append("undo bob")

    async def undo_alice() -> None:
        ran.append("undo alice")

    async def fail() -> None:
        raise OSError("disk full")

    req.on_rollback(undo_bob, recipients=[BOB])
    req.on_rollback(undo_alice, recipients=[alice])
    req.on_commit(fail, recipients=[alice])
    req.reject_recipient(BOB, 550, "no")
    reply = await req.commit(Reply(250, "OK", "2.0.0"))
    assert (reply.code, reply.enhanced) == (451, "4.3.0")
    # Bob's step once (dropped as refused), Alice's once (the failed commit's rollback).
    assert ran == ["undo bob", "undo alice"]
