"""Network lists from the configuration, parsed once and matched per client."""

from __future__ import annotations

import ipaddress

import pytest

from mailio_trio.networks import in_networks, parse_networks


def test_configured_networks_are_parsed_once() -> None:
    configured = ("192.0.2.0/24", "2001:db8::1")
    parsed = parse_networks(configured)
    assert parsed == (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::1/128"))
    # Asked per connection and per RCPT with the same tuple: not parsed again.
    assert parse_networks(("192.0.2.0/24", "2001:db8::1")) is parsed
    assert in_networks("::ffff:192.0.2.9", parsed)  # IPv4-mapped counts as IPv4
    assert not in_networks("198.51.100.1", parsed)


def test_a_bad_network_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not-a-net"):
        parse_networks(("not-a-net",))
