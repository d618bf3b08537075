"""``[plugins]`` tables: unknown keys and settings are one line with a hint, at start."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from mailio_trio import Config, Server
from mailio_trio.config import ConfigError, MaildirConfig
from mailio_trio.plugins import builtin_keys, check_plugins

if TYPE_CHECKING:
    from mailio_trio.chain import Request, Response


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        ({"rcpt/dnsbl": {"blacklist": "zen.example"}}, "plugins.rcpt/dnsbl.blacklist: "),
        ({"rcpt/dnsbl": {"blacklist": "zen.example"}}, "did you mean lists?"),
        ({"rcpt/dnsbl": {"resolver": "192.0.2.1"}}, "did you mean [dns] nameservers?"),
        ({"queue/spamd": {"baseScore": 5}}, "did you mean reject_above?"),
        ({"queue/spamd": {"timeuot": 5}}, "did you mean timeout?"),
        ({"rcpt/dnsbl": {"lists": 5}}, "plugins.rcpt/dnsbl.lists = 5: must be"),
        ({"rcpt/dnsbll": {"lists": ["zen.example"]}}, 'did you mean "rcpt/dnsbl"?'),
        ({"queue/maildir": {"mailDir": "/tmp/%d/%n"}}, "its settings are [maildir]"),
    ],
)
def test_bad_plugin_tables_are_one_line_with_the_fix(
    plugins: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_plugins(plugins, builtin_keys())
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_builtin_keys_cover_a_fully_enabled_server(tmp_path: object) -> None:
    config = Config(
        hostname="mx.test",
        spool_dir=None,
        maildir=MaildirConfig(enabled=True, root=str(tmp_path)),
        plugins={"connect/pregreet": {}, "rcpt/dnsbl": {}, "queue/spamd": {}},
    )
    server = Server(config, resolver=object())  # type: ignore[arg-type]  # never asked here
    commands = {"connect", "helo", "ehlo", "mail", "rcpt", "data", "queue", "auth"}
    keys = {h.key for c in commands for h in server.chain.handlers(c)}
    assert keys <= builtin_keys()


async def test_unknown_plugin_key_stops_the_library_server_at_start() -> None:
    server = Server(Config(hostname="mx.test", plugins={"rcpt/dnsbll": {"lists": ["x.test"]}}))
    with trio.fail_after(10), pytest.raises(ConfigError, match=r'did you mean "rcpt/dnsbl"\?'):
        await server.serve("127.0.0.1", 0)


async def test_a_key_the_application_registered_is_known_at_start() -> None:
    server = Server(Config(hostname="mx.test", plugins={"rcpt/mine": {"allowed": "x.test"}}))

    @server.handler("rcpt", "mine")
    async def mine(req: Request, res: Response) -> None:
        res.accept()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, "127.0.0.1", 0)
            await server.aclose()
