"""The operator's mail log: one INFO line per connection, transaction, refusal, relay outcome.

Each line is ``key=value`` pairs in a fixed order, under the logger
``mailio_trio.mail``, with Postfix's names where Postfix has one (``client=``,
``from=``, ``to=``, ``size=``, ``nrcpt=``, ``relay=``, ``delay=``, ``dsn=``,
``status=``), so ``grep 'status=refused'`` or ``grep 'from=<a@example.com>'``
finds what an operator asks about. A value with a space, a quote, a ``=``,
a backslash or a control character is written as a JSON string (``"..."``),
so a line always splits back into the same pairs and a client cannot forge a
field or a line. The same fields are in the record as ``record.fields``,
which ``--log-format json`` writes as keys of their own.

Cost: callers check ``MAIL_LOG.isEnabledFor(logging.INFO)`` first and build
a line once per transaction, refusal or connection; nothing here runs per
accepted command. See ``docs/logging.md``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["MAIL_LOG", "addresses", "emit", "format_fields", "human_time"]

MAIL_LOG = logging.getLogger("mailio_trio.mail")

_BARE = re.compile(r'[^\s"=\\\x00-\x1f\x7f-\x9f]+')

Value = str | int | float | None


def _value(value: str | int | float) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def format_fields(fields: Mapping[str, Value]) -> str:
    """``key=value ...``; ``None`` values are left out."""
    return " ".join(f"{key}={_value(value)}" for key, value in fields.items() if value is not None)


def addresses(items: Iterable[object]) -> str:
    """Postfix's form for a list of mailboxes: ``<a@x>,<b@y>``."""
    return ",".join(f"<{item}>" for item in items)


def human_time(timestamp: float) -> str:
    """A Unix time as ``2026-12-02T10:04:05Z`` (UTC, whole seconds)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit(
    fields: Mapping[str, Value], *, logger: logging.Logger = MAIL_LOG, level: int = logging.INFO
) -> None:
    """Log ``fields`` as one line; the caller has checked ``logger.isEnabledFor(level)``."""
    kept = {key: value for key, value in fields.items() if value is not None}
    logger.log(level, "%s", format_fields(kept), extra={"fields": kept})
