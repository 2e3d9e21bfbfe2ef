"""A backend wrapper that kills its own process with SIGKILL just before the ``nth`` call of one
method on names under a prefix: a real crash (no clean-up, no ``finally``) at a chosen request,
without touching the code under test. Used by ``tests/prune/kill_driver.py``."""

from __future__ import annotations

import os
import signal

from tests.support.memory import FaultyBackend
from tiervault.backend.base import Backend


class KillingBackend(FaultyBackend):
    """``FaultyBackend`` (``delete_many`` goes name by name) that SIGKILLs at the chosen call."""

    def __init__(self, inner: Backend, *, method: str, prefix: str, nth: int) -> None:
        super().__init__(inner)
        self._method, self._prefix, self._left = method, prefix, nth

    def _before(self, method: str, name: str) -> None:
        if method == self._method and name.startswith(self._prefix):
            self._left -= 1
            if self._left == 0:
                os.kill(os.getpid(), signal.SIGKILL)
        super()._before(method, name)
