"""``stats``: what the repository holds per access tier, per item and per recovery point, and (with
a price table) what that costs a month, estimated (docs/costs.md).

Tiers come from one listing of the store (``ObjectInfo.tier``): every object, metadata included.
Items and points come from the chunks their trees reference (``repo.treewalk``), each chunk counted
at its stored length (the in-memory index) and priced at the tier of the pack holding it:

- a point's ``bytes`` are the chunks it references (its trees and its files' content), its
  ``unique_bytes`` the chunks no other point references (what forgetting it alone could free);
- an item's ``bytes`` are the chunks any of its points references, its ``unique_bytes`` those no
  other item's points reference.

Memory is bounded by the distinct chunk ids referenced (one small entry each, as prune's live set)
plus the chunk set of one point and of one item at a time; nothing is read but the trees (from the
metadata packs the repository keeps in memory). Per-chunk attribution prices bytes at the pack's
per-byte price; the 128 KiB minimum billable size applies to whole objects, so it is counted in the
per-tier totals only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tiervault.backend.base import Tier
from tiervault.costs import GB, PriceTable, TierUsage
from tiervault.errors import BackendError, IntegrityError
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord, parse_iso
from tiervault.repo.treewalk import TreeCounter, chunk_collector

__all__ = ["ItemStats", "PointStats", "StatsReport", "TierStats", "gather_stats"]

#: in ``_Owners``: a chunk referenced by more than one owner
SHARED = -1


@dataclass(frozen=True, slots=True)
class TierStats:
    tier: Tier
    objects: int
    bytes: int
    #: what the store bills (objects under the tier's minimum billable size counted at it); with cost
    billable_bytes: int | None = None
    estimated_monthly_cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tier": self.tier.value, "objects": self.objects, "bytes": self.bytes}
        if self.estimated_monthly_cost is not None:
            out["billable_bytes"] = self.billable_bytes
            out["estimated_monthly_cost"] = self.estimated_monthly_cost
        return out


@dataclass(slots=True)
class PointStats:
    id: str
    item: str
    time: datetime
    chunks: int = 0
    bytes: int = 0
    unique_bytes: int = 0
    estimated_monthly_cost: float | None = None  #: of ``bytes``
    estimated_unique_monthly_cost: float | None = None  #: of ``unique_bytes``

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "item": self.item,
            "time": self.time.isoformat(),
            "chunks": self.chunks,
            "bytes": self.bytes,
            "unique_bytes": self.unique_bytes,
        }
        if self.estimated_monthly_cost is not None:
            out["estimated_monthly_cost"] = self.estimated_monthly_cost
            out["estimated_unique_monthly_cost"] = self.estimated_unique_monthly_cost
        return out


@dataclass(slots=True)
class ItemStats:
    name: str
    points: int = 0
    chunks: int = 0
    bytes: int = 0
    unique_bytes: int = 0
    estimated_monthly_cost: float | None = None
    estimated_unique_monthly_cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "points": self.points,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "unique_bytes": self.unique_bytes,
        }
        if self.estimated_monthly_cost is not None:
            out["estimated_monthly_cost"] = self.estimated_monthly_cost
            out["estimated_unique_monthly_cost"] = self.estimated_unique_monthly_cost
        return out


@dataclass(slots=True)
class StatsReport:
    """What ``Vault.stats`` returns. Every cost is an estimate from ``prices`` (None without cost)."""

    tiers: list[TierStats]
    items: list[ItemStats]
    points: list[PointStats]
    prices: PriceTable | None = None
    #: the same objects all in Hot, and what the current tiering saves against that (a month)
    estimated_all_hot_monthly_cost: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def objects(self) -> int:
        return sum(t.objects for t in self.tiers)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tiers)

    @property
    def estimated_monthly_cost(self) -> float | None:
        if self.prices is None:
            return None
        return sum(t.estimated_monthly_cost or 0.0 for t in self.tiers)

    @property
    def estimated_saving(self) -> float | None:
        """All-Hot minus the current tiering, a month (negative: the tiering costs more)."""
        now, hot = self.estimated_monthly_cost, self.estimated_all_hot_monthly_cost
        return None if now is None or hot is None else hot - now

    @property
    def estimated_saving_percent(self) -> float | None:
        saving, hot = self.estimated_saving, self.estimated_all_hot_monthly_cost
        return None if saving is None or not hot else 100.0 * saving / hot

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "objects": self.objects,
            "bytes": self.bytes,
            "tiers": [t.to_json() for t in self.tiers],
            "items": [i.to_json() for i in self.items],
            "points": [p.to_json() for p in self.points],
            "warnings": self.warnings,
        }
        if self.prices is not None:
            p = self.prices
            out["cost"] = {
                "estimate": True,
                "note": "estimates from list prices, not a bill: see prices.note and docs/costs.md",
                "currency": p.currency,
                "region": p.region,
                "prices_taken": p.prices_taken.isoformat(),
                "source": p.source,
                "estimated_monthly_cost": self.estimated_monthly_cost,
                "estimated_all_hot_monthly_cost": self.estimated_all_hot_monthly_cost,
                "estimated_saving": self.estimated_saving,
                "estimated_saving_percent": self.estimated_saving_percent,
                "prices": p.to_json(),
            }
        return out


class _Owners:
    """chunk id -> the one owner (a point or item number) referencing it, or SHARED."""

    def __init__(self) -> None:
        self.owner: dict[bytes, int] = {}

    def add(self, chunks: Iterable[bytes], who: int) -> None:
        owner = self.owner
        for c in chunks:
            prev = owner.get(c)
            if prev is None:
                owner[c] = who
            elif prev != who:
                owner[c] = SHARED


class _Pricer:
    """Each chunk's stored length and monthly price per byte (its pack's tier)."""

    def __init__(self, repo: Repository, tiers: dict[str, Tier], prices: PriceTable | None) -> None:
        self._lookup = repo.index.lookup
        self._tiers = tiers
        self._per_byte = {t: (prices.tier(t).storage_per_gb_month / GB if prices else 0.0) for t in Tier}
        self.unindexed = 0
        self.absent_packs: set[str] = set()

    def sizes(self, chunks: Iterable[bytes], *, tally: bool = False) -> tuple[int, float]:
        """(bytes, monthly cost) of ``chunks``; chunks no index lists count 0 (``tally``: counted in
        ``unindexed``), chunks of packs the listing lacks are priced as Hot (``absent_packs``)."""
        total, cost = 0, 0.0
        for c in chunks:
            loc = self._lookup(c)
            if loc is None:
                self.unindexed += tally
                continue
            n = loc.entry.length
            tier = self._tiers.get(loc.pack.name)
            if tier is None:
                if tally:
                    self.absent_packs.add(loc.pack.name)
                tier = Tier.HOT
            total += n
            cost += n * self._per_byte[tier]
        return total, cost


async def _point_chunks(repo: Repository, rec: SnapshotRecord, warnings: list[str]) -> set[bytes]:
    """Every chunk ``rec`` references (a fresh counter: shared subtrees count for each point)."""
    found: set[bytes] = set()

    def on_error(tid: bytes, exc: IntegrityError | BackendError) -> None:
        warnings.append(f"point {rec.id[:8]}: tree {tid.hex()[:16]} unreadable ({exc}): its figures are low")

    try:
        tree = bytes.fromhex(rec.tree)
    except ValueError:
        warnings.append(f"point {rec.id[:8]}: bad root tree id {rec.tree[:70]!r}: not counted")
        return found
    found.add(tree)
    await TreeCounter(repo, on_tree=chunk_collector(found), on_error=on_error).entries(tree)
    return found


async def gather_stats(repo: Repository, prices: PriceTable | None) -> StatsReport:
    """The stats of ``repo``; costs (estimates) when ``prices`` is given."""
    usage = {t: TierUsage(t) for t in Tier}
    hot = TierUsage(Tier.HOT)
    pack_tiers: dict[str, Tier] = {}
    async for info in repo.backend.list(""):
        if info.name.startswith(("data/", "meta/")):
            pack_tiers[info.name] = info.tier
        if prices is not None:
            usage[info.tier].add(info.size, prices)
            hot.add(info.size, prices)
        else:
            usage[info.tier].objects += 1
            usage[info.tier].bytes += info.size
    tiers = [
        TierStats(
            u.tier,
            u.objects,
            u.bytes,
            u.billable_bytes if prices else None,
            u.monthly_cost(prices) if prices else None,
        )
        for u in usage.values()
    ]
    warnings: list[str] = []
    pricer = _Pricer(repo, pack_tiers, prices)
    listed = [(s, parse_iso(s.time)) for s in await repo.list_snapshots()]
    listed.sort(key=lambda st: (st[0].item, st[1], st[0].id))
    snapshots = [s for s, _t in listed]
    points = [PointStats(s.id, s.item, t) for s, t in listed]
    items: list[ItemStats] = []
    point_owners, item_owners = _Owners(), _Owners()
    item_chunks: set[bytes] = set()
    for n, (rec, ps) in enumerate(zip(snapshots, points, strict=True)):
        if not items or items[-1].name != rec.item:
            item_chunks = set()
            items.append(ItemStats(rec.item))
        chunks = await _point_chunks(repo, rec, warnings)
        point_owners.add(chunks, n)
        item_owners.add(chunks, len(items) - 1)
        ps.chunks = len(chunks)
        ps.bytes, cost = pricer.sizes(chunks)
        ps.estimated_monthly_cost = cost if prices else None
        item_chunks |= chunks
        it = items[-1]
        it.points += 1
        if n + 1 == len(snapshots) or snapshots[n + 1].item != rec.item:  # the item's last point
            it.chunks = len(item_chunks)
            it.bytes, cost = pricer.sizes(item_chunks)
            it.estimated_monthly_cost = cost if prices else None
            item_chunks = set()
    _unique(point_owners, points, pricer, prices is not None, tally=True)
    _unique(item_owners, items, pricer, prices is not None, tally=False)
    if pricer.unindexed:
        warnings.append(f"{pricer.unindexed:,} referenced chunk(s) are in no index: not counted (run check)")
    if pricer.absent_packs:
        warnings.append(
            f"{len(pricer.absent_packs):,} pack(s) holding referenced chunks are not in the store listing: "
            "their chunks are priced as Hot (run check)"
        )
    return StatsReport(
        tiers=tiers,
        items=items,
        points=sorted(points, key=lambda p: (p.time, p.id)),
        prices=prices,
        estimated_all_hot_monthly_cost=hot.monthly_cost(prices) if prices else None,
        warnings=warnings,
    )


def _unique(
    owners: _Owners, rows: list[PointStats] | list[ItemStats], pricer: _Pricer, cost: bool, *, tally: bool
) -> None:
    """Fill ``unique_bytes`` (and its cost) of each row from the chunks it alone references, in one
    pass over the distinct chunks (``tally``: count the unindexed ones, each once)."""
    for row in rows:
        row.unique_bytes, row.estimated_unique_monthly_cost = 0, 0.0 if cost else None
    sizes = pricer.sizes
    for c, who in owners.owner.items():
        n, price = sizes((c,), tally=tally)
        if who != SHARED:
            row = rows[who]
            row.unique_bytes += n
            if cost:
                row.estimated_unique_monthly_cost = (row.estimated_unique_monthly_cost or 0.0) + price
