"""What the fuzz targets (fuzz/, docs/testing-the-project.md) found, pinned as plain tests."""

from __future__ import annotations

import pytest

from mailio_trio.protocol import BareLineEndings, ChunkReader, DataReader


@pytest.mark.parametrize("reader_type", [DataReader, ChunkReader])
def test_an_unfinished_line_over_the_limit_is_flagged_whatever_the_cuts(
    reader_type: type[DataReader],
) -> None:
    # fuzz_data found it: a read holding full lines and then an unfinished
    # line already over the limit did not flag it, while the same octets cut
    # before that line's last octets did. The session stops storing once the
    # flag is up, so the cuts decided how much of a refused message was spooled.
    stream = b"a\r\nb\r\n" + b"x" * 12
    whole = reader_type(max_size=0, line_limit=4)
    whole.feed(stream)
    cut = reader_type(max_size=0, line_limit=4)
    cut.feed(stream[:-3])
    cut.feed(stream[-3:])
    assert whole.line_too_long
    assert cut.line_too_long


def test_a_line_that_fits_is_not_flagged_early() -> None:
    # The early flag counts the line end still to come: limit - 1 octets fit.
    reader = DataReader(max_size=0, line_limit=5, bare_line_endings=BareLineEndings.REJECT)
    reader.feed(b"ab\r\n" + b"c" * 3)
    assert not reader.line_too_long
    reader.feed(b"\r\n.\r\n")
    assert reader.done
    assert not reader.line_too_long
    assert not reader.bare_line_ending_seen
