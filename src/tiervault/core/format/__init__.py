"""Byte encodings of every repository object (docs/format.md is the normative description)."""

from __future__ import annotations

#: the version byte of sealed objects and pack preludes (unchanged by repository format version 2)
FORMAT_VERSION = 1
#: the repository format versions (``config.version``) this code reads; new repositories get the last
REPOSITORY_VERSIONS = (1, 2)
#: ``config.write_features`` of a version-2 repository this code writes and knows
WRITE_FEATURES = ("gc-1",)
#: ``config.read_features`` this code knows
READ_FEATURES: tuple[str, ...] = ()


class FormatError(Exception):
    """Bytes that do not parse as the expected object (damaged, or not ours). Callers add the name."""
