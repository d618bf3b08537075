"""The ``[dkim]`` section: which local domains sign what the relay sends, with which keys.

Only shapes are checked here: ``config/`` is a leaf, so it neither imports
``mailauth`` nor reads key files. The relay reads each key file once when it
starts (``plugins/_dkim_signing.py``) and refuses a missing or bad one then,
with a one-line :class:`ConfigError` naming the key as this module does::

    [dkim]
    sign = true
    arc_seal = true
    [dkim.keys]
    "example.com" = [
      { selector = "rsa2026", key = "/etc/mailio/dkim/example.com.rsa.pem" },
      { selector = "ed2026", key = "/etc/mailio/dkim/example.com.ed25519.pem" },
    ]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from mailio_trio.config._validators import ConfigError, show, toml_key

__all__ = ["DkimConfig", "DkimKey"]

# RFC 6376 §3.1: a selector is one or more DNS labels ("jan2026.mail"); a label is
# letters, digits and inner hyphens, at most 63 octets (RFC 1035 §2.3.4).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
_DOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})+\Z")


@attrs.frozen(kw_only=True)
class DkimKey:
    """One signing key of one domain: its selector and the private key file (PEM).

    The public half is published at ``selector._domainkey.domain``; ``mailio-trio
    dkim keygen`` writes the file and prints that record. RSA or Ed25519 is read
    from the file itself.
    """

    selector: str
    key: Path = attrs.field(converter=Path)


def _key(where: str, item: Any) -> DkimKey:
    if isinstance(item, DkimKey):
        return item
    if not isinstance(item, Mapping):
        raise ConfigError(
            f"{where} = {show(item)}: must be a table {{ selector = ..., key = ... }}"
        )
    for name in item:
        if name not in ("selector", "key"):
            raise ConfigError(
                f"{where}.{toml_key(str(name))}: unknown key (allowed: selector, key)"
            )
    selector, key = item.get("selector"), item.get("key")
    if not isinstance(selector, str) or not _SELECTOR.match(selector):
        shown = "missing" if selector is None else f"= {show(selector)}"
        raise ConfigError(
            f"{where}.selector {shown}: must be DNS labels (letters, digits, '-'), e.g. \"s2026\""
        )
    if not isinstance(key, str | Path) or not str(key):
        shown = "missing" if key is None else f"= {show(key)}"
        raise ConfigError(f"{where}.key {shown}: must be the path of a PEM private key file")
    return DkimKey(selector=selector, key=Path(key))


def _keys(value: Any) -> Mapping[str, tuple[DkimKey, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"dkim.keys = {show(value)}: must be a table of "
            '"DOMAIN" = [{ selector = "...", key = "/path/key.pem" }, ...]'
        )
    out: dict[str, tuple[DkimKey, ...]] = {}
    for raw_domain, items in value.items():
        where = f"dkim.keys.{toml_key(str(raw_domain))}"
        domain = str(raw_domain).lower().rstrip(".")
        if not _DOMAIN.match(domain):
            raise ConfigError(f"{where}: not a domain name")
        if domain in out:
            raise ConfigError(f"{where}: {domain!r} is given twice")
        if isinstance(items, Mapping | DkimKey):
            items = [items]  # one key needs no list around it
        if not isinstance(items, list | tuple) or not items:
            raise ConfigError(
                f"{where} = {show(items)}: must list one or more "
                '{ selector = "...", key = "..." } tables'
            )
        keys = tuple(_key(f"{where}[{i}]", item) for i, item in enumerate(items))
        selectors = [k.selector.lower() for k in keys]
        for i, selector in enumerate(selectors):
            if selector in selectors[:i]:
                raise ConfigError(f"{where}[{i}].selector = {show(keys[i].selector)}: given twice")
        out[domain] = keys
    return out


@attrs.frozen(kw_only=True)
class DkimConfig:
    """DKIM signing and ARC sealing of the mail the relay sends (RFC 6376, RFC 8617)."""

    _section = "dkim"

    sign: bool = True
    """Sign mail for local domains that have keys in ``keys``."""
    arc_seal: bool = True
    """ARC-seal relayed mail from others that a local domain forwards (needs an RSA key)."""
    keys: Mapping[str, tuple[DkimKey, ...]] = attrs.field(factory=dict, converter=_keys)
    """Domain → its keys; a domain with an RSA and an Ed25519 key signs with both."""

    def keys_for(self, domain: str) -> tuple[DkimKey, ...]:
        """The keys configured for ``domain`` (none: an empty tuple)."""
        return self.keys.get(domain.lower().rstrip("."), ())
