"""Who and when, as stored in key slots, items and recovery points: the host, the user, the time."""

from __future__ import annotations

import getpass
import os
import socket
import time

from tiervault.repo.snapshots import utc_iso


def now_iso() -> str:
    """The current time as stored: RFC 3339 UTC with nanoseconds (sortable as text)."""
    return utc_iso(time.time_ns())


def host_name() -> str:
    """This machine's name, as recovery points record it (and parent selection matches on)."""
    return socket.gethostname()


def user_name() -> str:
    """The user running tiervault (the numeric uid when it has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
