"""mail-io's chain habits: ordering against built-in plugins, ``res.get("command")``.

- In mail-io ``rcpt/dnsbl`` is always there, so its README orders a handler
  ``before: 'dnsbl'``. Here a built-in plugin may be switched off: ordering
  against a *known* plugin binds when it is registered and is ignored while
  it is not; a name no plugin has stays a :class:`ChainError`.
- ``res.get("queue")`` is the map handler name → value of that command.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailio_trio import Config, Handler, Request, Response, Server
from mailio_trio.chain import ChainError


async def nothing(req: Request, res: Response) -> None:
    res.accept()


def names(server: Server, command: str) -> list[str]:
    return [h.name for h in server.chain.handlers(command)]


def mine(**order: Any) -> Handler:
    return Handler(command="rcpt", name="my-rcpt-handler", func=nothing, **order)


def test_ordering_before_a_known_plugin_that_is_off_is_ignored() -> None:
    server = Server(Config(hostname="mx.test"))  # rcpt/dnsbl not configured
    server.add_handler(mine(before="dnsbl"))  # a single string, as mail-io writes it
    assert "my-rcpt-handler" in names(server, "rcpt")
    assert "dnsbl" not in names(server, "rcpt")


def test_ordering_before_a_known_plugin_that_is_on_binds() -> None:
    server = Server(Config(hostname="mx.test", plugins={"rcpt/dnsbl": {"lists": ["bl.test"]}}))
    server.add_handler(mine(before="dnsbl"))
    order = names(server, "rcpt")
    assert order.index("my-rcpt-handler") < order.index("dnsbl")
    assert order[0] == "core"


def test_decorator_and_session_handlers_take_a_known_absent_name_too() -> None:
    server = Server(Config(hostname="mx.test"))

    @server.handler("rcpt", after="dnsbl")
    async def later(req: Request, res: Response) -> None:
        res.accept()

    assert server.chain.handlers("rcpt")[-1].name == "later"


def test_a_name_no_plugin_has_is_still_an_error() -> None:
    server = Server(Config(hostname="mx.test"))
    with pytest.raises(ChainError, match=r"'rcpt/my-rcpt-handler'.*rcpt/'dnsbI'"):
        server.add_handler(mine(before="dnsbI"))  # a typo is not a plugin
    with pytest.raises(ChainError, match="not registered"):
        server.add_handler(Handler(command="mail", name="x", func=nothing, before="dnsbl"))


def test_ordering_before_core_names_the_offender() -> None:
    server = Server(Config(hostname="mx.test"))  # rcpt/limits is on by default
    with pytest.raises(ChainError, match=r"'rcpt/my-rcpt-handler' asks to run before rcpt/core"):
        server.add_handler(mine(before=("core",)))
