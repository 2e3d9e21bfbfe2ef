"""How commands are added to the parser: the options every command accepts (before or after its name),
option types, and :class:`Commands`, through which each command group module's ``register`` adds its
commands with their handlers."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from tiervault import ScryptParams

from .context import ENV_REPOSITORY, Handler
from .passwords import ENV_PASSWORD, ENV_PASSWORD_FILE

ENV_CACHE_DIR = "TIERVAULT_CACHE_DIR"


class ArgumentError(Exception):
    """argparse found bad arguments (raised instead of exiting, so ``main`` returns a status)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgumentError(f"{message} (see '{self.prog} --help')")


def add_global_options(p: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """Options accepted both before and after the command.

    In subcommands their default is SUPPRESS, so a value given before the command is not overwritten.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    g = p.add_argument_group("global options")
    g.add_argument(
        "-r",
        "--repo",
        metavar="URL",
        default=default(None),
        help=f"repository: a path, file:///path, https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], "
        f"az://ACCOUNT/CONTAINER[/PREFIX] or azurite://HOST:PORT/CONTAINER (default: ${ENV_REPOSITORY})",
    )
    g.add_argument(
        "--password-file",
        metavar="FILE",
        default=default(None),
        help=f"read the password from FILE (default: ${ENV_PASSWORD}, ${ENV_PASSWORD_FILE}, prompt)",
    )
    g.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=default(None),
        help=f"the local disk tier's directory (default: ${ENV_CACHE_DIR}, else ~/.cache/tiervault; "
        "on by default for Azure repositories only)",
    )
    g.add_argument(
        "--no-cache",
        action="store_true",
        default=default(False),
        help="do not use the local disk tier",
    )
    g.add_argument(
        "--cache-size",
        metavar="SIZE",
        type=parse_size,
        default=default(None),
        help="bound of the disk tier for this repository, e.g. 500M or 4G (default: 2G)",
    )
    g.add_argument(
        "--json", action="store_true", default=default(False), help="print machine-readable JSON on stdout"
    )
    g.add_argument(
        "--debug", action="store_true", default=default(False), help="log at DEBUG level and show tracebacks"
    )


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``1048576``, ``512K``, ``500M``, ``4G``, ``1T`` (binary units; a trailing ``iB``/``B`` is allowed)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 500M, 4G)") from None
    n = int(value * _UNITS[unit])
    if n <= 0:
        raise argparse.ArgumentTypeError(f"the size must be > 0, not {text!r}")
    return n


def positive_int(text: str) -> int:
    """A whole number > 0 (``1000000``, or with separators: ``1_000_000``)."""
    try:
        n = int(text.replace(",", "_"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"the number must be > 0, not {text!r}")
    return n


def _kdf_log_n(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    low, high = ScryptParams.LOG_N_MIN, ScryptParams.LOG_N_MAX  # the range ScryptParams accepts
    if not low <= n <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
    return n


def add_kdf_option(p: argparse.ArgumentParser) -> None:
    """The hidden ``--kdf-log-n N`` of commands that make key slots (read it with :func:`kdf`)."""
    # hidden: scrypt cost 2**N for new key slots; tests use a small one to run fast
    p.add_argument("--kdf-log-n", type=_kdf_log_n, default=None, metavar="N", help=argparse.SUPPRESS)


def kdf(args: argparse.Namespace) -> ScryptParams | None:
    """The key derivation for new key slots from ``--kdf-log-n`` (``None``: the library's default)."""
    return ScryptParams(log_n=args.kdf_log_n) if args.kdf_log_n is not None else None


class Commands:
    """Where a command group's ``register(commands)`` adds its commands, in the order ``--help`` lists
    them. Every command gets the global options; a command that runs gets its handler, which ``main``
    calls (``args.handler``), and a command with actions of its own gets a :class:`Commands` for them.
    """

    def __init__(self, subparsers: argparse._SubParsersAction[Any]) -> None:
        self._subparsers = subparsers

    def _parser(self, name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = self._subparsers.add_parser(name, help=help_text, description=help_text)
        add_global_options(p, in_subcommand=True)
        return p

    def add(self, name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        """A command run by ``handler``; add its own arguments to the parser returned."""
        p = self._parser(name, help_text)
        p.set_defaults(handler=handler)
        return p

    def add_group(self, name: str, help_text: str, *, dest: str) -> Commands:
        """A command made of actions (``key list``, ``cache stats``): add them to the result. The
        action's name is stored as ``dest``."""
        p = self._parser(name, help_text)
        return Commands(p.add_subparsers(dest=dest, metavar="ACTION", required=True))
