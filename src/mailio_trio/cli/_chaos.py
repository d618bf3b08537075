"""``serve --capture``'s chaos: ``--fault``, ``--fault-probability``, ``--rate-limit``, ``[chaos]``.

Chaos is for the development sink only: a ``[chaos]`` table or a ``--fault``
flag without ``--capture`` is refused, so a production configuration can never
start answering ``451`` at random because a table was copied into it.

The file's ``[chaos]`` table is a section of its own (not a
``[plugins."queue/chaos"]`` table): the faults live in
:mod:`mailio_trio.testing`, above the plugin layer, and span every command,
not one. Flags add to the file's faults and triggers (a flag's trigger
replaces the file's at the same stage); ``--rate-limit`` and ``--chaos-seed``
replace the file's values.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import attrs

from mailio_trio.config import ConfigError
from mailio_trio.testing._chaos import (
    ChaosSettings,
    parse_fault,
    parse_rate_limit,
    parse_trigger,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["add_chaos_arguments", "chaos_from_table", "chaos_settings"]


def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__.removeprefix("parse_").replace("_", " ")
    return convert


def add_chaos_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the chaos flags to the ``serve`` sub-command's parser."""
    group = parser.add_argument_group("chaos (with --capture: wrong answers on purpose)")
    group.add_argument(
        "--fault",
        metavar="STAGE:ACTION[:COUNT]",
        type=_argtype(parse_fault),
        action="append",
        help="the next COUNT (default 1) commands at STAGE get ACTION: a code (rcpt:452:2), "
        "drop (data:drop), or delay=SECONDS (mail:delay=2.5); repeatable. Stages: connect, "
        "helo, ehlo, mail, rcpt, data, message (after the body), rset, noop, auth",
    )
    group.add_argument(
        "--fault-probability",
        metavar="STAGE:ACTION:P",
        type=_argtype(parse_trigger),
        action="append",
        help="each command at STAGE gets ACTION with probability P in (0, 1], e.g. "
        "mail:451:0.2 or message:drop:0.05; repeatable, one per stage",
    )
    group.add_argument(
        "--chaos-seed",
        metavar="N",
        type=int,
        help="seed the --fault-probability draws, to replay a run exactly",
    )
    group.add_argument(
        "--rate-limit",
        metavar="N/SECONDS",
        type=_argtype(parse_rate_limit),
        help="answer MAIL with 421 4.7.0 past N messages per SECONDS (a token bucket), e.g. 10/60",
    )


def chaos_from_table(table: Mapping[str, Any], where: str = "[chaos]") -> ChaosSettings:
    """The file's ``[chaos]`` table, checked.

    Raises:
      ConfigError: One line naming the key.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: a table")
    try:
        return ChaosSettings.from_mapping(table, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def chaos_settings(
    args: argparse.Namespace, file_table: Mapping[str, Any] | None, *, capturing: bool
) -> ChaosSettings | None:
    """The chaos ``serve`` runs with (the file's ``[chaos]`` under the flags), or ``None``.

    Raises:
      ConfigError: Chaos asked for without ``--capture``, or two triggers at one stage.
    """
    base = ChaosSettings() if file_table is None else chaos_from_table(file_table)
    triggers = {t.stage: t for t in base.triggers}
    for trigger in args.fault_probability or ():
        triggers[trigger.stage] = trigger
    settings = attrs.evolve(
        base,
        faults=base.faults + tuple(args.fault or ()),
        triggers=tuple(triggers.values()),
        rate_limit=args.rate_limit or base.rate_limit,
        seed=base.seed if args.chaos_seed is None else args.chaos_seed,
    )
    if not capturing:
        if settings.enabled or file_table is not None:
            raise ConfigError(
                "chaos (--fault, --fault-probability, --rate-limit, [chaos]) needs serve --capture"
            )
        return None
    return settings
