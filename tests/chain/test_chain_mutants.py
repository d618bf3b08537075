"""chain.py's edges, as mutation testing (nox -s mutants) asked for them.

The replies a handler's decision gives the client, the codes each decision
takes, and what a plugin's configuration of ``true`` / ``false`` means.
"""

from __future__ import annotations

import functools

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
from mailio_trio.protocol import Command


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
