"""``python -m mailio_trio`` is the ``mailio-trio`` command."""

from __future__ import annotations

import sys

from mailio_trio.cli import main

sys.exit(main())
