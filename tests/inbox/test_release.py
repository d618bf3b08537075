"""``POST /api/v1/message/{ID}/release``: a captured message sent on, byte for byte."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from inbox_serving import message, serve_inbox

from mailio_trio.testing import start_capturing_server

if TYPE_CHECKING:
    from pathlib import Path


def _without_received(raw: bytes) -> bytes:
    # The receiving server puts its own Received: line (one header, maybe folded) first.
    assert raw.startswith(b"Received:")
    lines = raw.split(b"\r\n")
    rest = 1
    while lines[rest][:1] in (b" ", b"\t"):
        rest += 1
    return b"\r\n".join(lines[rest:])


async def test_release_sends_the_stored_bytes_to_the_configured_server(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            target = await start_capturing_server(nursery)
            flags = ("--release-to", f"127.0.0.1:{target.port}")
            async with serve_inbox(tmp_path, *flags) as serving:
                await serving.send(message("Release me"))
                await serving.inbox.wait_for_count(1)
                with serving.client() as http:
                    stored = (await trio.to_thread.run_sync(http.get, "/api/v1/messages")).json()
                    msg_id = stored["messages"][0]["ID"]
                    raw = (
                        await trio.to_thread.run_sync(http.get, f"/api/v1/message/{msg_id}/raw")
                    ).content

                    def post(body: object) -> tuple[int, str]:
                        r = http.post(f"/api/v1/message/{msg_id}/release", json=body)
                        return r.status_code, r.text

                    assert await trio.to_thread.run_sync(post, {"To": ["bob@example.net"]}) == (
                        200,
                        "ok",
                    )
                    [got] = await target.wait_for(1)
                    assert _without_received(got.raw) == raw
                    assert [str(r) for r in got.envelope.recipients] == ["bob@example.net"]
                    assert str(got.envelope.sender) == "app@dev.example"

                    status, _ = await trio.to_thread.run_sync(post, {"To": []})
                    assert status == 400
                    target.fail_next("rcpt", 550, "no such user here")
                    status, text = await trio.to_thread.run_sync(post, {"To": ["gone@example.net"]})
                    assert status == 502
                    assert "no such user here" in text
            nursery.cancel_scope.cancel()


async def test_release_without_configuration_is_400(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with serve_inbox(tmp_path) as serving:
            await serving.send(message("Stay here"))
            await serving.inbox.wait_for_count(1)
            with serving.client() as http:

                def post() -> tuple[int, str]:
                    r = http.post("/api/v1/message/latest/release", json={"To": ["b@example.net"]})
                    return r.status_code, r.text

                assert await trio.to_thread.run_sync(post) == (400, "release is not configured")
