"""The web inbox in a real browser: Debian's chromium, driven by Playwright's sync API.

Playwright uses the SYSTEM browser (``executable_path``); ``playwright install``
is never run, and nothing is downloaded. Every request the page makes is
routed: those to our loopback server go on, anything else is recorded and
aborted, so no test traffic leaves the machine.

Where chromium or Playwright is missing these tests skip, unless
``MAILIO_REQUIRE_CHROMIUM=1`` (set by ``.ci/run``), where they fail instead.
``MAILIO_UPDATE_SCREENSHOTS=1`` rewrites docs/images/inbox*.png.

The browser runs in a worker thread (Playwright's sync API has its own
event loop); the server stays in the test's Trio run, and the thread sends
mail through ``trio.from_thread``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
from inbox_serving import Serving, message, serve_inbox

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CHROMIUM = os.environ.get("MAILIO_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("MAILIO_REQUIRE_CHROMIUM") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PDF = b"%PDF-1.4\n\x00\x01\x02 binary attachment \xff\xfe\r\n"
REMOTE_IMAGE = "http://images.example.invalid/tracker.png"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; never playwright install)"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture
async def serving(tmp_path: Path) -> AsyncIterator[Serving]:
    missing = _missing()
    if missing is not None:
        if REQUIRED:
            pytest.fail(f"MAILIO_REQUIRE_CHROMIUM=1: {missing}")
        pytest.skip(missing)
    async with serve_inbox(tmp_path) as running:
        yield running


def _messages() -> list[Any]:
    return [
        message("Welcome aboard", text="Have a kiwi."),
        message(
            "Your invoice",
            sender="Billing <billing@dev.example>",
            to="Bob <bob@example.com>",
            text="Your invoice is attached.",
            html=(
                "<h1>Invoice</h1><p>Your invoice is <b>attached</b>.</p>"
                f'<img alt="tracker" src="{REMOTE_IMAGE}">'
            ),
            attachment=("invoice.pdf", PDF),
        ),
        message("Password reset", to="carol@example.com", text="Use the reset link."),
    ]


def _drive(serving: Serving, downloads: Path) -> dict[str, Any]:
    from playwright.sync_api import expect, sync_playwright

    outside: list[str] = []
    finished: list[str] = []
    failed: list[tuple[str, str]] = []
    update = os.environ.get("MAILIO_UPDATE_SCREENSHOTS") == "1"

    def route(route: Any) -> None:
        if route.request.url.startswith(serving.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(
                accept_downloads=True, viewport={"width": 1280, "height": 800}
            )
            context.route("**/*", route)
            page = context.new_page()
            # Playwright reports a request the page's CSP blocked as a failed one,
            # before any network: the route never sees it, nothing finishes.
            page.on("requestfinished", lambda request: finished.append(request.url))
            page.on(
                "requestfailed",
                lambda request: failed.append((request.url, request.failure or "")),
            )
            page.goto(serving.url + "/")
            expect(page.locator("#status")).to_have_text("live")
            rows = page.locator("#messages li")
            expect(rows).to_have_count(0)
            for count, msg in enumerate(_messages(), start=1):
                trio.from_thread.run(serving.send, msg)
                expect(rows).to_have_count(count)  # live, over the event stream: no reload
            expect(rows.first).to_contain_text("Password reset")
            if update:
                page.screenshot(path=SCREENSHOTS / "inbox.png")

            rows.filter(has_text="Your invoice").click()
            expect(page.locator("#m-subject")).to_have_text("Your invoice")
            frame = page.frame_locator("#html-frame")
            expect(frame.locator("b")).to_have_text("attached")
            sandbox = page.locator("#html-frame").get_attribute("sandbox")
            blocked_image_loaded = frame.locator("img").evaluate("img => img.naturalWidth")
            if update:
                page.screenshot(path=SCREENSHOTS / "inbox-message.png")
            remote_before_toggle = [u for u in outside + finished if "example.invalid" in u]
            blocked = [failure for url, failure in failed if url == REMOTE_IMAGE]

            with page.expect_download() as download_info:
                page.locator("#attachments a").click()
            download = download_info.value
            saved = downloads / download.suggested_filename
            download.save_as(saved)

            # The toggle reloads the frame allowing remote images: the browser now
            # asks for the image (and our route aborts it: no traffic leaves).
            with page.expect_request(REMOTE_IMAGE):
                page.locator("#remote-images").check()
            page.locator("#remote-images").uncheck()

            page.locator("[data-tab=raw]").click()
            raw_text = page.locator("#tab-raw").inner_text()
            page.locator("[data-tab=session]").click()
            session_text = page.locator("#tab-session").inner_text()

            page.locator("#delete-one").click()
            expect(rows).to_have_count(2)
            page.locator("#search").fill("subject:password")
            page.locator("#search").press("Enter")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("Password reset")
            page.locator("#search").fill("")
            page.locator("#search").press("Enter")
            expect(rows).to_have_count(2)
            expect(page.locator("#message-pane")).to_be_hidden()
            remaining = rows.all_inner_texts()
        finally:
            browser.close()
    return {
        "sandbox": sandbox,
        "remote_before_toggle": remote_before_toggle,
        "blocked": blocked,
        "blocked_image_width": blocked_image_loaded,
        "download": saved.read_bytes(),
        "download_name": download.suggested_filename,
        "outside": outside,
        "raw": raw_text,
        "session": session_text,
        "remaining": remaining,
    }


async def test_the_inbox_in_a_browser(serving: Serving, tmp_path: Path) -> None:
    with trio.fail_after(120):
        seen = await trio.to_thread.run_sync(_drive, serving, tmp_path)
    assert seen["sandbox"] == ""
    assert seen["remote_before_toggle"] == []  # the CSP stopped it before any request
    assert seen["blocked"], "the page never even tried the remote image"
    assert seen["blocked_image_width"] == 0
    assert (seen["download_name"], seen["download"]) == ("invoice.pdf", PDF)
    assert seen["outside"] == [REMOTE_IMAGE]  # only after the toggle, and aborted
    assert "Subject: Your invoice" in seen["raw"]
    assert "client.test" in seen["session"]
    assert not any("Your invoice" in text for text in seen["remaining"])
    listing, _ = await serving.inbox.page(0, 10)
    assert [m.summary["Subject"] for m in listing] == ["Password reset", "Welcome aboard"]
