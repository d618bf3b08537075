"""Hypothesis strategies for SMTP replies, shared by the reader's and the harness's tests."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from mailio_trio.protocol import Reply, ReplyReader

_text_lines = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40),
    min_size=1,
    max_size=5,
)


def _reads_enhanced(code: int, head: str) -> bool:
    reader = ReplyReader()
    reader.feed(f"{code} {head}\r\n".encode())
    reply = reader.next_reply()
    return isinstance(reply, Reply) and reply.enhanced is not None


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    """Any valid Reply whose wire form (``to_bytes()``) reads back unchanged."""
    code = draw(st.integers(200, 599))
    lines = draw(_text_lines)
    enhanced = None
    if code // 100 != 3 and draw(st.booleans()):
        enhanced = draw(st.from_regex(rf"\A{code // 100}\.[0-9]{{1,3}}\.[0-9]{{1,3}}\Z"))
    else:
        # Without an enhanced code, a first word that looks like one is read as
        # one (RFC 2034 gives no other way to tell): such text has no round trip.
        assume(not _reads_enhanced(code, lines[0].partition(" ")[0]))
    return Reply(code, "\n".join(lines), enhanced)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (clamped, deduplicated); joined, it is ``data``."""
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
