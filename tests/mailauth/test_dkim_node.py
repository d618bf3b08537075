"""DKIM and ARC against a second independent implementation: Node's ``mailauth``.

Mail::DKIM (``test_dkim_perl.py``) checks our RSA signatures, but Debian's release has
no Ed25519 (RFC 8463); Andris Reinman's ``mailauth`` (npm, MIT) has both, and ARC.
It is pinned in ``tests/mailauth/node/package.json`` and its lock file; ``.ci/run``
installs it with ``npm ci`` before the tests (nothing downloads at test time) and
sets ``MAILIO_REQUIRE_NODE_MAILAUTH=1``, where a missing install fails instead of
skipping. Its verifier asks only our loopback DNS server (``node/resolver.mjs``), and
each test checks the server counted the query, so a pass is never a lookup that went
elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from mailio_trio.mailauth.arc import ArcVerdict, seal, verify_arc
from mailio_trio.mailauth.dkim import (
    DkimAlgorithm,
    DkimSignConfig,
    DkimVerdict,
    sign_for_domain,
    verify,
    write_private_key,
)

from .support import MESSAGE

if TYPE_CHECKING:
    from mailio_trio.mailauth.dkim import DkimSigningKey

    from .support import Dns, Keys

NODE_DIR = Path(__file__).parent / "node"


def require_node_mailauth() -> None:
    """Skip unless node and the pinned ``mailauth`` are installed; fail instead in CI."""
    if shutil.which("node") is not None and (NODE_DIR / "node_modules" / "mailauth").is_dir():
        return
    if os.environ.get("MAILIO_REQUIRE_NODE_MAILAUTH") == "1":
        pytest.fail("Node's mailauth is required (MAILIO_REQUIRE_NODE_MAILAUTH=1) but missing")
    pytest.skip("Node's mailauth not installed (npm ci --prefix tests/mailauth/node)")


@pytest.fixture
def node_mailauth() -> None:
    require_node_mailauth()


pytestmark = pytest.mark.usefixtures("node_mailauth")


async def run_node(script: str, *args: str | int | Path, stdin: bytes) -> str:
    """Run one of the scripts in ``node/``; its stdout, or a failure with its stderr."""
    with trio.fail_after(60):
        done = await trio.run_process(
            ["node", str(NODE_DIR / script), *map(str, args)],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"{script} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode("utf-8", "replace")


async def node_verify(dns: Dns, message: bytes) -> dict[str, Any]:
    """mailauth's DKIM results and ARC result for ``message``, as ``verify.mjs`` prints them."""
    out: dict[str, Any] = json.loads(await run_node("verify.mjs", dns.port, stdin=message))
    return out


async def node_sign(key: DkimSigningKey, tmp_path: Path, message: bytes) -> bytes:
    """The DKIM-Signature field mailauth makes for ``message`` with ``key``."""
    key_file = tmp_path / f"{key.selector}.key"
    write_private_key(key_file, key.private_key_pem)
    header = await run_node(
        "sign.mjs", key_file, key.domain, key.selector, key.algorithm.value, stdin=message
    )
    assert header.startswith("DKIM-Signature:"), header
    return header.encode()


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
async def test_our_signature_passes_node(keys: Keys, dns: Dns, which: str) -> None:
    key: DkimSigningKey = getattr(keys, which)
    signed = sign_for_domain(MESSAGE, config=DkimSignConfig(keys=(key,)), domain="example.com")
    [result] = (await node_verify(dns, signed + MESSAGE))["dkim"]
    assert result["result"] == "pass", result
    assert (result["domain"], result["selector"], result["algorithm"]) == (
        "example.com",
        key.selector,
        key.algorithm.value,
    )
    assert dns.server.count(f"{key.selector}._domainkey.example.com", "TXT") >= 1


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
async def test_node_signature_passes_ours(keys: Keys, dns: Dns, tmp_path: Path, which: str) -> None:
    key: DkimSigningKey = getattr(keys, which)
    header = await node_sign(key, tmp_path, MESSAGE)
    with trio.fail_after(10):
        [result] = await verify(header + MESSAGE, resolver=dns.resolver)
    assert result.result is DkimVerdict.PASS, result.reason
    assert (result.domain, result.selector, result.algorithm) == (
        "example.com",
        key.selector,
        key.algorithm.value,
    )


async def test_node_verifies_both_of_our_signatures(keys: Keys, dns: Dns) -> None:
    config = DkimSignConfig(keys=(keys.rsa, keys.ed25519))
    signed = sign_for_domain(MESSAGE, config=config, domain="example.com")
    results = (await node_verify(dns, signed + MESSAGE))["dkim"]
    assert {r["algorithm"]: r["result"] for r in results} == {
        DkimAlgorithm.RSA_SHA256.value: "pass",
        DkimAlgorithm.ED25519_SHA256.value: "pass",
    }, results


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
async def test_tampered_message_fails_in_both(
    keys: Keys, dns: Dns, tmp_path: Path, which: str
) -> None:
    """Each verifier really checks: a changed body or header does not pass, either way round."""
    key: DkimSigningKey = getattr(keys, which)
    ours = sign_for_domain(MESSAGE, config=DkimSignConfig(keys=(key,)), domain="example.com")
    theirs = await node_sign(key, tmp_path, MESSAGE)
    for header in (ours, theirs):
        body = (header + MESSAGE).replace(b"noon", b"one")
        subject = (header + MESSAGE).replace(b"Lunch", b"Brunch")
        [node_body] = (await node_verify(dns, body))["dkim"]
        [node_subject] = (await node_verify(dns, subject))["dkim"]
        # mailauth says "neutral" for a body hash mismatch (RFC 6376 §6.1.3 calls it
        # PERMFAIL; dkimpy and Mail::DKIM say fail): what matters is that it is no pass.
        assert node_body["result"] in ("fail", "neutral"), node_body
        assert "body hash did not verify" in node_body["comment"], node_body
        assert node_subject["result"] == "fail", node_subject
        with trio.fail_after(10):
            [ours_body] = await verify(body, resolver=dns.resolver)
            [ours_subject] = await verify(subject, resolver=dns.resolver)
        assert ours_body.result is DkimVerdict.FAIL, ours_body.reason
        assert ours_subject.result is DkimVerdict.FAIL, ours_subject.reason


async def test_our_arc_seal_passes_node(keys: Keys, dns: Dns) -> None:
    """A message we seal (i=1, then i=2 after a list changed the subject) passes mailauth's ARC."""
    dns.zone.txt("arc._domainkey.relay.test", keys.rsa_record)
    dns.zone.txt("arc._domainkey.list.test", keys.rsa_record)
    first = (
        seal(
            MESSAGE,
            domain="relay.test",
            selector="arc",
            private_key_pem=keys.rsa.private_key_pem,
            authserv_id="mx.relay.test",
            authentication_results_text="dkim=pass header.d=example.com; arc=none",
        )
        + MESSAGE
    )
    arc = (await node_verify(dns, first))["arc"]
    if arc["result"] == "none":
        pytest.skip(f"this mailauth reports no ARC result for a sealed message: {arc}")
    assert arc == {"result": "pass", "comment": arc["comment"], "instance": 1}, arc
    assert dns.server.count("arc._domainkey.relay.test", "TXT") >= 1

    changed = first.replace(b"Subject: Lunch", b"Subject: [team] Lunch")
    second = (
        seal(
            changed,
            domain="list.test",
            selector="arc",
            private_key_pem=keys.rsa.private_key_pem,
            authserv_id="lists.list.test",
            authentication_results_text="dkim=fail header.d=example.com; arc=pass",
        )
        + changed
    )
    arc = (await node_verify(dns, second))["arc"]
    assert (arc["result"], arc["instance"]) == ("pass", 2), arc
    with trio.fail_after(10):
        ours = await verify_arc(second, resolver=dns.resolver)
    assert ours.result is ArcVerdict.PASS, ours.reason

    # A change after the last seal breaks the chain for both.
    broken = second.replace(b"noon", b"one")
    arc = (await node_verify(dns, broken))["arc"]
    assert arc["result"] == "fail", arc
    with trio.fail_after(10):
        ours = await verify_arc(broken, resolver=dns.resolver)
    assert ours.result is ArcVerdict.FAIL, ours.reason
