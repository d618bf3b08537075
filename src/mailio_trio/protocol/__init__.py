"""The sans-I/O SMTP core: bytes in, commands, bodies and replies out.

Nothing in this package does I/O, reads a clock or imports trio; the session
(``mailio_trio.server``) and the client (``mailio_trio.client``) drive it.
``mailio_trio.protocol.catalogue`` holds the replies the server gives from
more than one place (and tests compare against).
"""

from __future__ import annotations

from mailio_trio.protocol.chunking import Bdat as Bdat
from mailio_trio.protocol.chunking import BdatSyntaxError as BdatSyntaxError
from mailio_trio.protocol.chunking import ChunkReader as ChunkReader
from mailio_trio.protocol.chunking import parse_bdat as parse_bdat
from mailio_trio.protocol.commands import Address as Address
from mailio_trio.protocol.commands import Command as Command
from mailio_trio.protocol.commands import MailFrom as MailFrom
from mailio_trio.protocol.commands import RcptTo as RcptTo
from mailio_trio.protocol.commands import Verb as Verb
from mailio_trio.protocol.commands import parse_command as parse_command
from mailio_trio.protocol.commands import parse_helo_name as parse_helo_name
from mailio_trio.protocol.commands import parse_mail_from as parse_mail_from
from mailio_trio.protocol.commands import parse_rcpt_to as parse_rcpt_to
from mailio_trio.protocol.data import BareLineEndings as BareLineEndings
from mailio_trio.protocol.data import DataReader as DataReader
from mailio_trio.protocol.data import DotStuffer as DotStuffer
from mailio_trio.protocol.data import crlf_line_endings as crlf_line_endings
from mailio_trio.protocol.data import data_problem as data_problem
from mailio_trio.protocol.data import dot_stuff as dot_stuff
from mailio_trio.protocol.errors import ClientProtocolError as ClientProtocolError
from mailio_trio.protocol.errors import ConnectionLost as ConnectionLost
from mailio_trio.protocol.errors import ProtocolUsageError as ProtocolUsageError
from mailio_trio.protocol.errors import ServerProtocolError as ServerProtocolError
from mailio_trio.protocol.lines import LineSplitter as LineSplitter
from mailio_trio.protocol.lines import Need as Need
from mailio_trio.protocol.lines import OverlongLine as OverlongLine
from mailio_trio.protocol.negotiate import mail_parameters as mail_parameters
from mailio_trio.protocol.replies import Reply as Reply
from mailio_trio.protocol.replies import ReplyReader as ReplyReader

__all__ = [
    "Address",
    "BareLineEndings",
    "Bdat",
    "BdatSyntaxError",
    "ChunkReader",
    "ClientProtocolError",
    "Command",
    "ConnectionLost",
    "DataReader",
    "DotStuffer",
    "LineSplitter",
    "MailFrom",
    "Need",
    "OverlongLine",
    "ProtocolUsageError",
    "RcptTo",
    "Reply",
    "ReplyReader",
    "ServerProtocolError",
    "Verb",
    "crlf_line_endings",
    "data_problem",
    "dot_stuff",
    "mail_parameters",
    "parse_bdat",
    "parse_command",
    "parse_helo_name",
    "parse_mail_from",
    "parse_rcpt_to",
]
