"""The temporary names of a restore, and removing those that killed restores left behind.

A restore writes a file that replaces an existing one, and every hard link, symlink and special
file, under a temporary name ``.tiervault-restore-<12 hex>-<n>`` in the directory it belongs in, then
renames it into place (``files.FileWriter``); a run's own unfinished ones are removed when it fails
or stops. A restore that is killed leaves them. The next restore into the same target removes, in
every directory it restores into that existed before it (one it creates holds none, so a fresh
restore lists no directory), each such name that is not a directory and whose status last changed
(``st_ctime``) at least ``STALE_AGE`` ago by the restore's ``Clock``.

Why that is safe: the name has a 48-bit random part chosen per run and a counter, each created once
with ``O_EXCL``; a running restore changes the status of its temporary file with every write and
renames it away soon after the last one (a link, symlink or special file at once), and no user can
set a ctime. So a name that is old enough belongs to a run that is gone, or to one that has not
written that file for an hour; in that rare case the running restore reports an error for the file
and leaves its destination as it was (the temporary name only ever replaces it at the end).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat

log = logging.getLogger("tiervault.restore")

PREFIX = b".tiervault-restore-"
#: how long a temporary name must have been left alone (by its ctime) before a restore removes it
STALE_AGE = 3600.0
_TEMP = re.compile(rb"\.tiervault-restore-[0-9a-f]{12}-[1-9][0-9]*\Z")


def temp_name(run: bytes, n: int) -> bytes:
    """The ``n``-th temporary name of the run whose random part is ``run`` (12 hex digits)."""
    return b"%s%s-%d" % (PREFIX, run, n)


def is_temp_name(name: bytes) -> bool:
    """Is ``name`` one a restore makes (``temp_name``)?"""
    return name.startswith(PREFIX) and _TEMP.match(name) is not None


def remove_stale(dir_fd: int, now: float, *, max_age: float = STALE_AGE) -> int:
    """Remove the temporary names of earlier restores in the directory ``dir_fd`` that are older than
    ``max_age`` (by ctime, against ``now``, the restore clock's ``now()``); how many were removed. A
    directory that cannot be listed, and a name that went away meanwhile, are skipped."""
    try:
        listing = os.scandir(dir_fd)  # streamed: a huge directory costs no list of its names
    except OSError as exc:
        log.warning("cannot look for leftovers of earlier restores: %s", exc.strerror)
        return 0
    with listing:
        return sum(_remove_if_stale(dir_fd, os.fsencode(e.name), now, max_age) for e in listing)


def _remove_if_stale(dir_fd: int, name: bytes, now: float, max_age: float) -> bool:
    if not is_temp_name(name):
        return False
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode) or now - st.st_ctime < max_age:
            return False  # a restore never makes a directory by that name; a young one may be in use
        os.unlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.warning("cannot remove %r, left by an earlier restore: %s", name, exc.strerror)
        return False
    return True


__all__ = ["PREFIX", "STALE_AGE", "is_temp_name", "remove_stale", "temp_name"]
