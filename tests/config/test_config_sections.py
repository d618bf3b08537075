"""``Config(section=...)`` takes the section's class or its table, for every section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from mailio_trio import Server
from mailio_trio.config import Config, ConfigError
from mailio_trio.config._toml import _optional_sections, _sections

TABLES: dict[str, tuple[dict[str, Any], str, Any]] = {
    "limits": ({"idle_timeout": 5}, "idle_timeout", 5),
    "maildir": ({"enabled": True, "root": "/srv/mail"}, "root", Path("/srv/mail")),
    "relay": ({"concurrency": 2}, "concurrency", 2),
    "dns": ({"nameservers": ["127.0.0.1"], "port": 5353}, "port", 5353),
    "tls": ({"ciphers": "ECDHE+AESGCM"}, "ciphers", "ECDHE+AESGCM"),
    "auth": ({"allow_insecure": True}, "allow_insecure", True),
    "mailauth": ({"authserv_id": "mx.example.com"}, "authserv_id", "mx.example.com"),
    "metrics": ({"listen": "127.0.0.1:9025"}, "listen", "127.0.0.1:9025"),
    "redis": ({"url": "redis://127.0.0.1:6379/0"}, "url", "redis://127.0.0.1:6379/0"),
}


def test_every_section_of_config_is_listed_here() -> None:
    # A section added later must take a table too: this list has to grow with it.
    assert set(_sections(Config)) | set(_optional_sections(Config)) == set(TABLES)


@pytest.mark.parametrize("section", sorted(TABLES))
def test_a_section_given_as_a_table_is_built_as_from_toml(section: str) -> None:
    table, attr, expected = TABLES[section]
    config = Config(**{section: table})  # type: ignore[arg-type]  # one section per case
    built = getattr(config, section)
    assert attrs.has(type(built)), built
    assert getattr(built, attr) == expected
    assert built == Config.from_mapping({section: table}).__getattribute__(section)


def test_maildir_table_reaches_plugin_registration(tmp_path: Path) -> None:
    server = Server(Config(hostname="mx.test", maildir={"enabled": True, "root": str(tmp_path)}))
    assert "maildir" in [h.name for h in server.chain.handlers("queue")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maildir": {"rot": "/srv/mail"}}, "maildir.rot: unknown key (did you mean root?)"),
        ({"limits": {"idle_timeout": "x"}}, 'limits.idle_timeout = "x": must be'),
        ({"limits": 5}, "[limits] must be a table, not 5"),
        ({"relay": "on"}, '[relay] must be a table, not "on"'),
        ({"dns": {"port": 0}}, "dns.port = 0"),
    ],
)
def test_a_bad_table_is_one_line_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(**kwargs)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
