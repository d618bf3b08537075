"""Run mailio_trio for the benchmark: ``serve_mailio.py PORT [WORKERS] [--spool | --maildir DIR]``.

By default the same thing as ``mailio-trio serve --discard --workers N`` with
the connection limits raised for W4's 1000 idle sessions from one address; it uses the library
directly so the benchmark does not depend on the CLI's flags. ``--spool``
streams each body to a spool file (the queue chain then drops it): the 100 MiB
message workload. ``--maildir DIR`` delivers durably into maildirs under DIR
(file and directory fsync'd before ``250``). ``--profile FILE`` writes a
pyinstrument profile (one worker only).
"""

from __future__ import annotations

import argparse
import logging

from mailio_trio.config import Config, Limits, MaildirConfig
from mailio_trio.server import workers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("workers", type=int, nargs="?", default=1)
    parser.add_argument("--profile", metavar="FILE")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--spool", action="store_true", help="spool bodies to disk, then drop")
    mode.add_argument("--maildir", metavar="DIR", help="durable maildir delivery under DIR")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = Config(
        hostname="bench.example.org",
        domains=["example.net"],
        # Room for the 100 MiB message plus our Received: line.
        # W4's 1000 idle sessions all come from 127.0.0.1: no per-address limit.
        limits=Limits(
            max_connections=5000,
            connections_per_ip=0,
            max_recipients=100,
            message_size=200 * 1024 * 1024,
        ),
        maildir=MaildirConfig(enabled=args.maildir is not None, root=args.maildir or "mail"),
    )
    discard = not (args.spool or args.maildir)
    listen = [("127.0.0.1", args.port)]
    if args.profile:
        import pyinstrument

        profiler = pyinstrument.Profiler(interval=0.0005)
        profiler.start()
        try:
            workers.serve(config, listen, discard=discard)
        finally:
            profiler.stop()
            with open(args.profile, "w") as f:
                f.write(profiler.output_text(unicode=True, show_all=False))
        return
    workers.serve(config, listen, workers=args.workers, discard=discard)


if __name__ == "__main__":
    main()
