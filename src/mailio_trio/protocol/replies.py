"""SMTP replies: a code, text and enhanced status code, formatted for the wire.

RFC 5321 §4.2 gives the reply syntax (``code SP text`` / ``code - text`` for all
but the last line of a multi-line reply); RFC 2034 and RFC 3463 the enhanced
status code ``class.subject.detail`` whose class must match the reply's first
digit. Intermediate replies (3xx) carry no enhanced code.
"""

from __future__ import annotations

import re

import attrs

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\Z")


def _check_code(_: object, __: attrs.Attribute[int], code: int) -> None:
    if not 200 <= code <= 599:
        raise ValueError(f"SMTP reply code must be 200..599, not {code!r}")


def _check_text(_: object, __: attrs.Attribute[str], text: str) -> None:
    # A CR inside the text would let it forge further replies; lines split on LF only.
    if "\r" in text:
        raise ValueError("reply text must not contain CR; separate lines with \\n")


@attrs.frozen
class Reply:
    """One SMTP reply, possibly multi-line (lines separated by ``\\n`` in ``text``).

    Example:
      >>> Reply(250, "OK", "2.0.0").to_bytes()
      b'250 2.0.0 OK\\r\\n'
    """

    code: int = attrs.field(validator=_check_code)
    text: str = attrs.field(validator=_check_text)
    enhanced: str | None = None
    # The wire form, with and without the enhanced code, made on first use: a
    # constant reply is sent per command and formatting it is pure waste.
    _wire: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)
    _wire_plain: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.enhanced is None:
            return
        if not _ENHANCED.match(self.enhanced):
            raise ValueError(f"enhanced status code must look like 2.0.0, not {self.enhanced!r}")
        if self.enhanced[0] != str(self.code)[0]:
            raise ValueError(
                f"enhanced status {self.enhanced} does not match the class of reply {self.code}"
            )

    @property
    def lines(self) -> list[str]:
        """The text lines of the reply (at least one)."""
        return self.text.split("\n")

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def to_bytes(self, *, enhanced: bool = True) -> bytes:
        """The reply as wire bytes; ``enhanced=False`` leaves the status code out."""
        wire = self._wire if enhanced else self._wire_plain
        if wire is None:
            wire = self._format(enhanced=enhanced)
            # Frozen to users; the cache is ours to fill.
            object.__setattr__(self, "_wire" if enhanced else "_wire_plain", wire)
        return wire

    def _format(self, *, enhanced: bool) -> bytes:
        prefix = f"{self.enhanced} " if enhanced and self.enhanced else ""
        lines = self.lines
        out = [f"{self.code}-{prefix}{line}\r\n" for line in lines[:-1]]
        out.append(f"{self.code} {prefix}{lines[-1]}\r\n")
        return "".join(out).encode("utf-8", "replace")

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8").rstrip("\r\n")
