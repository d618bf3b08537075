"""Config.from_toml / from_mapping / to_toml: every bad value is one line naming the key."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any

import pytest

from mailio_trio.config import Config, ConfigError, MaildirConfig
from mailio_trio.plugins.maildir import expand

if TYPE_CHECKING:
    from pathlib import Path


def test_from_toml_builds_every_section(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[server]\nhostname = "mx.example.com"\ndomains = ["Example.COM"]\n'
        'listen = ["127.0.0.1:25", "[::1]:25"]\nspool_dir = "/var/spool/mailio"\n'
        '[limits]\nidle_timeout = 5\nmessage_size = 1000\nbare_line_endings = "reject"\n'
        '[maildir]\nenabled = true\nroot = "/srv/mail"\npath = "%d/users/%n"\n'
        'extend = "mailio_trio.plugins.maildir:expand"\n'
        '[plugins]\n"rcpt/dnsbl" = false\n[plugins."queue/spamd"]\nport = 7830\n'
    )
    config = Config.from_toml(path)
    assert config.domains == ("example.com",)
    assert config.listen == ("127.0.0.1:25", "[::1]:25")
    assert config.limits.idle_timeout == 5
    assert config.maildir.path == "%d/users/%n"
    assert config.maildir.extend is expand  # any importable callable
    assert config.plugins == {"rcpt/dnsbl": False, "queue/spamd": {"port": 7830}}
    # show -> load is the identity.
    assert Config.from_mapping(tomllib.loads(config.to_toml())) == config


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"limits": {"idle_timeout": "x"}},
            'limits.idle_timeout = "x": must be a number greater than 0',
        ),
        (
            {"limits": {"idle_timeout": 0}},
            "limits.idle_timeout = 0: must be a number greater than 0",
        ),
        (
            {"limits": {"max_recipients": True}},
            "limits.max_recipients = true: must be a whole number >= 1",
        ),
        (
            {"limits": {"data_read_size": 100}},
            "limits.data_read_size = 100: must be a whole number >= 4096",
        ),
        (
            {"limits": {"idel_timeout": 1}},
            "limits.idel_timeout: unknown key (did you mean idle_timeout?)",
        ),
        (
            {"limits": {"per_ip_exempt": ["10.0.0.0/8", "x"]}},
            "limits.per_ip_exempt = 'x': must be networks in CIDR form",
        ),
        ({"dns": {"nameservers": "ns.example"}}, "dns.nameservers = 'ns.example': must be IPv4"),
        ({"server": {"domains": 5}}, "server.domains = 5: must be a list of strings"),
        ({"server": {"strict_helo": "yes"}}, 'server.strict_helo = "yes": must be true or false'),
        ({"server": {"hostname": ["a"]}}, 'server.hostname = ["a"]: must be a string'),
        ({"server": {"listen": []}}, "server.listen = []: must list at least one HOST:PORT"),
        ({"maildir": {"path": "/abs/%n"}}, 'maildir.path = "/abs/%n": must be a relative path'),
        ({"maildir": {"path": "%d"}}, 'maildir.path = "%d": must contain %n'),
        ({"maildir": {"path": "%n/%x"}}, 'maildir.path = "%n/%x": may only use'),
        ({"maildir": {"sent_folder": "Sent"}}, 'maildir.sent_folder = "Sent": must be a Maildir++'),
        ({"maildir": {"mailboxes": ["bob"]}}, 'maildir.mailboxes: "bob" is not local-part@domain'),
        (
            {"maildir": {"extend": "nope"}},
            'maildir.extend = "nope": must be "package.module:function"',
        ),
        (
            {"maildir": {"extend": "no_such_mod:f"}},
            'maildir.extend = "no_such_mod:f": cannot import',
        ),
        ({"maildir": 3}, "[maildir] must be a table, not 3"),
        ({"frob": {}}, "[frob]: unknown section"),
        ({"plugins": {"dnsbl": False}}, 'plugins.dnsbl: a plugin key is "command/name"'),
        (
            {"plugins": {"rcpt/dnsbl": 1}},
            'plugins."rcpt/dnsbl" = 1: must be true, false or a table',
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Config.from_mapping(table)
    assert str(excinfo.value).startswith(message)
    assert "\n" not in str(excinfo.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("[limits]\nidle_timeout = -1\n")
    with pytest.raises(ConfigError, match=r"x\.toml: limits\.idle_timeout = -1: "):
        Config.from_toml(tmp_path / "x.toml")


def test_maildir_defaults() -> None:
    cfg = MaildirConfig()
    assert (cfg.enabled, str(cfg.root), cfg.path) == (False, "mail", "%d/%n")
    assert (cfg.sent_folder, cfg.junk_folder) == (".Sent", ".Junk")
