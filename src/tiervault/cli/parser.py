"""The ``tiervault`` argument parser: the global options and every command group's commands.

Each command group module has ``register(commands)``, which adds its commands, their arguments and
their handlers; :data:`GROUPS` lists the modules in the order ``--help`` shows their commands. A new
command goes into its group's module; a new group is a new module and one line here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import tiervault

from . import (
    cache,
    check,
    forget,
    init,
    items,
    keys,
    points,
    prune,
    rehydrate,
    restore,
    snapshot,
    stats,
    tier,
    upgrade,
)
from .options import Commands, Parser, add_global_options
from .output import PROG

#: The command groups: each module's ``register``, in the order ``tiervault --help`` lists them.
GROUPS: tuple[Callable[[Commands], None], ...] = (
    init.register,
    items.register,
    snapshot.register,
    points.register,
    forget.register,
    prune.register,
    tier.register,
    restore.register,
    rehydrate.register,
    check.register,
    stats.register,
    keys.register,
    upgrade.register,
    cache.register,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; a parsed command's ``args.handler`` runs it."""
    parser = Parser(
        prog=PROG,
        description="Tiered, encrypted, deduplicating backups.",
        epilog="POINT is a recovery point id, a unique prefix of one (4+ hex digits), 'latest' or "
        "'latest:ITEM'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {tiervault.__version__}")
    add_global_options(parser, in_subcommand=False)
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    for register in GROUPS:
        register(commands)
    return parser
