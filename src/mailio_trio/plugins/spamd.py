"""Score each message with SpamAssassin's spamd (``queue/spamd``).

Speaks SPAMC/1.5 over TCP (``SYMBOLS`` by default, or ``REPORT``): the
message as stored (our ``Received:`` line first) is sent with its
``Content-length``; spamd answers ``Spam: True ; 1002.3 / 5.0`` and the
symbols (or report). The result is stored for later ``queue`` handlers with
``res.set``, under ``"queue/spamd"``::

    {"spam": True, "score": 1002.3, "threshold": 5.0,
     "symbols": ["GTUBE", ...], "report": None}

The maildir plugin files ``spam`` messages into ``.Junk``; it must run after
this handler (register it later, or order it ``after=("spamd",)``).

Errors fail open, as mail-io did: spamd down, slow (``timeout``) or answering
nonsense means the message is accepted unscanned and a WARNING is logged
(``spam`` is then ``False`` and ``score`` ``None``). Messages over
``max_size`` octets are not scanned (spamc's 500 KB default): spam is small,
and scanning a 100 MB attachment costs more than it tells.

``reject_above``: a score above it rejects the message with ``550 5.7.1``
(before anything stored it). ``add_headers``: ``X-Spam-Flag``,
``X-Spam-Score`` and ``X-Spam-Status`` are written at the top of the message,
and any ``X-Spam-*`` headers the client sent are removed (a spammer's own
``X-Spam-Flag: NO`` must not reach a mail filter). Because the spool file
*is* the message later handlers store, the file is rewritten in place
(a new file renamed over the old one) before this handler accepts; handlers
that run earlier see the message without those headers.

Config (``Config.plugins["queue/spamd"]``), enabled by the key's presence:
``host`` (default ``127.0.0.1``), ``port`` (783), ``timeout`` (10 s),
``max_size`` (512000), ``verb`` (``SYMBOLS`` | ``REPORT``), ``user`` (spamd's
per-user preferences; default none), ``reject_above`` (score; default none),
``add_headers`` (default false).
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import attrs
import trio

from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.config import ConfigError
from mailio_trio.plugins._settings import Settings, positive

KEY = "queue/spamd"

# A spamd reply is headers plus symbols or a report: small. Anything bigger is not spamd.
_MAX_RESPONSE = 1024 * 1024
_SPAM_HEADER = re.compile(
    rb"^Spam:\s*(True|False|Yes|No)\s*;\s*(-?[0-9.]+)\s*/\s*(-?[0-9.]+)\s*$", re.IGNORECASE
)
_STATUS_LINE = re.compile(rb"^SPAMD/(\d+\.\d+)\s+(\d+)\s*(.*)$")


class SpamdVerb(enum.Enum):
    SYMBOLS = "SYMBOLS"
    REPORT = "REPORT"


class SpamdError(Exception):
    """spamd could not be reached or answered something we cannot use."""


def _verb(value: Any) -> SpamdVerb:
    if isinstance(value, SpamdVerb):
        return value
    try:
        return SpamdVerb(str(value).upper())
    except ValueError:
        raise ConfigError(
            f"plugins.{KEY}.verb = {value!r}: must be 'SYMBOLS' or 'REPORT'"
        ) from None


def _port(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"plugins.{KEY}.port = {value!r}: must be a port number 1..65535")


def _optional_score(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"plugins.{KEY}.{attribute.name} = {value!r}: must be a number")


@attrs.frozen(kw_only=True)
class SpamdConfig:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=783, validator=_port)
    timeout: float = attrs.field(default=10.0, validator=positive(KEY))
    """Seconds for connecting, sending and the verdict together (mail-io's 10 s)."""
    max_size: int = attrs.field(default=512_000, validator=positive(KEY))
    verb: SpamdVerb = attrs.field(default=SpamdVerb.SYMBOLS, converter=_verb)
    user: str | None = None
    reject_above: float | None = attrs.field(default=None, validator=_optional_score)
    add_headers: bool = False


@attrs.frozen(kw_only=True)
class SpamdResult:
    spam: bool
    score: float | None
    threshold: float | None
    symbols: tuple[str, ...] = ()
    report: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "spam": self.spam,
            "score": self.score,
            "threshold": self.threshold,
            "symbols": list(self.symbols),
            "report": self.report,
        }


UNSCANNED = SpamdResult(spam=False, score=None, threshold=None)


def build_request(verb: SpamdVerb, message: bytes, user: str | None = None) -> bytes:
    """A SPAMC/1.5 request (spamd's ``PROTOCOL`` file): headers, blank line, message."""
    headers = [f"{verb.value} SPAMC/1.5", f"Content-length: {len(message)}"]
    if user:
        headers.append(f"User: {user}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + message


def parse_response(data: bytes, verb: SpamdVerb) -> SpamdResult:
    """Parse spamd's answer to ``verb``.

    Raises:
      SpamdError: Not a successful SPAMD reply with a ``Spam:`` header.
    """
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    lines = head.splitlines()
    if not lines or not (status := _STATUS_LINE.match(lines[0].strip())):
        raise SpamdError(f"not a spamd reply: {data[:80]!r}")
    if status.group(2) != b"0":
        raise SpamdError(f"spamd error {status.group(2).decode()}: {status.group(3)[:80]!r}")
    spam = next((m for line in lines[1:] if (m := _SPAM_HEADER.match(line.strip()))), None)
    if spam is None:
        raise SpamdError(f"spamd reply without a Spam header: {head[:200]!r}")
    text = body.decode("utf-8", "replace").strip()
    symbols: tuple[str, ...] = ()
    report = None
    if verb is SpamdVerb.SYMBOLS:
        symbols = tuple(s.strip() for s in text.split(",") if s.strip())
    else:
        report = text
    return SpamdResult(
        spam=spam.group(1).lower() in (b"true", b"yes"),
        score=float(spam.group(2)),
        threshold=float(spam.group(3)),
        symbols=symbols,
        report=report,
    )


async def scan(cfg: SpamdConfig, message: bytes) -> SpamdResult:
    """Ask spamd about ``message``.

    Raises:
      SpamdError: Connection refused or lost, timeout, or an unusable answer.
    """
    request = build_request(cfg.verb, message, cfg.user)
    with trio.move_on_after(cfg.timeout):
        try:
            stream = await trio.open_tcp_stream(cfg.host, cfg.port)
            async with stream:
                await stream.send_all(request)
                await stream.send_eof()
                response = bytearray()
                while chunk := await stream.receive_some(65536):
                    response += chunk
                    if len(response) > _MAX_RESPONSE:
                        raise SpamdError("spamd reply too large")
        except (OSError, trio.BrokenResourceError) as exc:
            raise SpamdError(f"spamd at {cfg.host}:{cfg.port}: {exc}") from None
        return parse_response(bytes(response), cfg.verb)
    raise SpamdError(f"spamd at {cfg.host}:{cfg.port} took over {cfg.timeout}s")


def spam_headers(result: SpamdResult) -> bytes:
    """``X-Spam-*`` header lines in SpamAssassin's own format."""
    flag = "YES" if result.spam else "NO"
    tests = ",".join(result.symbols) or "none"
    status = (
        f"{'Yes' if result.spam else 'No'}, score={result.score} "
        f"required={result.threshold} tests={tests}"
    )
    lines = [f"X-Spam-Flag: {flag}", f"X-Spam-Score: {result.score}", f"X-Spam-Status: {status}"]
    # Fold the symbol list so no header line passes RFC 5322's 78-character advice much.
    folded = []
    for line in lines:
        while len(line) > 78 and (cut := line.rfind(",", 0, 78)) > 0:
            folded.append(line[: cut + 1])
            line = "\t" + line[cut + 1 :]
        folded.append(line)
    return ("\r\n".join(folded) + "\r\n").encode("ascii")


def rewrite_with_headers(path: Path, headers: bytes) -> int:
    """Replace ``path`` by ``headers`` + its content without any ``X-Spam-*`` headers.

    Blocking (run it in a thread). Returns the new size. The new file is
    written beside the old one and renamed over it, so the message is never
    half-written.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=".spamd-", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            out.write(headers)
            dropping = False
            for line in src:
                if line in (b"\r\n", b"\n"):
                    out.write(line)
                    break
                if line[:1] in (b" ", b"\t"):  # a continuation of the previous header
                    if not dropping:
                        out.write(line)
                    continue
                dropping = line.lower().startswith(b"x-spam-")
                if not dropping:
                    out.write(line)
            while chunk := src.read(1024 * 1024):
                out.write(chunk)
            size = out.tell()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


async def spamd(req: Request, res: Response) -> None:
    cfg = req.config_as(SpamdConfig)
    message = req.message
    assert message is not None
    if message.size > cfg.max_size:
        res.log.info(
            "not scanning %s: %d octets > max_size %d", message.id, message.size, cfg.max_size
        )
        res.set(UNSCANNED.as_dict())
        res.accept()
        return
    data = await trio.to_thread.run_sync(message.read_bytes)
    try:
        result = await scan(cfg, data)
    except SpamdError as exc:
        res.log.warning("spam check skipped for %s, accepting unscanned: %s", message.id, exc)
        res.set(UNSCANNED.as_dict())
        res.accept()
        return
    res.set(result.as_dict())
    res.log.info(
        "spamd: %s score=%s/%s %s",
        "spam" if result.spam else "ham",
        result.score,
        result.threshold,
        ",".join(result.symbols),
    )
    if (
        cfg.reject_above is not None
        and result.score is not None
        and result.score > cfg.reject_above
    ):
        res.reject(550, f"Message rejected as spam (score {result.score})", "5.7.1")
        return
    if cfg.add_headers:
        size = await trio.to_thread.run_sync(
            rewrite_with_headers, message.path, spam_headers(result)
        )
        message.rewritten(size)
    res.accept()


# mail-io's option names, for the error that says what ours are.
SETTINGS = Settings(KEY, SpamdConfig, {"baseScore": "reject_above"})


def register(chain: Chain) -> None:
    SETTINGS.check(chain)
    chain.add(Handler(command="queue", name="spamd", func=spamd))
