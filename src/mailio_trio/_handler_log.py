"""The log a handler writes to (``res.log``): every line tagged with its session.

Beside the chain, below the server: ``chain.Response.log`` hands one out, and
the session builds its own from the same class.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from mailio_trio._handler_session import HandlerSession

__all__ = ["VERBOSE", "SessionLog"]


VERBOSE = 15
"""mail-io's ``verbose`` level, between DEBUG (10) and INFO (20): ``res.log.verbose``."""
logging.addLevelName(VERBOSE, "VERBOSE")


class SessionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with ``[session.transaction command/handler]``.

    Has mail-io's level names too: ``verbose`` (``VERBOSE`` = 15) and ``warn``,
    an alias of ``warning`` (``LoggerAdapter.warn`` is deprecated, then gone).
    """

    def __init__(self, log: logging.Logger, session: HandlerSession, tag: str = "") -> None:
        super().__init__(log, {})
        self.session = session
        self.tag = tag

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        s = self.session
        extra = {"session": s.id, "transaction": s.transaction, "handler": self.tag}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        tag = f" {self.tag}" if self.tag else ""
        return f"[{s.id}.{s.transaction}{tag}] {msg}", kwargs

    def verbose(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Log at ``VERBOSE`` (mail-io's level between debug and info)."""
        kwargs.setdefault("stacklevel", 2)  # the caller's line, not this one
        self.log(VERBOSE, msg, *args, **kwargs)

    def warn(self, msg: object, *args: object, **kwargs: Any) -> None:
        """``warning`` under mail-io's name, without a deprecation warning."""
        kwargs.setdefault("stacklevel", 2)
        self.log(logging.WARNING, msg, *args, **kwargs)
