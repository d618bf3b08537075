"""The ``mailio-trio`` command line; ``main`` is its only public name.

The only package that imports argparse: one private module per sub-command
(``_serve``, ``_send``, ``_queue``, ``_config``, ``_passwd``) and per group of
flags (``_tls``, ``_capture``, ``_workers``), plus ``_logging``.
"""

from __future__ import annotations

from mailio_trio.cli._main import main

__all__ = ["main"]
