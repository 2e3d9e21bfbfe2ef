"""What a snapshot may take from its parent point without reading a file (the incremental fast paths).

Entries are compared as tree JSON objects (``core/format/tree.py``, as ``stat_json`` builds them) with
the listing's ``lstat``. A file's recorded content is reused only while all its chunks are indexed and (format
version 2) each has a location in a pack neither condemned nor gone: ``in`` the index says so
(``repo/index.py``), so a file with a chunk only in such a pack is read again (writer rule 3).
"""

from __future__ import annotations

import operator
import os
import stat
from typing import Any, Protocol

_Obj = dict[str, Any]  # a node as its tree JSON object
_Listed = tuple[bytes, os.stat_result | OSError]  # a directory entry as list_dir gives it
#: the keys of a file's object: stat_json's 11 (with "name" or "name_b64") and "content"
_FILE_KEYS = 12
_FILE_FIELDS = operator.itemgetter(
    "mtime_ns", "ctime_ns", "inode", "size", "type", "mode", "uid", "gid", "device", "links"
)


class ChunkIndex(Protocol):
    """What reuse needs of the chunk index (``repo.index.Index``): whether a chunk is stored where a
    writer may reference it."""

    def __contains__(self, cid: bytes, /) -> bool: ...


def tree_ref(value: Any) -> bytes | None:
    """A parent node's ``subtree`` as a tree id, or None when it is not one (then nothing is reused)."""
    if not isinstance(value, str) or len(value) != 64:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


class ParentReuse:
    """The reuse decisions of one run against the chunk ``index`` (none with ``force_rehash``)."""

    __slots__ = ("_index", "force_rehash")

    def __init__(self, index: ChunkIndex, *, force_rehash: bool = False) -> None:
        self._index = index
        self.force_rehash = force_rehash

    def unchanged_file(self, old: _Obj, st: os.stat_result) -> bool:
        """The fast path of an incremental run: a regular file whose every recorded field matches
        ``lstat`` and whose chunks are all indexed (the common case: most files did not change)."""
        if self.force_rehash or not stat.S_ISREG(st.st_mode):
            return False
        try:
            recorded = _FILE_FIELDS(old)
        except KeyError:
            return False
        now = (
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_size,
            "file",
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_dev,
            st.st_nlink,
        )
        return (
            recorded == now
            # nothing but what stat_json writes (+ content, + xattrs kept while ctime matches)
            and len(old) == (_FILE_KEYS + 1 if "xattrs" in old else _FILE_KEYS)
            and isinstance(old.get("xattrs", []), list)
            and self.indexed(old.get("content"))
        )

    def indexed(self, content: Any) -> bool:
        """A parent's content list whose chunks are all in the index (else the file is read again)."""
        if not isinstance(content, list):
            return False
        index = self._index
        for item in content:
            if isinstance(item, str):
                try:
                    if bytes.fromhex(item) not in index:
                        return False
                except ValueError:
                    return False
            elif not isinstance(item, int) or isinstance(item, bool) or item < 0:
                return False
        return True

    def reusable(self, obj: _Obj, old: _Obj | None) -> list[Any] | None:
        """The parent's content list of an unchanged file whose chunks are all indexed, else None."""
        if self.force_rehash or old is None or old.get("type") != "file":
            return None
        if (
            old.get("size") != obj["size"]
            or old.get("mtime_ns") != obj["mtime_ns"]
            or old.get("ctime_ns") != obj["ctime_ns"]
            or old.get("inode") != obj["inode"]
        ):
            return None
        content = old.get("content")
        return content if self.indexed(content) else None

    def held(self, old: _Obj | None, *, regular: bool) -> bool:
        """Is ``old`` a file of the parent point that a checkpoint may keep as it was, for the file
        listed (a ``regular`` file, or not) that this run leaves unread (a stop came first)? Its chunks
        must all be indexed; it may have changed since (the next run reads it): a checkpoint never
        drops a file its parent held, so runs under a deadline converge (``sources/stopping.py``)."""
        return (
            old is not None
            and old.get("type") == "file"
            and regular
            and type(old.get("size")) is int
            and self.indexed(old.get("content"))
        )

    def keep_unvisited(
        self, rest: list[_Listed], parent: dict[bytes, _Obj]
    ) -> tuple[list[tuple[bytes, _Obj]], int, int]:
        """After a stop (deadline, cancellation): the parent's entries to keep, as they were, for the
        unvisited ``rest`` of a directory: a file the parent held while it still is a regular file
        (``held``), a directory (with the parent's subtree) while it still is one. Returns them with
        the number of files and their bytes, so a checkpoint never loses what an earlier run finished."""
        kept: list[tuple[bytes, _Obj]] = []
        files = nbytes = 0
        for name, st in rest:
            old = parent.get(name)
            if old is None or isinstance(st, OSError):
                continue
            if self.held(old, regular=stat.S_ISREG(st.st_mode)):
                files += 1
                nbytes += old["size"]
            elif not (old.get("type") == "dir" and stat.S_ISDIR(st.st_mode) and tree_ref(old.get("subtree"))):
                continue
            kept.append((name, old))
        return kept, files, nbytes
