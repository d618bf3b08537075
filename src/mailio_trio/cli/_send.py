"""``mailio-trio send``: submit one message with our own client."""

from __future__ import annotations

import email.policy
import functools
import os
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


def _send_password(args: argparse.Namespace) -> str | None:
    if args.cafile is not None and not args.starttls:
        raise ConfigError(f"--cafile {args.cafile}: needs --starttls")
    if args.user is not None and not args.starttls:
        raise ConfigError(f"--user {args.user}: needs --starttls (a password never goes in clear)")
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


def run(args: argparse.Namespace) -> int:
    from mailio_trio import client

    password = _send_password(args)
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
        import ssl

        try:
            context = ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--cafile {args.cafile}: cannot load: {exc}") from None
    try:
        result = trio.run(
            functools.partial(
                client.send,
                host,
                port,
                args.sender,
                args.recipients,
                message.as_bytes(policy=email.policy.SMTP),
                # Plain by default, as before; --starttls insists on verified TLS.
                tls=client.TLSMode.REQUIRE if args.starttls else client.TLSMode.NEVER,
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
        print(f"{PROG}: cannot send via {args.server}: {exc}", file=sys.stderr)
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
    send.add_argument("--cafile", metavar="PEM", help="trust this CA bundle for --starttls")
    send.add_argument(
        "--user",
        metavar="NAME",
        help=f"AUTH as NAME (needs --starttls); the password comes from ${PASSWORD_ENV} "
        "or, with --password-stdin, the first line of stdin — never from a flag",
    )
    send.add_argument(
        "--password-stdin", action="store_true", help="read the --user password from stdin"
    )
