"""What the disk tier may hold, and how it ranks it: decided by the layer above, not here.

The tier knows one naming rule only: an object it holds is named by the BLAKE3 of its bytes (the
last part of the name, 64 lower-case hex digits), which is what lets it verify an entry before
trusting it. *Which* names are such immutable objects, and which of them are metadata (kept) or data
(bounded, evicted first), is the :class:`CachePolicy` it is given: the repository's lives in
``tiervault.repo.cachepolicy``. The tier imports nothing above it.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

from tiervault.backend.base import TEMP_PREFIX

_HEX: Final = frozenset("0123456789abcdef")


class EntryKind(enum.Enum):
    """How the disk tier treats an object it may hold."""

    #: kept: evicted only when no data is left, and only to make room for other metadata
    METADATA = "metadata"
    #: bounded: evicted first, least recently used first (pinned names last)
    DATA = "data"


class CachePolicy(Protocol):
    """The layer above's word on object names."""

    def kind(self, name: str) -> EntryKind | None:
        """``METADATA`` or ``DATA`` for an immutable object whose name ends with the BLAKE3 of its
        bytes; None for anything the tier must never hold (a name whose content can change, such as a
        repository's ``config``, or one of a folder the policy does not know)."""


def hash_named(name: str) -> bool:
    """Whether ``name`` is a safe relative path whose last part is a 64-digit lower-case hex hash."""
    parts = name.split("/")
    if any(p in ("", ".", "..") or p.startswith(TEMP_PREFIX) or "\\" in p or "\x00" in p for p in parts):
        return False
    last = parts[-1]
    return len(last) == 64 and set(last) <= _HEX


def entry_kind(policy: CachePolicy, name: str) -> EntryKind | None:
    """How the tier treats ``name``: the policy's kind, for hash-named objects only (else None)."""
    return policy.kind(name) if hash_named(name) else None
