"""``maildir.mailboxes`` is folded once per configuration, and a new one is never served stale."""

from __future__ import annotations

from mailio_trio import Config
from mailio_trio.config import MaildirConfig
from mailio_trio.plugins.maildir import Mailbox, known_mailboxes


def test_known_mailboxes_are_folded_once_per_configuration() -> None:
    config = Config(
        hostname="mx.test",
        domains=["Example.COM"],
        maildir=MaildirConfig(mailboxes=["Bob@Example.com", "carol@example.com"]),
    )
    known = known_mailboxes(config)
    assert known == frozenset({Mailbox("bob", "example.com"), Mailbox("carol", "example.com")})
    assert known_mailboxes(config) is known  # asked per RCPT: not rebuilt
    reloaded = Config(
        hostname="mx.test",
        domains=["example.com"],
        maildir=MaildirConfig(mailboxes=["dave@example.com"]),
    )
    assert known_mailboxes(reloaded) == frozenset({Mailbox("dave", "example.com")})
    assert known_mailboxes(Config(hostname="mx.test", domains=["example.com"])) is None
    assert known_mailboxes(config) == known  # back to the first: recomputed, same answer
