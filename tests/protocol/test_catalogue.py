"""The reply catalogue: every entry a final reply with an enhanced code, each in one place."""

from __future__ import annotations

import pytest

from mailio_trio.protocol import Reply, catalogue

ENTRIES = sorted(catalogue.__all__)


@pytest.mark.parametrize("name", ENTRIES)
def test_entries_are_final_replies_with_enhanced_codes(name: str) -> None:
    reply = getattr(catalogue, name)
    assert isinstance(reply, Reply)
    assert reply.code >= 400
    assert reply.enhanced is not None


def test_no_two_entries_say_the_same() -> None:
    replies = [getattr(catalogue, name) for name in ENTRIES]
    assert len(set(replies)) == len(replies)


def test_a_failed_commit_is_the_catalogues_451() -> None:
    # chain.commit tells a failed commit by identity, so it must be this very value.
    from mailio_trio import _transaction

    assert _transaction.COMMIT_FAILED is catalogue.INTERNAL_ERROR
