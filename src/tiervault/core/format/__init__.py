"""Byte encodings of every repository object (docs/format.md is the normative description)."""

from __future__ import annotations

FORMAT_VERSION = 1


class FormatError(Exception):
    """Bytes that do not parse as the expected object (damaged, or not ours). Callers add the name."""
