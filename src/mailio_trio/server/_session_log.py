"""The session's lines in the mail log (``mailio_trio._maillog``): who, what, and the answer.

One line per connection (when it ends), per message (the ``queue`` chain's
answer) and per refusal of any other command. Built only when the mail log
is enabled at INFO, and only on those three paths: an accepted MAIL or RCPT
costs nothing here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailio_trio._maillog import MAIL_LOG, addresses, emit

if TYPE_CHECKING:
    from mailio_trio._maillog import Value
    from mailio_trio.chain import Request
    from mailio_trio.message import Message
    from mailio_trio.protocol import Reply
    from mailio_trio.server._session import Session

__all__ = ["log_connection", "log_message", "log_refusal", "wanted"]


def wanted() -> bool:
    return MAIL_LOG.isEnabledFor(20)  # logging.INFO, without the attribute lookup


def _client(session: Session) -> str:
    client = session.client
    ip = f"[{client.address}]"
    return f"{client.hostname or 'unknown'}{ip}:{client.port}"


def _who(session: Session) -> dict[str, Value]:
    user = session.user
    return {
        "client": _client(session),
        "helo": session.client.helo,
        "tls": session.tls.version if session.tls is not None else None,
        "user": getattr(user, "username", None) if user is not None else None,
    }


def _answer(reply: Reply) -> dict[str, Value]:
    return {"code": reply.code, "dsn": reply.enhanced, "reply": " ".join(reply.text.split())}


def log_refusal(session: Session, command: str, reply: Reply, req: Request | None = None) -> None:
    """``event=reject``: a command refused (or a session ended) with a 4xx/5xx."""
    envelope = session.envelope
    sender = req.sender if req is not None and req.sender is not None else envelope.sender
    has_sender = (req is not None and req.sender is not None) or envelope.has_sender
    to = req.to if req is not None else None
    emit(
        {
            "event": "reject",
            "session": f"{session.id}.{session.transaction}",
            **_who(session),
            "command": command.upper(),
            "from": f"<{sender or ''}>" if has_sender else None,
            "to": f"<{to}>" if to is not None else None,
            "status": "refused",
            **_answer(reply),
        }
    )


def log_message(session: Session, message: Message, reply: Reply) -> None:
    """``event=message``: a received message, accepted (stored, queued) or refused."""
    envelope = message.envelope
    emit(
        {
            "event": "message",
            "session": session.id,
            "queue_id": message.id,
            **_who(session),
            "from": f"<{envelope.sender or ''}>",
            "to": addresses(envelope.recipients),
            "nrcpt": len(envelope.recipients),
            "size": message.size,
            "status": "accepted" if reply.is_positive else "refused",
            **_answer(reply),
        }
    )


def log_connection(session: Session, seconds: float) -> None:
    """``event=disconnect``: one line per connection, when it ends."""
    counters = session.counters
    emit(
        {
            "event": "disconnect",
            "session": session.id,
            **_who(session),
            "commands": counters.commands,
            "messages": counters.messages,
            "refused": counters.refused,
            "duration": f"{seconds:.3f}s",
        }
    )
