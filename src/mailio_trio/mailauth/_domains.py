"""Domain names for DMARC: normalising, and the organizational domain (RFC 7489 §3.2).

The Public Suffix List comes from the ``publicsuffixlist`` package, which ships
the list and reads only its own copy: nothing is downloaded, ever (its
``publicsuffixlist-download`` command, never imported here, is the only part
that can fetch).
"""

from __future__ import annotations

import functools
import re

try:
    from publicsuffixlist import PublicSuffixList
except ImportError as exc:  # the optional extra is missing: say which one
    raise ImportError(
        "DMARC needs the Public Suffix List: pip install 'mailio-trio[mailauth]'"
    ) from exc

_LDH_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")


@functools.cache
def _psl() -> PublicSuffixList:
    # The package's own bundled copy, read once (~35 ms); the whole list,
    # private section included, as RFC 7489 §3.2 uses publicsuffix.org's list.
    return PublicSuffixList()


def normalize_domain(domain: str) -> str | None:
    """The A-label, lower-case, dotless-ended form of a DNS domain, or ``None``."""
    text = domain.strip().rstrip(".")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    text = text.lower()
    labels = text.split(".")
    if len(text) > 253 or not all(_LDH_LABEL.match(label) for label in labels):
        return None
    return text


def organizational_domain(domain: str) -> str:
    """The registered domain: one label more than the longest public suffix (RFC 7489 §3.2).

    A name that is itself a public suffix is its own organizational domain, as
    OpenDMARC treats it. Unknown top-level domains count as public suffixes.

    Example:
      >>> organizational_domain("mail.example.co.uk")
      'example.co.uk'
    """
    text = domain.strip().rstrip(".").lower()
    found: str | None = _psl().privatesuffix(text)
    return found or text
