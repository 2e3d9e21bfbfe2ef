"""Which entries of a recovery point a restore selects: ``paths`` inside the point and ``include`` /
``exclude`` glob patterns, each matched against a path and its components."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence

from tiervault.errors import UsageError


def _matches(rel: bytes, patterns: Sequence[str]) -> bool:
    path = os.fsdecode(rel)
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(parts[i], pat)
        for pat in patterns
        for i, p in enumerate(prefixes)
    )


def normalize_paths(paths: Sequence[str] | None) -> list[bytes] | None:
    """Paths inside a point as relative byte paths; ``..`` is a ``UsageError``."""
    if paths is None:
        return None
    out = []
    for p in paths:
        try:
            raw = os.fsencode(p)
        except UnicodeEncodeError:  # a lone surrogate that no file-system name decodes to
            raise UsageError(f"path {p!r} is not a file-system path (it has no byte form)") from None
        parts = [x for x in raw.split(b"/") if x not in (b"", b".")]
        if b".." in parts:
            raise UsageError(f"path {p!r} must not contain '..'")
        out.append(b"/".join(parts))
    return out


class Selection:
    """``paths`` (None: everything), ``include`` and ``exclude`` patterns; ``whole`` selects all."""

    def __init__(
        self,
        paths: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        self.paths = normalize_paths(paths)
        self.include = list(include or [])
        self.exclude = list(exclude or [])
        self.whole = self.paths is None and not self.include and not self.exclude

    def selected(self, rel: bytes) -> bool:
        if self.paths is not None and not any(
            rel == p or rel.startswith(p + b"/") or not p for p in self.paths
        ):
            return False
        if self.include and not _matches(rel, self.include):
            return False
        return not (self.exclude and _matches(rel, self.exclude))

    def may_contain(self, rel: bytes) -> bool:
        """Could a selected path lie below directory ``rel``?"""
        if self.exclude and _matches(rel, self.exclude):
            return False
        if self.paths is None:
            return True
        return any(
            not p or p == rel or p.startswith(rel + b"/") or rel.startswith(p + b"/") for p in self.paths
        )


__all__ = ["Selection", "normalize_paths"]
