"""What the disk tier may keep of a repository: its :class:`~tiervault.cache.policy.CachePolicy`.

Every object under ``keys/``, ``items/``, ``snapshots/``, ``index/`` and ``meta/`` is metadata (kept,
hot: a restore needs all of it first), and under ``data/`` a data pack (bounded, evicted first). Their
names end with the BLAKE3 of their bytes (docs/format.md). ``config``, the one name that is not the
hash of its bytes, and anything else (``locks/``, folders a later version adds) is never cached, so a
stale copy can never be served.
"""

from __future__ import annotations

from typing import Final

from tiervault.cache.policy import EntryKind

METADATA_FOLDERS: Final = frozenset({"keys", "items", "snapshots", "index", "meta"})
DATA_FOLDER: Final = "data"


class RepositoryCachePolicy:
    """The repository's layout, as the disk tier needs to know it."""

    def kind(self, name: str) -> EntryKind | None:
        folder, sep, _rest = name.partition("/")
        if not sep:
            return None  # a top-level name (config)
        if folder == DATA_FOLDER:
            return EntryKind.DATA
        if folder in METADATA_FOLDERS:
            return EntryKind.METADATA
        return None


#: the one instance the API hands to ``CacheBackend``
REPOSITORY_CACHE_POLICY: Final = RepositoryCachePolicy()
