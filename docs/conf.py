"""Sphinx configuration for mailio_trio's documentation."""

from __future__ import annotations

project = "mailio_trio"
author = "mailio_trio developers"
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
# No network at build time, so no intersphinx inventories: references to the
# standard library, trio and attrs cannot resolve and are not errors.
nitpick_ignore_regex = [
    (
        "py:.*",
        r"(trio|ssl|logging|email|pathlib|collections|typing|attrs|datetime|os|threading)(\..*)?",
    ),
    ("py:.*", r"(.*\.)?(HandlerFunc|T|_?Close|Path|EmailMessage|order_handlers|_Box|RelayWorker)"),
    # Session.connection's type: the byte side is private (server/_connection.py).
    ("py:class", r"(.*\.)?Connection"),
    # HandlerContext.redis's type: the shared Redis pool is private (_shared.py).
    ("py:class", r"(.*\.)?RedisState"),
    # The web inbox needs the [web] extra (Starlette), which the docs build does not install.
    ("py:class", r"(.*\.)?Inbox"),
    # Its module needs the [mailauth] extra, which the docs build does not install.
    ("py:class", r"(.*\.)?DkimResult"),
]
myst_heading_anchors = 3
html_theme = "alabaster"
