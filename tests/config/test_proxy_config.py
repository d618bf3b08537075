"""``[server] proxy_*`` keys and the ``serve --proxy-*`` flags."""

from __future__ import annotations

import pytest

from mailio_trio.cli._main import build_parser
from mailio_trio.cli._serve import effective_config
from mailio_trio.config import Config, ConfigError, ProxyUntrusted


def test_defaults_are_off_refuse_and_short() -> None:
    config = Config()
    assert config.proxy_protocol is False
    assert config.proxy_trusted == ()
    assert config.proxy_untrusted is ProxyUntrusted.REFUSE
    assert 0 < config.proxy_timeout <= 10


def test_from_toml_table_and_back() -> None:
    table = {
        "server": {
            "proxy_protocol": True,
            "proxy_trusted": ["10.1.2.3/8", "2001:db8::1"],
            "proxy_timeout": 2,
            "proxy_untrusted": "SMTP",
        }
    }
    config = Config.from_mapping(table)
    assert config.proxy_trusted == ("10.0.0.0/8", "2001:db8::1/128")
    assert config.proxy_untrusted is ProxyUntrusted.SMTP
    assert Config.from_mapping(config.to_table()) == config


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"proxy_protocol": True}, r"^server\.proxy_protocol = true: server\.proxy_trusted must"),
        ({"proxy_trusted": ["10.0.0.0/33"]}, r"^server\.proxy_trusted = '10\.0\.0\.0/33': must"),
        ({"proxy_untrusted": "drop"}, r"^server\.proxy_untrusted = \"drop\": must be one of"),
        ({"proxy_timeout": 0}, r"proxy_timeout = 0: must be a number greater than 0"),
        ({"proxy_protocol": "yes"}, r"^server\.proxy_protocol = \"yes\": must be true or false"),
    ],
)
def test_bad_values_are_one_line_errors(server: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_mapping({"server": server})


def test_serve_flags() -> None:
    args = build_parser().parse_args(
        ["serve", "--proxy-protocol", "--proxy-trusted", "10.0.0.0/8", "--proxy-trusted", "::1"]
    )
    config = effective_config(args)
    assert config.proxy_protocol is True
    assert config.proxy_trusted == ("10.0.0.0/8", "::1/128")


def test_serve_flag_with_a_bad_network_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--proxy-trusted", "nope"])
    assert "--proxy-trusted: 'nope' must be a network" in capsys.readouterr().err
