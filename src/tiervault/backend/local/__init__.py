"""A backend on a local (or mounted) file system, with emulated tiers and leases.

Layout under ``root``::

    <name>                        the object itself (names are slash-separated paths)
    .tv-tiers/<name>.json         tier sidecar {"tier": ..., "rehydrate_until": epoch|null}; absent = Hot
    .tv-leases/<name>.json        lease state {"lease_id": ..., "expires": epoch}
    .tv-leases/<name>.lock        flock(2) target guarding that state's check-and-set
    **/.tmp-<random>              in-flight writes (a crash may leave some; they are never listed,
                                  ``list_incomplete`` reports them and ``delete_incomplete`` removes
                                  those older than a safe age)

Objects are created by writing a temp file in the target directory, fsyncing it and hard-linking it
to its final name (``link(2)`` fails if the name exists, so creation is atomic and exclusive), then
fsyncing the directory. Every blocking call runs in a worker thread.

One job per module, each importing only those below it:

* ``backend``: ``LocalBackend``, the async contract: argument checks, one worker-thread call each;
* ``leases``: ``.tv-leases/`` and ``flock(2)``, ``LocalLease``;
* ``listing``: the batched directory walk of ``list``;
* ``objects``: create, read, stat, delete;
* ``tiers``: the ``.tv-tiers/`` sidecars, emulated rehydration;
* ``files``: the root and its fsync policy, atomic temp-file and JSON writes;
* ``errors``: ``OSError`` to tiervault's errors (``translate``), and the worker-thread runner.
"""

from __future__ import annotations

from tiervault.backend.base import RESERVED_PREFIX, TEMP_PREFIX, validate_name, validate_prefix
from tiervault.backend.local.backend import CAPABILITIES as CAPABILITIES
from tiervault.backend.local.backend import LocalBackend
from tiervault.backend.local.errors import translate
from tiervault.backend.local.leases import LocalLease

__all__ = ["RESERVED_PREFIX", "TEMP_PREFIX", "LocalBackend", "LocalLease", "validate_name", "validate_prefix"]

#: the name ``translate`` had when this backend was one module (``errors.translate`` is its home)
_translate = translate
