"""The inbox over HTTP: Starlette on Hypercorn's Trio worker (``pip install mailio-trio[web]``).

Starlette is built on anyio, which runs on Trio; Hypercorn's ``hypercorn.trio.serve``
runs in the SMTP server's own nursery, so the web app, the capture handler and
the store's events share one Trio run.

Security: the inbox shows mail from anyone who can reach the SMTP port. A
message's HTML is served only with its own Content-Security-Policy
(``default-src 'none'``: no scripts, no fetches; ``img-src 'self' data:``:
remote images blocked unless asked for) plus ``sandbox``, and the page frames
it in ``<iframe sandbox="">``. Parts download as attachments with
``nosniff``, so an HTML attachment never renders on our origin. Listen on
loopback: there is no login.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from importlib import resources
from typing import TYPE_CHECKING, Any

import trio
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from mailio_trio.client import SMTPError
from mailio_trio.inbox._api import html_with_parts, list_json, message_json, summary_json
from mailio_trio.inbox._chaos_json import chaos_json, parse_chaos_json
from mailio_trio.inbox._openapi import openapi
from mailio_trio.inbox._parse import parse, part_by_id
from mailio_trio.inbox._release import recipients_from_body, release

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

    from mailio_trio.inbox._inbox import Inbox, InboxEvent
    from mailio_trio.testing import Faults

__all__ = ["HTML_CSP", "PAGE_CSP", "REMOTE_HTML_CSP", "inbox_app", "serve_web"]

logger = logging.getLogger("mailio_trio.inbox.web")

HTML_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
REMOTE_HTML_CSP = "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; sandbox"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none';"
    " frame-ancestors 'none'"
)
_NOSNIFF = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
MAX_WAIT = 300.0  # seconds a long poll may ask for
KEEPALIVE = 15.0  # seconds between comments on a quiet event stream (proxies drop idle ones)
_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}


def _int(request: Request, name: str, default: int, *, low: int = 0, high: int = 10**9) -> int:
    value = request.query_params.get(name, "")
    if not value.lstrip("-").isdigit():
        return default
    return max(low, min(high, int(value)))


def _attachment(filename: str) -> str:
    """``Content-Disposition`` for a client-chosen name: ASCII fallback, RFC 6266 ``filename*``."""
    plain = "".join(c for c in filename if c.isascii() and c.isprintable() and c not in '"\\')
    disposition = f'attachment; filename="{plain or "part"}"'
    if plain != filename:
        disposition += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
    return disposition


def _not_found(message_id: str) -> Response:
    return PlainTextResponse(f"message {message_id!r} not found", status_code=404)


def inbox_app(inbox: Inbox, chaos: Faults | None = None) -> Starlette:
    """The ASGI application: the web inbox at ``/`` and the API under ``/api/v1/``.

    ``chaos`` is the SMTP server's fault table, for ``/api/v1/chaos``; without
    it that call answers ``400``, as Mailpit's does when chaos is not enabled.
    """

    async def _listing(request: Request, query: str) -> dict[str, Any]:
        start = _int(request, "start", 0)
        limit = _int(request, "limit", 50, low=1, high=1000)
        messages, matching = await inbox.page(start, limit, query)
        total, unread, _ = await inbox.counts()
        return list_json(messages, total=total, unread=unread, matching=matching, start=start)

    async def messages(request: Request) -> Response:
        if request.method == "DELETE":
            body = await request.body()
            ids: list[str] | None = None
            if body.strip():
                try:
                    table = json.loads(body)
                except ValueError:
                    return PlainTextResponse("body: not JSON", status_code=400)
                raw_ids = table.get("IDs") if isinstance(table, dict) else None
                if raw_ids is not None and not (
                    isinstance(raw_ids, list) and all(isinstance(i, str) for i in raw_ids)
                ):
                    return PlainTextResponse("IDs: a list of message IDs", status_code=400)
                ids = raw_ids or None  # Mailpit: an empty list deletes everything too
            await inbox.delete(ids)
            return PlainTextResponse("ok")
        return JSONResponse(await _listing(request, ""))

    async def search(request: Request) -> Response:
        query = request.query_params.get("query", "")
        return JSONResponse(await _listing(request, query))

    async def _stored(request: Request, *, mark_read: bool = False) -> Any:
        message_id = request.path_params["id"]
        if message_id == "latest":  # Mailpit's alias for the newest message
            newest, _ = await inbox.page(0, 1)
            if not newest:
                return None
            message_id = newest[0].id
        return await inbox.get(message_id, mark_read=mark_read)

    async def message(request: Request) -> Response:
        stored = await _stored(request, mark_read=True)
        if stored is None:
            return _not_found(request.path_params["id"])
        parsed = await trio.to_thread.run_sync(parse, stored.raw)
        return JSONResponse(message_json(stored, parsed))

    async def raw(request: Request) -> Response:
        stored = await _stored(request)
        if stored is None:
            return _not_found(request.path_params["id"])
        # Mailpit's type; the bytes are as received, whatever their charset.
        return Response(stored.raw, media_type="text/plain; charset=utf-8", headers=_NOSNIFF)

    async def release_call(request: Request) -> Response:
        if inbox.release_to is None:
            return PlainTextResponse("release is not configured", status_code=400)
        try:
            table = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("body: not JSON", status_code=400)
        to = recipients_from_body(table)
        if isinstance(to, str):
            return PlainTextResponse(to, status_code=400)
        stored = await _stored(request)
        if stored is None:
            return _not_found(request.path_params["id"])
        try:
            await release(inbox.release_to, stored.sender, to, stored.raw)
        except SMTPError as exc:
            return PlainTextResponse(f"release failed: {exc}", status_code=502)
        return PlainTextResponse("ok")

    async def headers(request: Request) -> Response:
        stored = await _stored(request)
        if stored is None:
            return _not_found(request.path_params["id"])
        parsed = await trio.to_thread.run_sync(parse, stored.raw)
        return JSONResponse(parsed.headers)

    async def part(request: Request) -> Response:
        stored = await _stored(request)
        if stored is None:
            return _not_found(request.path_params["id"])
        found = await trio.to_thread.run_sync(part_by_id, stored.raw, request.path_params["part"])
        if found is None:
            return PlainTextResponse("no such part", status_code=404)
        content, content_type, filename = found
        return Response(
            content,
            media_type=content_type,
            headers={
                **_NOSNIFF,
                "Content-Disposition": _attachment(filename),
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    async def html(request: Request) -> Response:
        stored = await _stored(request)
        if stored is None:
            return _not_found(request.path_params["id"])
        parsed = await trio.to_thread.run_sync(parse, stored.raw)
        remote = request.query_params.get("remote") == "1"
        return Response(
            html_with_parts(stored, parsed),
            media_type="text/html; charset=utf-8",
            headers={
                **_NOSNIFF,
                "Content-Security-Policy": (REMOTE_HTML_CSP if remote else HTML_CSP)
                + "; frame-ancestors 'self'",
            },
        )

    async def wait(request: Request) -> Response:
        count = _int(request, "count", 1, low=1)
        timeout = float(_int(request, "timeout", 30, low=0, high=int(MAX_WAIT)))
        with trio.move_on_after(timeout):
            await inbox.wait_for_count(count)
        listing = await _listing(request, "")
        return JSONResponse(listing, status_code=200 if listing["total"] >= count else 408)

    async def events(request: Request) -> Response:
        return StreamingResponse(
            _event_stream(inbox),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def chaos_call(request: Request) -> Response:
        if chaos is None:
            return PlainTextResponse("chaos is not enabled on this server", status_code=400)
        if request.method == "PUT":
            try:
                settings = parse_chaos_json(json.loads(await request.body()))
            except ValueError as exc:  # json.JSONDecodeError is one
                return PlainTextResponse(f"chaos: {exc}", status_code=400)
            try:
                for stage in {f.stage for f in settings.faults} | {
                    t.stage for t in settings.triggers
                }:
                    chaos.check_stage(stage)  # before anything changes
            except ValueError as exc:
                return PlainTextResponse(f"chaos: {exc}", status_code=400)
            chaos.clear()  # Mailpit: a PUT replaces every trigger
            chaos.apply(settings)
        elif request.method == "DELETE":
            chaos.clear()
        return JSONResponse(chaos_json(chaos))

    async def spec(request: Request) -> Response:
        return JSONResponse(openapi())

    async def index(request: Request) -> Response:
        page = resources.files("mailio_trio.inbox").joinpath("static/index.html").read_bytes()
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": PAGE_CSP},
        )

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return PlainTextResponse("not found", status_code=404)
        body = resources.files("mailio_trio.inbox").joinpath(f"static/{name}").read_bytes()
        return Response(body, media_type=_STATIC[name], headers=_NOSNIFF)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/static/{name}", static),
            Route("/api/v1/messages", messages, methods=["GET", "DELETE"]),
            Route("/api/v1/search", search),
            Route("/api/v1/message/{id}", message),
            Route("/api/v1/message/{id}/raw", raw),
            Route("/api/v1/message/{id}/headers", headers),
            Route("/api/v1/message/{id}/release", release_call, methods=["POST"]),
            Route("/api/v1/message/{id}/html", html),
            Route("/api/v1/message/{id}/part/{part}", part),
            Route("/api/v1/wait", wait),
            Route("/api/v1/events", events),
            Route("/api/v1/chaos", chaos_call, methods=["GET", "PUT", "DELETE"]),
            Route("/api/v1/openapi.json", spec),
        ]
    )


def _sse(event: InboxEvent) -> str:
    if event.kind == "new":
        assert event.message is not None
        data: Any = summary_json(event.message)
    else:
        data = {"IDs": None if event.ids is None else list(event.ids)}
    return f"event: {event.kind}\ndata: {json.dumps(data)}\n\n"


async def _event_stream(inbox: Inbox) -> AsyncIterator[str]:
    """Server-sent events: ``new`` (a list entry) and ``delete`` (``{"IDs": [...] | null}``)."""
    with inbox.subscribe() as changes:
        yield "retry: 1000\n: connected\n\n"
        while True:
            # The yield is outside the cancel scope: a scope must not span a yield.
            event = None
            with trio.move_on_after(KEEPALIVE):
                try:
                    event = await changes.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return  # the store closed, or we fell behind: the browser reconnects
            yield ": keep-alive\n\n" if event is None else _sse(event)


async def serve_web(
    inbox: Inbox,
    host: str,
    port: int,
    *,
    chaos: Faults | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the inbox over HTTP until cancelled; ``task_status`` gets the bound URLs.

    Example::

        urls = await nursery.start(serve_web, inbox, "127.0.0.1", 8025)
    """
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve

    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.errorlog = logger
    config.accesslog = None
    config.graceful_timeout = 1.0  # event streams never end by themselves
    await serve(inbox_app(inbox, chaos), config, task_status=task_status)  # type: ignore[arg-type]  # Starlette is an ASGI app; hypercorn's Framework union misses it
