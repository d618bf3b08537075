"""The public API is what ``mailio_trio.__all__`` says, and all of it imports."""

from __future__ import annotations

import mailio_trio


def test_public_names_are_pinned() -> None:
    assert sorted(mailio_trio.__all__) == [
        "Address",
        "ApiUser",
        "Chain",
        "ChainError",
        "ClientInfo",
        "Config",
        "ConfigError",
        "DnsConfig",
        "Envelope",
        "Handler",
        "HandlerSession",
        "Limits",
        "Message",
        "RecipientOutcome",
        "Reply",
        "Request",
        "Response",
        "Server",
        "Session",
        "SubmissionRefused",
        "SubmissionResult",
        "__version__",
    ]
    for name in mailio_trio.__all__:
        assert getattr(mailio_trio, name) is not None


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    # "0+unknown" (no metadata found) would also start with a digit: compare exactly.
    assert mailio_trio.__version__ == version("mailio-trio")
