"""Run mailio_trio's discard server for the benchmark: ``serve_mailio.py PORT [WORKERS]``.

The same thing as ``mailio-trio serve --discard --workers N`` with the
connection limit raised for W4's 1000 idle sessions; it uses the library
directly so the benchmark does not depend on the CLI's flags.
``--profile FILE`` writes a pyinstrument HTML profile (one worker only).
"""

from __future__ import annotations

import argparse
import logging

from mailio_trio import workers
from mailio_trio.config import Config, Limits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("workers", type=int, nargs="?", default=1)
    parser.add_argument("--profile", metavar="FILE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = Config(
        hostname="bench.example.org",
        domains=["example.net"],
        limits=Limits(max_connections=5000, max_recipients=100),
    )
    listen = [("127.0.0.1", args.port)]
    if args.profile:
        import pyinstrument

        profiler = pyinstrument.Profiler(interval=0.0005)
        profiler.start()
        try:
            workers.serve(config, listen, discard=True)
        finally:
            profiler.stop()
            with open(args.profile, "w") as f:
                f.write(profiler.output_text(unicode=True, show_all=False))
        return
    workers.serve(config, listen, workers=args.workers, discard=True)


if __name__ == "__main__":
    main()
