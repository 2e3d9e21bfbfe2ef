"""Blobs in tiervault's terms: our tiers and rehydrate priorities as the SDK's, blob properties as an
``ObjectInfo``, a download's body as bytes, and the Content-MD5 of an upload."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from azure.storage.blob import RehydratePriority, StandardBlobTier

from tiervault.backend.base import ObjectInfo, Tier
from tiervault.backend.base import RehydratePriority as OurPriority
from tiervault.errors import UsageError

__all__ = ["PRIORITIES", "TIERS", "body", "check_tier", "md5_b64", "object_info", "tier_of"]

TIERS = {
    Tier.HOT: StandardBlobTier.HOT,
    Tier.COOL: StandardBlobTier.COOL,
    Tier.COLD: StandardBlobTier.COLD,
    Tier.ARCHIVE: StandardBlobTier.ARCHIVE,
}
PRIORITIES = {OurPriority.STANDARD: RehydratePriority.STANDARD, OurPriority.HIGH: RehydratePriority.HIGH}


def check_tier(tier: Tier) -> Tier:
    """``tier`` as a ``Tier``; ``UsageError`` if it names none."""
    try:
        return Tier(tier)
    except ValueError:
        raise UsageError(f"unknown tier {tier!r}") from None


def tier_of(props: Any) -> Tier:
    raw = str(props.blob_tier or "Hot").lower()
    return Tier(raw) if raw in {t.value for t in Tier} else Tier.HOT


def object_info(name: str, props: Any) -> ObjectInfo:
    """The ``ObjectInfo`` of object ``name`` from its blob's properties."""
    modified = _utc(props.last_modified) or datetime.now(UTC)
    status = str(getattr(props, "archive_status", None) or "")
    # the store's own tier-change time (x-ms-access-tier-change-time); a blob never re-tiered has
    # none: then since its creation
    changed = _utc(getattr(props, "blob_tier_change_time", None))
    changed = changed or _utc(getattr(props, "creation_time", None)) or modified
    return ObjectInfo(
        name=name,
        size=int(props.size),
        tier=tier_of(props),
        modified=modified,
        rehydrating=status.startswith("rehydrate-pending"),
        tier_changed=changed,
    )


def _utc(when: datetime | None) -> datetime | None:
    """A time from the SDK as an aware UTC time (None stays None)."""
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


async def body(stream: Any) -> bytes:
    """The bytes of a download. ``readall()`` copies the body of the first GET two or three more times
    (slice, BytesIO, getvalue); ``chunks()`` hands it over as received, in one piece when it is no
    larger than ``max_chunk_get_size``, which covers every range tiervault asks for."""
    parts: list[bytes] = [part async for part in stream.chunks()]
    return parts[0] if len(parts) == 1 else b"".join(parts)
