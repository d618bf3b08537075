"""The benchmark's DNS and messages for the email-authentication workloads (issue #14).

Two commands, both run by ``bench/run.py``:

``serve_dns.py make DIR``
    Generates an RSA-2048 DKIM key and writes into DIR the zone (``zone.json``)
    and the messages the load generator sends as they are (pre-signed: the
    signature is made once, here, so the generator spends nothing on it):

    - ``plain-1k.eml``: ``loadgen.make_body(1024)``, From ``bench@example.org``;
    - ``signed-1k.eml``: the same, DKIM-signed by ``d=example.org``;
    - ``signed-10m.eml``: a 10 MiB body, signed likewise (the latency workload);
    - ``check-plain.eml`` and ``check-signed.eml``: From ``bench@check.example.org``,
      whose SPF fails 127.0.0.1 and whose DMARC policy is ``p=reject``. The runner
      sends both once per server start as a sanity check: the plain one must be
      refused (SPF and DMARC really run) and the signed one accepted (DMARC passes
      through DKIM alone, so DKIM really verifies, with the same key and selector).

``serve_dns.py serve DIR``
    Serves ``DIR/zone.json`` with :class:`mailio_trio.testing.dns.DnsServer` (real
    UDP and TCP packets) on a free 127.0.0.1 port, prints ``listening on
    127.0.0.1:PORT``, and answers until SIGTERM.

The zone: ``example.org`` publishes ``v=spf1 ip4:127.0.0.1 -all`` (the
generator's sender domain, so SPF passes from loopback), ``_dmarc.example.org``
``p=reject`` (a verification that went wrong would refuse mail, and the run
fails instead of looking fast), and ``bench._domainkey.example.org`` the key.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).parent))

import loadgen

DOMAIN = "example.org"
CHECK_DOMAIN = "check.example.org"
SELECTOR = "bench"
BIG = 10 << 20


def _retarget(message: bytes, domain: str) -> bytes:
    """The generator's message with its From (and Message-ID) in ``domain``."""
    return message.replace(b"@example.org>", f"@{domain}>".encode())


def make(directory: Path) -> None:
    from mailio_trio.mailauth.dkim import DkimAlgorithm, generate_key, sign

    directory.mkdir(parents=True, exist_ok=True)
    pem, record = generate_key(DkimAlgorithm.RSA_SHA256)

    def signed(message: bytes, domain: str) -> bytes:
        return sign(message, domain=domain, selector=SELECTOR, private_key_pem=pem) + message

    plain = loadgen.make_body(1024)
    check = _retarget(plain, CHECK_DOMAIN)
    files = {
        "plain-1k.eml": plain,
        "signed-1k.eml": signed(plain, DOMAIN),
        "signed-10m.eml": signed(loadgen.make_body(BIG), DOMAIN),
        "check-plain.eml": check,
        "check-signed.eml": signed(check, CHECK_DOMAIN),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    zone = {
        DOMAIN: {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        f"_dmarc.{DOMAIN}": {"TXT": ["v=DMARC1; p=reject"]},
        f"{SELECTOR}._domainkey.{DOMAIN}": {"TXT": [record]},
        CHECK_DOMAIN: {"TXT": ["v=spf1 -all"]},
        f"_dmarc.{CHECK_DOMAIN}": {"TXT": ["v=DMARC1; p=reject"]},
        f"{SELECTOR}._domainkey.{CHECK_DOMAIN}": {"TXT": [record]},
    }
    (directory / "zone.json").write_text(json.dumps(zone, indent=1))


async def serve(directory: Path) -> None:
    from mailio_trio.testing.dns import DnsServer, Zone

    zone = Zone.from_dict(json.loads((directory / "zone.json").read_text()))
    server = DnsServer(zone)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(server.serve)
            print(f"listening on {host}:{port}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["make", "serve"])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        make(args.directory)
    else:
        trio.run(serve, args.directory)


if __name__ == "__main__":
    main()
