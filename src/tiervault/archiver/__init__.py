"""Taking a recovery point of a folder: walk, chunk, dedup, pack, upload, then commit the snapshot.

Threads and bounds (docs/architecture.md, "Snapshot pipeline"):

* one walker thread lists directories in depth-first order and hands regular files to a reader pool
  of ``workers`` threads (one per core): small files in batches, large ones alone; at most
  ``8 x workers`` tasks wait (``walker.py``);
* a reader reads its file in bounded blocks (FastCDC streaming), hashes every chunk with the keyed
  BLAKE3, claims the chunks neither the index nor this session has, and passes them in groups of a
  few MiB to a saver pool (``workers`` threads) under a shared byte budget (``readers.py``);
* a saver compresses and seals each chunk into its own open pack (a ``PackSink`` of the run's
  ``Packer``, ``repo/packer.py``); a full pack is handed to the event loop for upload, at most
  ``max_inflight`` at a time, so memory stays bounded whatever the data size (docs/architecture.md,
  "Bounds");
* directories are finalized in post-order as soon as all their files are done: the tree is serialized,
  hashed and added to a metadata pack (``walker.py``);
* ``FolderArchiver.run`` (``session.py``) runs them and returns the root tree and the stats
  (``outcome.py``); the caller writes the index, then the snapshot object — last, so a crash leaves
  no dangling point.

A file that vanishes, cannot be read or is no longer a regular file when opened is recorded in the
point's error list and left out; one that changes while it is read is read again, and stored with a
warning if it changed again (``sources/reading.py``). A deadline or a cancellation stops the walker and
the readers (``sources/stopping.py``); a cancelled run ends its threads and commits nothing.
"""

from tiervault.archiver.outcome import ArchiveOutcome, Progress, SnapshotStats
from tiervault.archiver.session import FolderArchiver

__all__ = ["ArchiveOutcome", "FolderArchiver", "Progress", "SnapshotStats"]
