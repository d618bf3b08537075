"""``mailio-trio send``: submit one message with our own client."""

from __future__ import annotations

import email.policy
import functools
import os
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from mailio_trio.cli._args import EXIT_FAILURE, EXIT_OK, PROG, listen_arg, positive_float
from mailio_trio.config import ConfigError, parse_listen

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run"]

# A password on the command line is visible to every user (ps, /proc): the
# environment or stdin only, as `docker login --password-stdin` does.
PASSWORD_ENV = "MAILIO_PASSWORD"


def _wants_tls(args: argparse.Namespace) -> bool:
    """``--cafile`` and ``--insecure`` say how to check TLS, so they ask for it too."""
    if args.cafile is not None and args.insecure:
        raise ConfigError(f"--insecure: cannot be combined with --cafile {args.cafile}")
    return bool(args.starttls or args.cafile is not None or args.insecure)


def _send_password(args: argparse.Namespace) -> str | None:
    if args.user is not None and not _wants_tls(args):
        raise ConfigError(
            f"--user {args.user}: needs --starttls (or --cafile/--insecure; "
            "a password never goes in clear)"
        )
    if args.user is None:
        if args.password_stdin:
            raise ConfigError("--password-stdin: needs --user")
        return None
    if args.password_stdin:
        if args.body is None and (args.file is None or args.file == "-"):
            raise ConfigError(
                "--password-stdin: stdin would carry both the password and the message; "
                "give the message with --body or --file"
            )
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        raise ConfigError(f"--user {args.user}: set ${PASSWORD_ENV} or use --password-stdin")
    return password


def _one_line(reply: object) -> str:
    return " ".join(str(reply).split())


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, exception groups opened (trio's connect)."""
    found: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo += current.exceptions
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return found


def _cannot_send(server: str, exc: BaseException) -> str:
    """One line for an operator: what went wrong, without our internal SMTP code."""
    causes = _causes(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in causes):
        return f"cannot connect to {server}: connection refused (is the server running?)"
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in causes):
        return (
            f"cannot send via {server}: {_one_line(getattr(exc, 'text', exc))} "
            "(trust its certificate with --cafile PEM, or skip the check with --insecure)"
        )
    return f"cannot send via {server}: {exc}"


def run(args: argparse.Namespace) -> int:
    from mailio_trio import client

    password = _send_password(args)
    tls = _wants_tls(args)
    if args.body is not None:
        text = args.body
    elif args.file is not None and args.file != "-":
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--file {args.file}: cannot read: {exc}") from None
    else:
        text = sys.stdin.read()
    message = EmailMessage()
    message["From"] = args.sender
    message["To"] = ", ".join(args.recipients)
    message["Subject"] = args.subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=args.sender.rpartition("@")[2] or None)
    message.set_content(text)
    host, port = parse_listen(args.server)
    context = None
    if args.cafile is not None:
        try:
            context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--cafile {args.cafile}: cannot load: {exc}") from None
    elif args.insecure:
        context = client.default_tls_context(verify=False)
        print(
            f"{PROG}: warning: --insecure: the server's certificate is not checked; "
            "anyone on the path can read or change this session",
            file=sys.stderr,
        )
    try:
        result = trio.run(
            functools.partial(
                client.send,
                host,
                port,
                args.sender,
                args.recipients,
                message.as_bytes(policy=email.policy.SMTP),
                # Plain by default, as before; --starttls insists on verified TLS
                # (--cafile: verified against that file; --insecure: not verified).
                tls=client.TLSMode.REQUIRE if tls else client.TLSMode.NEVER,
                ssl_context=context,
                username=args.user,
                password=password,
                connect_timeout=args.timeout,
                command_timeout=args.timeout,
                data_timeout=args.timeout,
            )
        )
    except client.SMTPReplyError as exc:
        print(f"{PROG}: {args.server} refused the message: {_one_line(exc.reply)}", file=sys.stderr)
        return EXIT_FAILURE
    except client.SMTPError as exc:
        print(f"{PROG}: {_cannot_send(args.server, exc)}", file=sys.stderr)
        return EXIT_FAILURE
    if result.accepted:
        print(f"{PROG}: sent to {', '.join(result.accepted)} via {args.server}")
    if result.refused:
        reasons = "; ".join(f"{r}: {_one_line(reply)}" for r, reply in result.refused.items())
        print(f"{PROG}: refused: {reasons}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def add_parser(commands: Any) -> None:  # argparse._SubParsersAction is private
    send = commands.add_parser(
        "send",
        help="submit one message to an SMTP server",
        description="Send one message; the body comes from --body, --file or stdin.",
    )
    send.add_argument(
        "--server",
        metavar="HOST:PORT",
        type=listen_arg,
        default="127.0.0.1:2525",
        help="where to send (default 127.0.0.1:2525)",
    )
    send.add_argument("--from", dest="sender", required=True, metavar="ADDRESS")
    send.add_argument("--to", dest="recipients", required=True, action="append", metavar="ADDRESS")
    send.add_argument("--subject", default="", help="the Subject: header")
    body = send.add_mutually_exclusive_group()
    body.add_argument("--body", help="the message text")
    body.add_argument("--file", metavar="PATH", help="read the message text from PATH")
    send.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS")
    send.add_argument(
        "--starttls", action="store_true", help="require STARTTLS and check the certificate"
    )
    send.add_argument(
        "--cafile",
        metavar="PEM",
        help="STARTTLS, trusting this CA bundle or certificate (e.g. the one "
        "`serve --tls-self-signed` prints)",
    )
    send.add_argument(
        "--insecure",
        action="store_true",
        help="STARTTLS without checking the certificate (development only; warns on stderr)",
    )
    send.add_argument(
        "--user",
        metavar="NAME",
        help="AUTH as NAME (needs --starttls, --cafile or --insecure); the password comes "
        f"from ${PASSWORD_ENV} or, with --password-stdin, the first line of stdin — "
        "never from a flag",
    )
    send.add_argument(
        "--password-stdin", action="store_true", help="read the --user password from stdin"
    )
