"""Every status ``tiervault`` exits with, and the one table from exceptions to them.

Exit codes are decided here and only here: a command returns one of :class:`ExitCode`, an exception
that ends a command is mapped by :func:`exit_code_for`.
"""

from __future__ import annotations

import enum

from tiervault import (
    BackendError,
    IntegrityError,
    NotFoundError,
    ObjectArchivedError,
    RepositoryNotFoundError,
    TiervaultError,
    UnsupportedFormatError,
    UsageError,
    WrongPasswordError,
)


class ExitCode(enum.IntEnum):
    """Every status ``tiervault`` exits with."""

    OK = 0
    ERROR = 1  # any other tiervault or backend error, or an unexpected one
    USAGE = 2  # bad arguments, an unknown item/point/path, a missing source path
    PARTIAL = 3  # the work completed, but some files could not be read (snapshot) or written (restore)
    INCOMPLETE = 4  # the --deadline ran out first: an incomplete point was saved; run again to resume
    AWAITING_REHYDRATION = 5  # restore --rehydrate: packs are coming out of Archive; run it again later
    REPOSITORY_NOT_FOUND = 10
    WRONG_PASSWORD = 11
    INTEGRITY = 12  # damaged objects, including ``check`` finding problems
    UNSUPPORTED_FORMAT = 13
    REHYDRATION_NEEDED = 14  # a restore needs archived packs and --rehydrate was not given: nothing written
    INTERRUPTED = 130  # Ctrl-C


#: The one table from exceptions to exit codes: the most specific class in an exception's MRO wins.
EXIT_CODES: dict[type[BaseException], ExitCode] = {
    TiervaultError: ExitCode.ERROR,
    BackendError: ExitCode.ERROR,
    UsageError: ExitCode.USAGE,
    NotFoundError: ExitCode.USAGE,
    RepositoryNotFoundError: ExitCode.REPOSITORY_NOT_FOUND,
    WrongPasswordError: ExitCode.WRONG_PASSWORD,
    IntegrityError: ExitCode.INTEGRITY,
    UnsupportedFormatError: ExitCode.UNSUPPORTED_FORMAT,
    ObjectArchivedError: ExitCode.REHYDRATION_NEEDED,
    KeyboardInterrupt: ExitCode.INTERRUPTED,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit status for an exception that ended a command (see :data:`EXIT_CODES`)."""
    for cls in type(exc).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return ExitCode.ERROR
