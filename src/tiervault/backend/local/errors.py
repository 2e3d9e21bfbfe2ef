"""``OSError`` to tiervault's error tree, once, for the local backend, and the worker-thread runner
that applies it to every blocking call."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from typing import Final, TypeVar, TypeVarTuple

from tiervault.errors import (
    BackendError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransientBackendError,
)

__all__ = ["run_blocking", "translate"]

_TRANSIENT_ERRNOS: Final = frozenset(
    {errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET}
)
_NO_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_CREATING_OPS: Final = frozenset({"put", "acquire_lease"})

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


def translate(exc: OSError, name: str, *, op: str = "access") -> BackendError:
    """Map an ``OSError`` from operation ``op`` on object ``name`` to tiervault's error tree.

    The only place the local backend translates OS errors; callers ``raise translate(...) from exc``
    (``run_blocking`` does, for every blocking call).
    """
    code = exc.errno
    code_name = errno.errorcode.get(code, str(code)) if code is not None else "?"
    where = f" ({exc.filename})" if exc.filename else ""
    what = f"cannot {op} {name!r}"
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFoundError(name)
    if isinstance(exc, NotADirectoryError | IsADirectoryError):
        if op in _CREATING_OPS:
            return BackendError(
                f"{what}: the name clashes with an existing object or directory on disk [{code_name}]{where}"
            )
        return ObjectNotFoundError(name)
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(f"{what}: permission denied [{code_name}]{where}")
    if code in _NO_SPACE_ERRNOS:
        return BackendError(f"{what}: no space left on device (or quota exceeded) [{code_name}]{where}")
    if code == errno.EROFS:
        return BackendError(f"{what}: read-only file system [{code_name}]{where}")
    if code == errno.EIO:
        return BackendError(f"{what}: I/O error from the storage device [{code_name}]{where}")
    if code in _TRANSIENT_ERRNOS:
        return TransientBackendError(f"{what}: {exc.strerror or exc} [{code_name}]{where}")
    return BackendError(f"{what}: {exc.strerror or exc} [{code_name}]{where}")


async def run_blocking(op: str, name: str, fn: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
    """Run blocking ``fn(*args)`` in a worker thread, translating its ``OSError`` (``op`` on ``name``)."""
    try:
        return await asyncio.to_thread(fn, *args)
    except OSError as exc:
        raise translate(exc, name, op=op) from exc
