"""The inbox's HTTP API over loopback against ``serve --capture --web`` run in-process.

SMTP with ``smtplib`` and HTTP with ``httpx``, each blocking client in a thread.
"""

from __future__ import annotations

import email.message
import json
from typing import TYPE_CHECKING, Any

import pytest
import trio
from inbox_serving import Serving, message, serve_inbox
from openapi_spec_validator import validate

from mailio_trio.inbox import inbox_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    import httpx

PDF = b"%PDF-1.4\n\x00\x01\x02 binary \xff\xfe\r\n"


@pytest.fixture
async def serving(tmp_path: Path) -> AsyncIterator[Serving]:
    async with serve_inbox(tmp_path) as running:
        yield running


async def _http(serving: Serving, call: Callable[[httpx.Client], Any]) -> Any:
    def run() -> Any:
        with serving.client() as client:
            return call(client)

    return await trio.to_thread.run_sync(run)


async def _get(serving: Serving, path: str) -> httpx.Response:
    return await _http(serving, lambda c: c.get(path))  # type: ignore[no-any-return]  # an httpx.Response


async def _send_three(serving: Serving) -> None:
    await serving.send(message("Welcome aboard", text="Have a kiwi."))
    await serving.send(
        message(
            "Your invoice",
            sender="Billing <billing@dev.example>",
            to="Bob <bob@example.com>",
            html='<p>Invoice <b>attached</b></p><img src="http://images.example.invalid/t.png">',
            attachment=("invoice.pdf", PDF),
        )
    )
    await serving.send(message("Password reset", to="carol@example.com"))


async def test_list_get_raw_and_part(serving: Serving) -> None:
    with trio.fail_after(30):
        await _send_three(serving)
        listing = (await _get(serving, "/api/v1/messages")).json()
        assert (listing["total"], listing["unread"], listing["count"]) == (3, 3, 3)
        subjects = [m["Subject"] for m in listing["messages"]]
        assert subjects == ["Password reset", "Your invoice", "Welcome aboard"]  # newest first
        invoice = listing["messages"][1]
        assert invoice["From"] == {"Name": "Billing", "Address": "billing@dev.example"}
        assert invoice["To"] == [{"Name": "Bob", "Address": "bob@example.com"}]
        assert invoice["Attachments"] == 1
        assert invoice["Read"] is False
        assert invoice["Created"].endswith("Z")
        assert invoice["Snippet"] == "Hello there."  # the text part, as Mailpit takes it

        full = (await _get(serving, f"/api/v1/message/{invoice['ID']}")).json()
        assert full["Subject"] == "Your invoice"
        assert "<b>attached</b>" in full["HTML"]
        [attachment] = full["Attachments"]
        assert (attachment["FileName"], attachment["Size"]) == ("invoice.pdf", len(PDF))
        assert full["Envelope"] == {"From": "billing@dev.example", "To": ["bob@example.com"]}
        session = full["Session"]
        assert (session["ClientAddress"], session["Helo"], session["TLS"]) == (
            "127.0.0.1",
            "client.test",
            False,
        )
        assert (session["AuthUser"], session["AuthenticationResults"]) == (None, None)
        assert full["Size"] == invoice["Size"]

        raw = await _get(serving, f"/api/v1/message/{invoice['ID']}/raw")
        assert raw.content.startswith(b"Received: from client.test")
        assert b"Subject: Your invoice\r\n" in raw.content
        assert len(raw.content) == invoice["Size"]

        part = await _get(serving, f"/api/v1/message/{invoice['ID']}/part/{attachment['PartID']}")
        assert part.content == PDF
        assert part.headers["content-disposition"] == 'attachment; filename="invoice.pdf"'

        headers = (await _get(serving, f"/api/v1/message/{invoice['ID']}/headers")).json()
        assert headers["Subject"] == ["Your invoice"]

        latest = (await _get(serving, "/api/v1/message/latest")).json()
        assert latest["Subject"] == "Password reset"
        # Viewing marked both read, as Mailpit does.
        assert (await _get(serving, "/api/v1/messages")).json()["unread"] == 1


async def test_html_is_served_under_a_strict_policy(serving: Serving) -> None:
    with trio.fail_after(30):
        await _send_three(serving)
        [invoice] = (await _get(serving, "/api/v1/search?query=subject:invoice")).json()["messages"]
        html = await _get(serving, f"/api/v1/message/{invoice['ID']}/html")
        policy = html.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "img-src 'self' data:" in policy
        assert "sandbox" in policy
        assert html.headers["content-type"].startswith("text/html")
        remote = await _get(serving, f"/api/v1/message/{invoice['ID']}/html?remote=1")
        assert "img-src * data:" in remote.headers["content-security-policy"]
        page = await _get(serving, "/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert b'sandbox=""' in page.content
        assert (await _get(serving, "/static/app.js")).status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("subject:password", ["Password reset"]),
        ("from:billing@", ["Your invoice"]),
        ("to:carol", ["Password reset"]),
        ("kiwi", ["Welcome aboard"]),
        ("to:alice kiwi", ["Welcome aboard"]),
        ("nothing-matches-this", []),
    ],
)
async def test_search(serving: Serving, query: str, expected: list[str]) -> None:
    with trio.fail_after(30):
        await _send_three(serving)
        found = await _http(serving, lambda c: c.get("/api/v1/search", params={"query": query}))
        listing = found.json()
        assert [m["Subject"] for m in listing["messages"]] == expected
        assert listing["total"] == 3
        assert listing["messages_count"] == len(expected)


async def test_delete_some_then_all(serving: Serving) -> None:
    with trio.fail_after(30):
        await _send_three(serving)
        ids = [m["ID"] for m in (await _get(serving, "/api/v1/messages")).json()["messages"]]
        gone = await _http(
            serving,
            lambda c: c.request("DELETE", "/api/v1/messages", content=json.dumps({"IDs": ids[:1]})),
        )
        assert (gone.status_code, gone.text) == (200, "ok")
        left = (await _get(serving, "/api/v1/messages")).json()
        assert [m["ID"] for m in left["messages"]] == ids[1:]
        assert (await _get(serving, f"/api/v1/message/{ids[0]}")).status_code == 404
        await _http(serving, lambda c: c.delete("/api/v1/messages"))
        assert (await _get(serving, "/api/v1/messages")).json()["total"] == 0


async def test_a_bad_delete_body_is_400(serving: Serving) -> None:
    with trio.fail_after(30):
        bad = await _http(
            serving, lambda c: c.request("DELETE", "/api/v1/messages", content=b'{"IDs": 3}')
        )
        assert bad.status_code == 400


async def test_wait_returns_once_the_count_is_reached(serving: Serving) -> None:
    with trio.fail_after(30):
        results: list[httpx.Response] = []

        async def wait() -> None:
            results.append(await _get(serving, "/api/v1/wait?count=2&timeout=25"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await serving.send(message("one"))
            await serving.send(message("two"))
        [answer] = results
        assert answer.status_code == 200
        assert answer.json()["total"] == 2


async def test_wait_times_out_with_408(serving: Serving) -> None:
    with trio.fail_after(30):
        answer = await _get(serving, "/api/v1/wait?count=1&timeout=0")
        assert answer.status_code == 408
        assert answer.json()["total"] == 0


async def test_events_announce_new_and_deleted_messages(serving: Serving) -> None:
    with trio.fail_after(30):
        connected = trio.Event()
        token = trio.lowlevel.current_trio_token()
        lines: list[str] = []

        def listen() -> None:
            with (
                serving.client() as client,
                client.stream("GET", "/api/v1/events") as stream,
            ):
                for line in stream.iter_lines():
                    if line == ": connected":
                        trio.from_thread.run_sync(connected.set, trio_token=token)
                    lines.append(line)
                    if line.startswith("data:") and "IDs" in line:
                        return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, listen)
            await connected.wait()
            await serving.send(message("live"))
            await _http(serving, lambda c: c.delete("/api/v1/messages"))
        events = [line for line in lines if line.startswith(("event:", "data:"))]
        assert events[0] == "event: new"
        assert json.loads(events[1].removeprefix("data: "))["Subject"] == "live"
        assert events[2:] == ["event: delete", 'data: {"IDs": null}']


async def test_unknown_message_is_404(serving: Serving) -> None:
    with trio.fail_after(30):
        for path in ("", "/raw", "/html", "/headers", "/part/1"):
            assert (await _get(serving, f"/api/v1/message/nope{path}")).status_code == 404


async def test_the_openapi_document_is_valid_and_describes_every_route(serving: Serving) -> None:
    with trio.fail_after(30):
        document = (await _get(serving, "/api/v1/openapi.json")).json()
    validate(document)
    routes = {
        route.path.replace("{id}", "{ID}").replace("{part}", "{PartID}")  # type: ignore[attr-defined]  # Starlette's Route
        for route in inbox_app(serving.inbox).routes
    }
    assert routes - {"/", "/static/{name}"} == set(document["paths"])


async def test_messages_survive_a_restart(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with serve_inbox(tmp_path) as first:
            await first.send(message("before the restart"))
        async with serve_inbox(tmp_path) as second:
            listing = (await _get(second, "/api/v1/messages")).json()
        assert [m["Subject"] for m in listing["messages"]] == ["before the restart"]


async def test_the_cap_flag_drops_the_oldest(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with serve_inbox(tmp_path, "--capture-max-messages", "2") as running:
            for subject in ("a", "b", "c"):
                await running.send(message(subject))
            listing = (await _get(running, "/api/v1/messages")).json()
        assert [m["Subject"] for m in listing["messages"]] == ["c", "b"]


async def test_cid_images_point_at_the_messages_own_parts(serving: Serving) -> None:
    msg = message("Logo", html='<p>Hi</p><img src="cid:logo@x.example">')
    html_part = msg.get_body(("html",))
    assert isinstance(html_part, email.message.EmailMessage)
    html_part.add_related(b"\x89PNG fake", maintype="image", subtype="png", cid="<logo@x.example>")
    with trio.fail_after(30):
        await serving.send(msg)
        [entry] = (await _get(serving, "/api/v1/messages")).json()["messages"]
        full = (await _get(serving, f"/api/v1/message/{entry['ID']}")).json()
        [inline] = full["Inline"]
        assert inline["ContentID"] == "logo@x.example"
        html = (await _get(serving, f"/api/v1/message/{entry['ID']}/html")).text
        link = f"/api/v1/message/{entry['ID']}/part/{inline['PartID']}"
        assert f'src="{link}"' in html
        assert (await _get(serving, link)).content == b"\x89PNG fake"


async def test_an_attachment_name_outside_ascii_downloads(serving: Serving) -> None:
    with trio.fail_after(30):
        await serving.send(message("Names", attachment=('fa"cture\r\n–été.pdf', b"x")))
        [entry] = (await _get(serving, "/api/v1/messages")).json()["messages"]
        full = (await _get(serving, f"/api/v1/message/{entry['ID']}")).json()
        [attachment] = full["Attachments"]
        part = await _get(serving, f"/api/v1/message/{entry['ID']}/part/{attachment['PartID']}")
    assert part.content == b"x"
    disposition = part.headers["content-disposition"]
    assert disposition == (
        'attachment; filename="facturet.pdf"; '
        "filename*=UTF-8''fa%22cture%0D%0A%E2%80%93%C3%A9t%C3%A9.pdf"
    )
