"""The openspf.org RFC 7208 test suite (release 2014.04), every case against real DNS packets.

``data/rfc7208-tests.yml`` and its licence come unchanged from pyspf 2.0.14's
sdist (``test/``). Each case is one pytest case: its scenario's ``zonedata``
is loaded into a loopback :class:`~mailio_trio.testing.dns.DnsServer` of its
own (one per case on port 0: building the zone and starting the server took
1.2 ms per case when measured, so nothing is shared between cases), a
:class:`~mailio_trio.dns.DnsResolver` with a short timeout is aimed at it, and
:func:`~mailio_trio.mailauth.spf.check_host` must give one of the case's
allowed results and, where the case names one, its explanation
(``DEFAULT`` is the suite's word for "no ``exp=`` explanation").

How the zone data maps to the test DNS server, following the suite's own
driver (pyspf's ``testspf.py``):

- ``SPF`` entries are served as type-99 SPF records *and*, when the name has no
  ``TXT`` entry at all (``TXT: NONE`` counts as one), copied to TXT: the suite
  relies on that "auto-magic duplication" outside its "Selecting records"
  section. RFC 7208 §3.1 made the SPF type obsolete; we never ask for it, and
  every case asserts that no SPF-type query was sent.
- A list value is one TXT record of several character-strings (RFC 7208
  §3.3: joined with no separator). ``SPF: []`` (no strings at all, illegal on
  the wire and refused by dnspython) becomes one empty string.
- ``TIMEOUT`` makes the name silent (the query is dropped; the resolver times
  out). In the suite's driver it only silences the types not listed *before*
  it; the test server silences whole names, so a name with records before
  ``TIMEOUT`` (only ``spftimeout.example.net``, whose only queried type, TXT,
  is listed) serves its records and answers NODATA for other types instead.
- dnspython shuffles an RRset's records on the wire, as live DNS may, so the
  one order-dependent case (``processing-limits/ptr-limit``) sees a random PTR
  order; the suite allows both of its results for exactly that reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SPF
import dns.rdtypes.ANY.TXT
import pytest
import trio
import yaml

from mailio_trio.dns import DnsConfig, DnsResolver
from mailio_trio.mailauth.spf import check_helo, check_host
from mailio_trio.testing.dns import DnsServer, Zone

SUITE = Path(__file__).parent / "data" / "rfc7208-tests.yml"

# Cases where we give a different answer on purpose: "scenario/case" -> why.
DEVIATIONS: dict[str, str] = {
    "macro-expansion-rules/v-macro-ip6": (
        "The suite expects %{ir} of an IPv6 address in upper-case nibbles (pyspf's output); "
        "RFC 7208 §7.4's own example expands it in lower case, as we do. DNS names are "
        "case-insensitive, so only explanation text differs."
    ),
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _load() -> list[dict[str, Any]]:
    with SUITE.open("rb") as stream:
        return list(yaml.safe_load_all(stream))


SCENARIOS = _load()


def _cases() -> list[Any]:
    cases = []
    for index, scenario in enumerate(SCENARIOS):
        for name in scenario["tests"]:
            case_id = f"{_slug(scenario['description'])}/{name}"
            marks = []
            if case_id in DEVIATIONS:
                marks.append(pytest.mark.xfail(reason=DEVIATIONS[case_id], strict=True))
            cases.append(pytest.param(index, name, id=case_id, marks=marks))
    return cases


CASES = _cases()


def _strings(value: str | list[str]) -> list[bytes]:
    if isinstance(value, list):
        return [s.encode("utf-8") for s in value] or [b""]
    data = value.encode("utf-8")
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


def build_zone(zonedata: dict[str, list[Any]]) -> Zone:
    """The suite's ``zonedata`` as a :class:`Zone` (see the module docstring)."""
    zone = Zone()
    for name, entries in zonedata.items():
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        timeout = False
        served = False
        for entry in entries:
            if entry == "TIMEOUT":
                timeout = True
                continue
            ((rdtype, value),) = entry.items()
            if value == "NONE":
                continue
            if rdtype == "SPF":
                strings = _strings(value)
                spf = dns.rdtypes.ANY.SPF.SPF(dns.rdataclass.IN, dns.rdatatype.SPF, strings)
                zone.add_rdata(name, [spf])
                if not has_txt:
                    txt = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
                    zone.add_rdata(name, [txt])
                    served = True
                continue
            served = True
            if rdtype == "TXT":
                txt = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, _strings(value))
                zone.add_rdata(name, [txt])
            elif rdtype == "MX":
                preference, host = value
                zone.mx(name, (preference, host))
            elif rdtype == "PTR":
                zone.ptr(name, value)
            elif rdtype == "CNAME":
                zone.cname(name, value)
            else:
                zone.add(name, rdtype, [value])
        if timeout and not served:
            zone.silent(name)
    return zone


@pytest.mark.parametrize(("scenario", "name"), CASES)
async def test_rfc7208(scenario: int, name: str, nursery: trio.Nursery) -> None:
    data = SCENARIOS[scenario]
    case = data["tests"][name]
    server = DnsServer(build_zone(data["zonedata"]))
    dns_host, dns_port = await nursery.start(server.serve)
    # Short, because TIMEOUT names are silent and each costs one full timeout.
    resolver = DnsResolver(DnsConfig(nameservers=[dns_host], port=dns_port, timeout=1.0))
    ip, sender, helo = case["host"], case["mailfrom"], case.get("helo", "")
    with trio.fail_after(30):
        if sender:
            domain = sender.rpartition("@")[2]
            result = await check_host(ip, domain, sender, helo=helo, resolver=resolver)
        else:
            result = await check_helo(ip, helo, resolver=resolver)
    allowed = case["result"] if isinstance(case["result"], list) else [case["result"]]
    assert result.result.value in allowed, result
    if "explanation" in case:
        assert (result.explanation or "DEFAULT") == case["explanation"], result
    assert not [q for q in server.queries if q.rdtype == "SPF"]
