"""The ``[dkim]`` section: shapes only (key files are read by the relay), one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailio_trio.config import Config, ConfigError, DkimConfig, DkimKey

TOML = """
[server]
hostname = "mx.example.com"
domains = ["example.com"]
[dkim]
arc_seal = false
[dkim.keys]
"Example.COM." = [
  { selector = "rsa2026", key = "/etc/mailio/dkim/example.com.rsa.pem" },
  { selector = "ed2026", key = "/etc/mailio/dkim/example.com.ed25519.pem" },
]
"example.org" = { selector = "s1", key = "org.pem" }
"""


def test_dkim_section_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    config = Config.from_toml(path)
    assert config.dkim.sign is True  # the default
    assert config.dkim.arc_seal is False
    assert config.dkim.keys_for("EXAMPLE.com") == (
        DkimKey(selector="rsa2026", key=Path("/etc/mailio/dkim/example.com.rsa.pem")),
        DkimKey(selector="ed2026", key=Path("/etc/mailio/dkim/example.com.ed25519.pem")),
    )
    assert config.dkim.keys_for("example.org") == (DkimKey(selector="s1", key=Path("org.pem")),)
    assert config.dkim.keys_for("example.net") == ()


def test_dkim_section_round_trips_through_show(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    config = Config.from_toml(path)
    shown = config.to_toml()
    assert '[dkim.keys]\n"example.com" = [{selector = "rsa2026", key = ' in shown
    assert Config.from_mapping(tomllib.loads(shown)) == config
    assert Config.from_mapping(tomllib.loads(Config().to_toml())).dkim == DkimConfig()


def test_dkim_from_a_mapping_or_instances() -> None:
    from_mapping = Config(dkim={"keys": {"example.com": [{"selector": "s", "key": "/k.pem"}]}})
    from_objects = Config(
        dkim=DkimConfig(keys={"example.com": [DkimKey(selector="s", key=Path("/k.pem"))]})
    )
    assert from_mapping == from_objects
    assert Config().dkim == DkimConfig(sign=True, arc_seal=True, keys={})


@pytest.mark.parametrize(
    ("dkim", "message"),
    [
        ({"sign": "yes"}, 'dkim.sign = "yes": must be true or false'),
        ({"arc_seal": 1}, "dkim.arc_seal = 1: must be true or false"),
        ({"sgin": True}, "dkim.sgin: unknown key (did you mean sign?)"),
        ({"keys": 3}, 'dkim.keys = 3: must be a table of "DOMAIN" = ['),
        ({"keys": {"localhost": []}}, "dkim.keys.localhost: not a domain name"),
        ({"keys": {"a b.com": []}}, 'dkim.keys."a b.com": not a domain name'),
        ({"keys": {"example.com": []}}, 'dkim.keys."example.com" = []: must list one or more'),
        ({"keys": {"example.com": "k.pem"}}, 'dkim.keys."example.com" = "k.pem": must list'),
        ({"keys": {"example.com": ["k.pem"]}}, 'dkim.keys."example.com"[0] = "k.pem": must be'),
        (
            {"keys": {"example.com": [{"key": "k.pem"}]}},
            'dkim.keys."example.com"[0].selector missing: must be DNS labels',
        ),
        (
            {
                "keys": {
                    "example.com": [{"selector": "s", "key": "k"}, {"selector": "-x", "key": "k"}]
                }
            },
            'dkim.keys."example.com"[1].selector = "-x": must be DNS labels',
        ),
        (
            {"keys": {"example.com": [{"selector": "s"}]}},
            'dkim.keys."example.com"[0].key missing: must be the path of a PEM private key file',
        ),
        (
            {"keys": {"example.com": [{"selector": "s", "key": ""}]}},
            'dkim.keys."example.com"[0].key = "": must be the path',
        ),
        (
            {"keys": {"example.com": [{"selector": "s", "key": "k", "algorithm": "rsa"}]}},
            'dkim.keys."example.com"[0].algorithm: unknown key (allowed: selector, key)',
        ),
        (
            {
                "keys": {
                    "example.com": [{"selector": "s", "key": "a"}, {"selector": "S", "key": "b"}]
                }
            },
            'dkim.keys."example.com"[1].selector = "S": given twice',
        ),
        (
            {"keys": {"example.com": [{"selector": "s", "key": "a"}], "EXAMPLE.com": []}},
            "dkim.keys.\"EXAMPLE.com\": 'example.com' is given twice",
        ),
        ({"keys": []}, "dkim.keys = []: must be a table"),
    ],
)
def test_bad_dkim_values_are_one_line(dkim: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Config.from_mapping({"dkim": dkim})
    assert str(excinfo.value).startswith(message), str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_dkim_errors_from_the_constructor_too() -> None:
    with pytest.raises(ConfigError, match=r'^dkim\.keys\."example\.com"\[0\]\.selector missing'):
        Config(dkim={"keys": {"example.com": [{"key": "k.pem"}]}})
