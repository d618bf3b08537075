"""``[relay.transports]``: per-domain LMTP transports, parsed and refused in one line."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING

import pytest

from mailio_trio.config import Config, ConfigError, RelayConfig
from mailio_trio.config._transports import Transport, parse_transport

if TYPE_CHECKING:
    from pathlib import Path

TOML = """
[server]
spool_dir = "{spool}"
[relay]
enabled = true
[relay.transports]
"Example.COM" = "lmtp:unix:/run/dovecot/lmtp"
"other.test" = "lmtp:inet:127.0.0.1:24"
"v6.test" = "lmtp:inet:[::1]:2424"
"""


def test_toml_table_builds_transports(tmp_path: Path) -> None:
    config = Config.from_mapping(tomllib.loads(TOML.format(spool=tmp_path)))
    relay = config.relay
    assert relay.transport_for("example.com") == Transport("lmtp", unix_path="/run/dovecot/lmtp")
    assert relay.transport_for("OTHER.test.") == Transport("lmtp", host="127.0.0.1", port=24)
    assert relay.transport_for("v6.test") == Transport("lmtp", host="::1", port=2424)
    assert relay.transport_for("elsewhere.test") is None
    # It round-trips through the TOML the config writes.
    assert Config.from_mapping(tomllib.loads(config.to_toml())).relay.transports == relay.transports


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("smtp:inet:h:25", "unknown transport 'smtp': only lmtp exists"),
        ("lmtp:unix:run/lmtp", "the Unix socket must be an absolute path"),
        ("lmtp:inet:127.0.0.1", "needs host:port with a port from 1 to 65535"),
        ("lmtp:inet:127.0.0.1:0", "needs host:port with a port from 1 to 65535"),
        ("lmtp:tcp:127.0.0.1:24", "the second part must be unix or inet"),
        (24, "must be a string"),
    ],
)
def test_bad_transport_is_one_line_naming_the_domain(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RelayConfig(enabled=True, transports={"example.com": value})
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith('relay.transports."example.com" = ')
    assert message in text


def test_transports_need_the_relay_enabled() -> None:
    with pytest.raises(ConfigError, match=r"relay.transports needs relay.enabled = true"):
        RelayConfig(transports={"example.com": "lmtp:unix:/run/dovecot/lmtp"})


def test_not_a_table_or_not_a_domain() -> None:
    with pytest.raises(ConfigError, match="must be a table"):
        RelayConfig(enabled=True, transports="lmtp:unix:/x")
    with pytest.raises(ConfigError, match="is not a domain"):
        RelayConfig(enabled=True, transports={"a@b": "lmtp:unix:/x"})


def test_parse_transport_example() -> None:
    assert parse_transport("lmtp:inet:127.0.0.1:24").name == "127.0.0.1:24"
    assert parse_transport("lmtp:unix:/s").name == "/s"
