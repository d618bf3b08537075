"""``mailio-trio dkim keygen``: a DKIM signing key, its DNS record and its ``[dkim.keys]`` line.

The private key is written with mode 0600 from the start (never readable by
others, even for a moment) and an existing file is kept unless ``--force``.
The DNS record is printed in zone-file form, its text split into quoted
strings of at most 255 octets: one TXT record, several character-strings
(RFC 6376 §3.6.2.2; RFC 1035 §3.3.14 limits each string to 255).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailio_trio.config import ConfigError, DkimConfig, show

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run", "txt_strings"]

INSTALL_HINT = "pip install 'mailio-trio[mailauth]'"


def add_parser(commands: Any) -> None:
    """Add ``dkim keygen`` to the CLI's subcommands (``parser.add_subparsers()``)."""
    dkim = commands.add_parser(
        "dkim",
        help="make DKIM signing keys",
        description="DKIM keys for the [dkim.keys] table (the relay signs with them).",
    )
    actions = dkim.add_subparsers(dest="dkim_command", required=True, metavar="ACTION")
    keygen = actions.add_parser(
        "keygen",
        help="write a new private key; print its DNS record and [dkim.keys] line",
        description=(
            "Write a new DKIM private key (mode 0600) and print the TXT record to publish "
            "at SELECTOR._domainkey.DOMAIN and the line to paste under [dkim.keys]."
        ),
    )
    keygen.add_argument("--domain", required=True, help="the signing domain (d=), a local one")
    keygen.add_argument("--selector", required=True, help="the selector (s=), e.g. 2026a")
    keygen.add_argument(
        "--algorithm",
        choices=("rsa", "ed25519"),
        default="rsa",
        help="rsa (2048 bits, every verifier knows it; default) or ed25519 (RFC 8463)",
    )
    keygen.add_argument(
        "--out",
        type=Path,
        help="where to write the private key (default: DOMAIN.SELECTOR.pem here)",
    )
    keygen.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def txt_strings(text: str, size: int = 255) -> list[str]:
    """``text`` cut into character-strings of at most ``size`` octets (RFC 1035 §3.3.14)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _check_names(domain: str, selector: str) -> None:
    # The [dkim] section's own checks, so keygen never prints a line the server refuses.
    try:
        DkimConfig(keys={domain: [{"selector": "s", "key": "k"}]})
    except ConfigError:
        raise ConfigError(f"dkim keygen --domain {show(domain)}: not a domain name") from None
    try:
        DkimConfig(keys={"example.com": [{"selector": selector, "key": "k"}]})
    except ConfigError:
        raise ConfigError(
            f"dkim keygen --selector {show(selector)}: must be DNS labels (letters, digits, '-')"
        ) from None


def run(args: argparse.Namespace) -> int:
    """``mailio-trio dkim keygen``: writes the key, prints what to publish; returns 0.

    Raises:
      ConfigError: A bad domain or selector, an existing file without ``--force``,
        a file that cannot be written, or the mailauth extra missing (one line, exit 2).
    """
    domain: str = args.domain.lower().rstrip(".")
    selector: str = args.selector
    _check_names(domain, selector)
    try:
        from mailio_trio.mailauth.dkim import DkimAlgorithm, generate_key, write_private_key
    except ImportError as exc:
        raise ConfigError(
            f"dkim keygen needs the mailauth extra ({exc.name or exc} is missing): {INSTALL_HINT}"
        ) from None
    out: Path = args.out if args.out is not None else Path(f"{domain}.{selector}.pem")
    if out.exists() and not args.force:
        raise ConfigError(f"dkim keygen --out {show(str(out))}: exists; --force overwrites it")
    algorithm = (
        DkimAlgorithm.ED25519_SHA256 if args.algorithm == "ed25519" else DkimAlgorithm.RSA_SHA256
    )
    pem, record = generate_key(algorithm)
    try:
        write_private_key(out, pem, overwrite=args.force)
    except FileExistsError:
        raise ConfigError(
            f"dkim keygen --out {show(str(out))}: exists; --force overwrites it"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"dkim keygen --out {show(str(out))}: cannot write: {exc.strerror or exc}"
        ) from None
    path = Path(os.path.abspath(out))
    strings = " ".join(f'"{s}"' for s in txt_strings(record))
    entry = show([{"selector": selector, "key": str(path)}])
    print(f"; wrote the private key to {path} (mode 0600); keep it secret")
    print(f"; publish this record in the DNS zone of {domain}:")
    print(f"{selector}._domainkey.{domain}. IN TXT {strings}")
    print()
    print("# and add this under [dkim.keys] (one list per domain: merge with its other keys):")
    print(f'"{domain}" = {entry}')
    return 0
