"""The local disk tier: a ``Backend`` decorator that keeps objects on local disk in front of the store.

Modules, each one job (docs/architecture.md, "Disk tier"):

* ``backend``  -- :class:`CacheBackend`, the decorator: routes each call to the disk tier or the
  store, turns the tier off on its first unexpected ``OSError``, counts what each tier served;
* ``entries``  -- the entries on disk: verified before trusted, written atomically, shared safely;
* ``bounds``   -- the bound: room reserved before a write, LRU eviction (data first), pins, scans;
* ``verified`` -- which entries this process has verified (and hashing a file);
* ``files``    -- the file helpers: the one writer of entries, full reads, the ``CACHEDIR.TAG``;
* ``policy``   -- :class:`CachePolicy`: what may be cached, as metadata or data, is the layer
  above's word (the repository's is ``tiervault.repo.cachepolicy``); the tier imports nothing above;
* ``reports``  -- counters, usage and cleanup results;
* ``location`` -- :func:`default_cache_dir` and :func:`cache_key` (one folder per repository).
"""

from tiervault.cache.backend import DEFAULT_MAX_BYTES, IO_THREADS, CacheBackend
from tiervault.cache.bounds import STALE_TEMP_SECONDS
from tiervault.cache.location import ENV_CACHE_DIR, ENV_FUNCTIONS, cache_key, default_cache_dir
from tiervault.cache.policy import CachePolicy, EntryKind, entry_kind, hash_named
from tiervault.cache.reports import CacheCleanup, CacheCounters, CacheStats, CacheUsage

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ENV_CACHE_DIR",
    "ENV_FUNCTIONS",
    "IO_THREADS",
    "STALE_TEMP_SECONDS",
    "CacheBackend",
    "CacheCleanup",
    "CacheCounters",
    "CachePolicy",
    "CacheStats",
    "CacheUsage",
    "EntryKind",
    "cache_key",
    "default_cache_dir",
    "entry_kind",
    "hash_named",
]
