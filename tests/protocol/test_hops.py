"""Counting ``Received:`` lines of the header block while it streams (RFC 5321 §6.3)."""

from __future__ import annotations

import itertools
import tomllib
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailio_trio.config import Config, ConfigError, Limits
from mailio_trio.protocol import DataReader
from mailio_trio.protocol.hops import HopCounter, count_hops

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MESSAGE = (
    b"Received: from a.test\r\n\tby b.test; Mon, 1 Jan 2024\r\n"
    b"received: lower case\r\n"
    b"RECEIVED:no space\r\n"
    b"X-Received: not a trace line\r\n"
    b"Subject: the\r\n Received: folded continuation\r\n"
    b"Received:\r\n"
    b"\r\n"
    b"Received: in the body\r\n"
)


@pytest.mark.parametrize(
    ("data", "hops"),
    [
        (MESSAGE, 4),
        (b"", 0),
        (b"\r\nReceived: x\r\n", 0),  # an empty header block
        (b"Receive: x\r\nReceived x\r\n\r\n", 0),
        (b"Received: a\nReceived: b\n\nReceived: c\n", 2),  # bare LF ends lines too
        (b"Subject: x\r\n" + b"Received: y\r\n" * 150, 150),  # no body yet
    ],
)
def test_counts_only_header_lines_of_the_header_block(data: bytes, hops: int) -> None:
    assert count_hops([data]) == hops


@given(st.lists(st.integers(min_value=0, max_value=len(MESSAGE)), max_size=12))
def test_any_chunking_gives_the_same_count(cuts: list[int]) -> None:
    points = sorted({0, len(MESSAGE), *cuts})
    counter = HopCounter()
    for start, end in itertools.pairwise(points):
        counter.feed(MESSAGE[start:end])
    assert (counter.hops, counter.done) == (4, True)


def _hops_line_by_line(data: bytes) -> tuple[int, bool]:
    """The definition, one line at a time: (trace lines in the header block, its end seen)."""
    *lines, partial = data.split(b"\n")
    hops = 0
    for line in lines:
        if not line.rstrip(b"\r"):
            return hops, True
        hops += line[:9].lower() == b"received:"
    return hops + (partial[:9].lower() == b"received:"), False


_HEADERISH = st.lists(
    st.sampled_from(
        [b"Received: x", b"rEcEiVeD:", b"Received", b"X-Received: y", b" Received: z", b"", b"\r"]
    ).map(lambda line: line + b"\r\n")
    | st.binary(max_size=12),
    max_size=12,
).map(b"".join)


@given(_HEADERISH, st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_bulk_scan_counts_as_the_line_by_line_definition(data: bytes, cuts: list[int]) -> None:
    # feed() scans whole lines with two regexes and goes octet-wise only across a cut.
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    counter = HopCounter()
    for start, end in itertools.pairwise(points):
        counter.feed(data[start:end])
    assert (counter.hops, counter.done) == _hops_line_by_line(data)


def test_count_hops_stops_reading_at_the_end_of_the_header_block() -> None:
    read: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        for chunk in (b"Received: a\r\n", b"\r\n", b"never read"):
            read.append(chunk)
            yield chunk

    assert count_hops(chunks()) == 1
    assert read == [b"Received: a\r\n", b"\r\n"]


def test_the_data_reader_counts_unstuffed_header_lines_one_octet_at_a_time() -> None:
    stream = b"Received: a\r\n" * 3 + b"\r\nReceived: body\r\n.\r\n"
    reader = DataReader(max_size=0, max_hops=3)
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        if reader.done:
            break
    assert (reader.hops, reader.too_many_hops) == (3, True)
    under = DataReader(max_size=0, max_hops=4)
    under.feed(stream)
    assert (under.hops, under.too_many_hops) == (3, False)


def test_max_hops_is_a_limit_with_toml_support(tmp_path: Path) -> None:
    assert Limits().max_hops == 50
    path = tmp_path / "c.toml"
    path.write_text('[server]\nhostname = "mx.test"\n[limits]\nmax_hops = 30\n')
    config = Config.from_toml(path)
    assert config.limits.max_hops == 30
    assert Config.from_mapping(tomllib.loads(config.to_toml())) == config
    with pytest.raises(ConfigError, match=r"limits.max_hops = 0: must be a whole number >= 1"):
        Limits(max_hops=0)
