"""What a command runs with: the parsed arguments, the two consoles, and the repository it opens.

A command's handler (:data:`Handler`) is called with a :class:`Context` after the arguments are parsed.
It gathers what blocks first (password files, prompts), then runs its work on one event loop; most
commands are a :data:`VaultRun` over the opened repository, made a handler by :func:`vault_command`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console

import tiervault
from tiervault import UsageError, Vault

from . import passwords

ENV_REPOSITORY = "TIERVAULT_REPOSITORY"


@dataclass(slots=True)
class Context:
    args: argparse.Namespace
    out: Console  # results (stdout)
    err: Console  # progress and log messages (stderr)
    interactive: bool  # show progress: stderr is a terminal and not --json

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def emit(self, obj: Any) -> None:
        """Print ``obj`` as strict JSON: a name whose bytes are not UTF-8 (held as a ``str`` with
        surrogate escapes) shows them as ``\\xNN``, never as a lone surrogate that strict readers
        reject."""
        sys.stdout.write(json.dumps(strict_json(obj), indent=2) + "\n")
        sys.stdout.flush()


def strict_text(value: str) -> str:
    """``value`` with bytes that are not UTF-8 shown as ``\\xNN`` (another lone surrogate: ``\\uNNNN``)."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def strict_json(obj: Any) -> Any:
    """``obj`` with every string (keys too) made strict UTF-8 by :func:`strict_text`."""
    if isinstance(obj, str):
        return strict_text(obj)
    if isinstance(obj, dict):
        return {strict_json(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


#: Runs one parsed command and returns its exit status.
Handler = Callable[[Context], int]
#: A command's work over the opened repository; returns its exit status.
VaultRun = Callable[[Context, Vault], Awaitable[int]]


def stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def make_context(args: argparse.Namespace) -> Context:
    """Consoles for results (stdout) and progress (stderr; live only on a terminal and without --json)."""
    interactive = stderr_is_tty() and not args.json
    err = Console(
        stderr=True, markup=False, highlight=False, emoji=False, force_terminal=True if interactive else None
    )
    out = Console(markup=False, highlight=False, emoji=False)
    return Context(args, out, err, interactive)


def repository(args: argparse.Namespace) -> str:
    repo: str | None = args.repo or os.environ.get(ENV_REPOSITORY)
    if not repo:
        raise UsageError(f"no repository given: use -r/--repo or set {ENV_REPOSITORY}")
    return repo


def cache_options(args: argparse.Namespace) -> dict[str, Any]:
    """``cache_dir`` / ``cache_max_bytes`` for ``tiervault.open`` from ``--cache-dir``, ``--no-cache``
    and ``--cache-size`` (the library's defaults when none is given)."""
    if args.no_cache and args.cache_dir is not None:
        raise UsageError("--cache-dir and --no-cache exclude each other")
    options: dict[str, Any] = {}
    if args.no_cache:
        options["cache_dir"] = False
    elif args.cache_dir is not None:
        options["cache_dir"] = args.cache_dir
    if args.cache_size is not None:
        options["cache_max_bytes"] = args.cache_size
    return options


async def _with_vault(ctx: Context, password: bytes, run: VaultRun) -> int:
    async with tiervault.open(repository(ctx.args), password=password, **cache_options(ctx.args)) as vault:
        return await run(ctx, vault)


def run_on_vault(ctx: Context, password: bytes, run: VaultRun) -> int:
    """Open the repository with ``password`` and ``run`` on it, on a new event loop."""
    return asyncio.run(_with_vault(ctx, password, run))


def vault_command(run: VaultRun) -> Handler:
    """The handler of a command that needs only the repository's password: ask for it, then ``run``."""

    def handler(ctx: Context) -> int:
        return run_on_vault(ctx, passwords.password(ctx.args), run)

    return handler
