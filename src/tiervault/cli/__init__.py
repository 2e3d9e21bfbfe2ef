"""The ``tiervault`` command line: parse, run one call of the public API, print, map errors to exit codes.

Thin on purpose (DESIGN.md, "Layers"): every command opens the repository through ``tiervault.open``
(or ``tiervault.init``), calls one or two methods of :class:`tiervault.Vault` and prints the result,
as rich tables for people or, with ``--json``, as JSON on stdout for programs. Exit codes are decided
in this package only, from :data:`EXIT_CODES` (``exitcodes.py``).

Repository and passwords come from options or the environment, like restic:

* ``-r/--repo URL`` or ``TIERVAULT_REPOSITORY``;
* the password from ``--password-file FILE``, else ``TIERVAULT_PASSWORD``, else the file named by
  ``TIERVAULT_PASSWORD_FILE``, else a prompt when stdin is a terminal (twice for a new password);
* a new password (``key add``, ``key passwd``) from ``--new-password-file FILE``, else
  ``TIERVAULT_NEW_PASSWORD``, else a prompt.

A password file's content is used as bytes, less one trailing newline.

The local disk tier: ``--cache-dir DIR`` (default ``$TIERVAULT_CACHE_DIR`` or ``~/.cache/tiervault``,
used by default for Azure repositories only), ``--no-cache``, ``--cache-size SIZE``; ``tiervault cache
stats | prune | clear`` manages it.

The package, one module per concern (the layer rule: only the public ``tiervault`` API is imported):

* ``__init__``: :func:`main`, the console script; ``__main__``: ``python -m tiervault.cli``;
* ``exitcodes``: :class:`ExitCode` and :data:`EXIT_CODES`; ``passwords``: options, files, environment,
  prompts; ``context``: the :class:`~tiervault.cli.context.Context` a command runs with and opening the
  repository; ``output``: text, tables, progress, logging; ``options``: the global options and how a
  command is added; ``parser``: :func:`build_parser` from the command groups;
* the command groups, each with ``register(commands)``: ``init``, ``items`` (protect, items),
  ``snapshot``, ``points`` (points, ls), ``forget``, ``restore``, ``check``, ``keys`` (key ...), ``upgrade``,
  ``cache`` (cache ...).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from tiervault import TiervaultError, tune_allocator

from .context import ENV_REPOSITORY, Context, Handler, cache_options, make_context, repository
from .exitcodes import EXIT_CODES, ExitCode, exit_code_for
from .options import ENV_CACHE_DIR, ArgumentError
from .output import PROG, logging_to, print_error
from .parser import build_parser
from .passwords import ENV_NEW_PASSWORD, ENV_PASSWORD, ENV_PASSWORD_FILE

__all__ = [
    "ENV_CACHE_DIR",
    "ENV_NEW_PASSWORD",
    "ENV_PASSWORD",
    "ENV_PASSWORD_FILE",
    "ENV_REPOSITORY",
    "EXIT_CODES",
    "PROG",
    "ExitCode",
    "build_parser",
    "exit_code_for",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tiervault`` command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    The command owns its process, so it fixes glibc's ``mmap`` threshold first (before the scrypt work
    area and any worker thread; ``tiervault/memory.py``, opt-out ``TIERVAULT_MALLOC_TUNING=0``). The
    library never does that by itself: a service calls :func:`tiervault.tune_allocator` if it wants it.
    """
    tune_allocator()
    return int(_main(argv))


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except ArgumentError as exc:
        print_error(str(exc))
        return ExitCode.USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else ExitCode.OK if exc.code is None else ExitCode.USAGE
    ctx = make_context(args)
    with logging_to(ctx.err, args.debug):
        try:
            return int(_dispatch(ctx))
        except KeyboardInterrupt:
            print_error("interrupted")
            return ExitCode.INTERRUPTED
        except Exception as raised:
            problem = _leaf(raised)
            if args.debug:
                traceback.print_exception(raised, file=sys.stderr)
            if isinstance(problem, TiervaultError | OSError):
                print_error(str(problem))
            else:
                print_error(
                    f"unexpected {type(problem).__name__}: {problem} (run with --debug for the traceback)"
                )
            return exit_code_for(problem)


def _dispatch(ctx: Context) -> int:
    """Check the options every command shares, then run the command's handler (which gathers the
    passwords, blocking on files and prompts, and then runs the command on an event loop)."""
    repository(ctx.args)  # fail before any prompt
    cache_options(ctx.args)
    handler: Handler = ctx.args.handler  # set by the command's parser (options.Commands.add)
    return handler(ctx)


def _leaf(exc: BaseException) -> BaseException:
    """The error to report from an exception group: a tiervault error first, else the first one."""
    while isinstance(exc, BaseExceptionGroup):
        inner = list(exc.exceptions)
        exc = next((e for e in inner if isinstance(e, TiervaultError | BaseExceptionGroup)), inner[0])
    return exc
