"""mailio_trio: a Trio SMTP server whose every command runs through a chain of handlers."""

# General layout (docs/architecture.md has the whole map and the life of a command):
#
# protocol/ is the sans-I/O SMTP core for both roles; config/ is a leaf holding
# Config and every section; client, dns, tls, message, networks and abuse sit on
# those; mailauth/ checks and signs email authentication; chain.py is the handler
# chain; plugins/ (one module per plugin) and relay/ (spool, schedule, delivery,
# bounces) build on the chain; server/ runs listeners, sessions and connections
# and registers the plugins; cli/ and testing/ sit on top. Imports point one way,
# down this list (tests/test_layering.py). This module only re-exports the public API.

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from mailio_trio._handler_session import ClientInfo as ClientInfo
from mailio_trio.chain import Chain as Chain
from mailio_trio.chain import ChainError as ChainError
from mailio_trio.chain import Handler as Handler
from mailio_trio.chain import HandlerSession as HandlerSession
from mailio_trio.chain import Request as Request
from mailio_trio.chain import Response as Response
from mailio_trio.config import Config as Config
from mailio_trio.config import ConfigError as ConfigError
from mailio_trio.config import DnsConfig as DnsConfig
from mailio_trio.config import Limits as Limits
from mailio_trio.message import Envelope as Envelope
from mailio_trio.message import Message as Message
from mailio_trio.protocol import Address as Address
from mailio_trio.protocol import Reply as Reply
from mailio_trio.server import Server as Server
from mailio_trio.server._session import Session as Session
from mailio_trio.server._submit import ApiUser as ApiUser
from mailio_trio.server._submit import RecipientOutcome as RecipientOutcome
from mailio_trio.server._submit import SubmissionRefused as SubmissionRefused
from mailio_trio.server._submit import SubmissionResult as SubmissionResult

try:
    __version__ = version("mailio-trio")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Address",
    "ApiUser",
    "Chain",
    "ChainError",
    "ClientInfo",
    "Config",
    "ConfigError",
    "DnsConfig",
    "Envelope",
    "Handler",
    "HandlerSession",
    "Limits",
    "Message",
    "RecipientOutcome",
    "Reply",
    "Request",
    "Response",
    "Server",
    "Session",
    "SubmissionRefused",
    "SubmissionResult",
    "__version__",
]
