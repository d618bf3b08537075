"""Tests of mailio_trio.mailauth; a package, so its conftest is not a second top-level one."""
