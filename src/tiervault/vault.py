"""The :class:`Vault`: an opened repository and every operation on it, through the public API.

Each method is thin: the rules live in the engine modules it calls (``protection``, ``selection``,
``backup``, ``restorer``, ``maintenance``), and the results are the value types of ``models``.
``api.open`` / ``api.init`` build the backend stack and hand it in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from types import TracebackType

from tiervault import backup, protection, retention, selection
from tiervault.archiver import Progress
from tiervault.backend.base import RehydratePriority
from tiervault.cache import CacheBackend
from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.costs import PriceTable, default_prices, load_prices, rehydration_cost
from tiervault.deadline import stop_time
from tiervault.errors import LimitError, NotFoundError, RehydrationNeededError, UsageError
from tiervault.models import Entry, Item, RecoveryPoint, RestoreResult, SnapshotResult
from tiervault.policy import Policy
from tiervault.prune import PruneReport
from tiervault.prune import run as prune_run
from tiervault.reads import counting_reads
from tiervault.repo.repository import Repository
from tiervault.repo.snapshots import SnapshotRecord
from tiervault.repo.treewalk import DEFAULT_MAX_ENTRIES, TreeCounter, node_at, walk
from tiervault.restore import RestorePlanSummary, Restorer, Selection, rehydration
from tiervault.restore.placement import check_target
from tiervault.restore.rehydration import RehydrationProgress
from tiervault.retention import RetentionDecision
from tiervault.stats import StatsReport, gather_stats
from tiervault.tiering import TierReport
from tiervault.tiering import run as tiering_run
from tiervault.vaultadmin import Password, VaultAdmin, password_bytes

__all__ = ["Password", "Vault", "password_bytes"]

log = logging.getLogger("tiervault.vault")


class Vault(VaultAdmin):
    """An opened repository. Use ``async with tiervault.open(...) as vault``.

    ``clock`` is the time snapshot and restore deadlines are measured with (``open(..., clock=)``; a
    fake one makes them testable).
    """

    def __init__(
        self, repo: Repository, *, cache: CacheBackend | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._closed = False
        #: the disk tier in ``repo.backend``'s stack (``_backend_for`` built it), if any
        self._cache = cache

    @property
    def repository_id(self) -> str:
        return self._repo.id

    @property
    def location(self) -> str:
        return self._repo.backend.location

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._repo.backend.aclose()

    async def __aenter__(self) -> Vault:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ items

    async def protect(self, path: str | os.PathLike[str], *, name: str, policy: Policy | None = None) -> Item:
        """Register a folder under ``name`` with a policy, or update the policy of an existing item
        (``policy=None`` keeps an existing item's policy; a new item gets ``Policy()``).

        Re-protecting an existing name with a different path is refused (it would mix two sources in
        one history).
        """
        await self._repo.require_writable("protect an item")
        return Item._from(await protection.protect(self._repo, path, name=name, policy=policy))

    async def items(self) -> list[Item]:
        return [Item._from(r) for r in await protection.usable_items(self._repo)]

    async def item(self, name: str) -> Item:
        return Item._from(await protection.find_item(self._repo, name))

    # ------------------------------------------------------------------ snapshots

    async def snapshot(
        self,
        item: str | Item,
        *,
        tags: Sequence[str] = (),
        force_rehash: bool = False,
        progress: Progress | None = None,
        deadline: float | datetime | None = None,
        time: datetime | None = None,
    ) -> SnapshotResult:
        """Take a recovery point of a protected item.

        ``time`` (an aware datetime) records the point at that time instead of now (importing
        history, rehearsing a retention policy, as restic's ``backup --time``): listings, ``latest``
        and retention order points by it; the commit time is kept as ``point.committed``. A naive
        datetime is a ``UsageError``.

        Files unchanged since the previous point of the same item on this host (same size, mtime,
        ctime and inode) are not read again unless ``force_rehash``. A file that cannot be read is
        listed in ``errors`` and the result is ``partial``; the point is still committed.

        ``deadline`` (seconds from now, or an aware datetime) bounds the run, for Azure Functions:
        before it, the snapshot stops taking new files, stores what it has and commits an
        *incomplete* point (``result.incomplete``). That point is the checkpoint: the next call for
        the same item resumes from it, reading only what it did not finish and uploading nothing
        that is already stored. ``latest`` never resolves to an incomplete point. Every run finishes at
        least one file, so repeated runs under even a very short deadline converge.

        A file that changed while it was read is read again; one that changed again is stored as read
        and listed in ``warnings`` (also kept in the point). Cancelling the task stops the snapshot's
        threads before the cancellation completes, and commits no point.
        """
        await self._repo.require_writable("take a snapshot")
        it = await protection.find_item(self._repo, item.name if isinstance(item, Item) else item)
        done = await backup.take(
            self._repo,
            it,
            clock=self._clock,
            disk_tier=self._cache,
            tags=tags,
            force_rehash=force_rehash,
            progress=progress,
            deadline=deadline,
            time=time,
        )
        out = done.outcome
        return SnapshotResult(
            RecoveryPoint._from(done.record), out.stats, tuple(out.errors), tuple(out.warnings)
        )

    async def points(
        self, item: str | None = None, *, tags: Sequence[str] | None = None
    ) -> list[RecoveryPoint]:
        """Recovery points, oldest first, optionally of one item and having all of ``tags``.

        A damaged snapshot object is left out and logged as a warning naming it (logger
        ``tiervault.repo``); ``check`` reports it as an error. ``latest`` and the parent of a new
        snapshot skip damaged points the same way."""
        return [RecoveryPoint._from(s) for s in await selection.matching(self._repo, item, tags)]

    async def point(self, ref: str | RecoveryPoint) -> RecoveryPoint:
        """A point by id, unique id prefix, ``latest`` or ``latest:<item>``."""
        return RecoveryPoint._from(await self._record(ref))

    async def _record(self, ref: str | RecoveryPoint) -> SnapshotRecord:
        if isinstance(ref, RecoveryPoint):
            return await self._repo.load_snapshot(ref.id)
        return await selection.resolve(self._repo, ref)

    async def ls(
        self,
        point: str | RecoveryPoint,
        path: str = "",
        *,
        recursive: bool = False,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> list[Entry]:
        """The entries of directory ``path`` inside a recovery point (or the entry itself for a file).

        ``recursive`` lists everything below it: more than ``max_entries`` entries (counted first, one
        pass over the distinct trees) is a ``LimitError`` rather than a listing without end."""
        rec = await self._record(point)
        parts = [p for p in os.fsencode(path).split(b"/") if p not in (b"", b".")]
        rel = b"/".join(parts)
        node = await node_at(self._repo, bytes.fromhex(rec.tree), rel) if parts else None
        if parts and node is None:
            raise NotFoundError(f"{path!r} is not in recovery point {rec.id[:8]}")
        if node is not None and node.subtree is None:
            return [Entry._from(os.fsdecode(rel), node)]
        tree = node.subtree if node is not None and node.subtree is not None else bytes.fromhex(rec.tree)
        if recursive:
            total = await TreeCounter(self._repo).entries(tree)
            if total > max_entries:
                raise LimitError(
                    f"{path or 'the point'} holds {total:,} entries, more than max_entries={max_entries:,} "
                    "(ls --max-entries) lists"
                )
        return [
            Entry._from(os.fsdecode(entry_path), entry)
            async for entry_path, entry in walk(
                self._repo, tree, prefix=rel, descend=lambda _p, _n: recursive
            )
        ]

    async def plan_restore(
        self,
        point: str | RecoveryPoint,
        *,
        paths: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        priority: str | RehydratePriority = RehydratePriority.STANDARD,
        prices: str | os.PathLike[str] | None = None,
    ) -> RestorePlanSummary:
        """What restoring ``point`` (or the selection, as for ``restore``) needs, writing nothing:
        files, directories, bytes, and the packs to read by state (``readable``, ``archived``,
        ``rehydrating``, ``missing``) with their bytes by tier (``disk`` for the local disk tier,
        else the store's); the files restorable right now (``now_files``, ``now_bytes``: all their
        packs readable); and the packs still in Archive (``rehydrate_packs``, ``rehydrate_bytes``:
        their whole sizes) with, in ``rehydration``, the estimated wait at ``priority`` and the
        progress of a rehydration in progress (docs/restore-archive.md). A pack whose staging copy
        is ready counts as readable. ``restore`` refuses to start unless ``readable`` (or
        ``rehydrate``). ``max_entries`` as for ``restore``. With packs to rehydrate, ``rehydration``
        also holds ``estimated_cost`` (the rehydration charge and one read per pack, from the price
        table: the shipped one, or the ``prices`` file; docs/costs.md) with its ``currency``."""
        rec = await self._record(point)
        sel = Selection(paths, include, exclude)
        prio = rehydration.check_priority(priority)
        table = load_prices(prices) if prices is not None else None
        summary = await rehydration.plan_from_archive(
            self._repo,
            rec,
            sel,
            priority=prio,
            now=self._clock.now(),
            local=self._cache,
            max_entries=max_entries,
        )
        if summary.rehydration is not None and summary.rehydrate_packs:
            table = table or default_prices()
            summary.rehydration["estimated_cost"] = rehydration_cost(
                summary.rehydrate_bytes, summary.rehydrate_packs, prio, table
            )
            summary.rehydration["currency"] = table.currency
        return summary

    async def restore(
        self,
        point: str | RecoveryPoint,
        target: str | os.PathLike[str],
        *,
        paths: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        verify: bool = False,
        deadline: float | datetime | None = None,
        force: bool = False,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        rehydrate: bool = False,
        priority: str | RehydratePriority = RehydratePriority.STANDARD,
        wait: bool = False,
        poll_seconds: float = rehydration.POLL_SECONDS,
        progress: Callable[[RehydrationProgress], None] | None = None,
    ) -> RestoreResult:
        """Rebuild a recovery point (or the selected part of it) under ``target``.

        ``paths`` are paths inside the point; ``include``/``exclude`` are glob patterns matched
        against each path and its components. Files already identical in ``target`` are left
        alone; others are replaced atomically. ``verify`` re-reads every restored file. Nothing
        outside ``target`` is ever changed, whatever the point holds (docs/architecture.md,
        "Restore").

        ``deadline`` (seconds from now, or an aware datetime, less a reserve): once it has passed
        and this run has finished at least one file, no new read starts; files finished by then are
        complete, and the result is ``incomplete``. The same restore into the same target resumes:
        complete files are recognised by their content and skipped, so repeated runs converge even
        under a budget shorter than the reserve.

        A target inside the item's protected source (the next snapshot would hold the restored copy
        too) is refused with ``UsageError`` unless ``force``; then it is a warning. Restoring over
        the source itself is allowed. A restore that could put nothing in place (a read-only target,
        every entry failing) raises ``TiervaultError``; per-entry failures otherwise are in
        ``errors``.

        Before anything is written, every pack the restore reads is checked (``plan_restore``): one
        in the Archive tier or being rehydrated raises ``ObjectArchivedError``, a missing one
        ``ObjectNotFoundError``, each naming how many packs and bytes. A restore plans its entries in
        memory: more than ``max_entries`` (10 million by default; with ``paths``, only what they hold
        counts) is a ``LimitError`` before anything is planned.

        Archived packs refuse the restore (``RehydrationNeededError``, with the plan's summary)
        unless ``rehydrate``: then the packs are copied out of Archive at ``priority`` to staging
        copies, and the result is ``awaiting_rehydration`` (nothing written) until they are
        readable; the same restore run again, from any process or host, continues, restores from the
        copies and deletes them (docs/restore-archive.md). ``wait`` polls every ``poll_seconds`` of
        the vault's clock instead, calling ``progress`` with each ``RehydrationProgress``, until the
        packs are readable or ``deadline`` would pass during the next poll (then: awaiting).
        """
        prio = rehydration.check_priority(priority)
        stop_at = stop_time(deadline, self._clock)
        with counting_reads() as reads:  # every read of this restore per tier, the point's record too
            rec = await self._record(point)
            await check_target(rec, target, force=force)
            restorer = Restorer(
                self._repo,
                rec,
                target,
                paths=paths,
                include=include,
                exclude=exclude,
                verify=verify,
                stop_at=stop_at,
                clock=self._clock,
                local=self._cache,
                reads=reads,
                max_entries=max_entries,
            )
            if not rehydrate:
                try:
                    stats, errors = await restorer.run()
                except RehydrationNeededError as exc:
                    raise rehydration.explain(exc, prio) from None
                return RestoreResult(stats, tuple(errors), restorer.incomplete)
            out = await rehydration.RehydratingRestore(
                restorer,
                priority=prio,
                clock=self._clock,
                wait=wait,
                poll_seconds=poll_seconds,
                progress=progress,
            ).run()
        if out.stats is None:
            return RestoreResult(
                restorer.stats,
                rehydration=out.progress,
                awaiting_rehydration=True,
                plan=out.summary,
            )
        return RestoreResult(
            out.stats,
            tuple(out.errors),
            restorer.incomplete,
            rehydration=out.progress,
            plan=None,
            staging_removed=out.cleaned,
        )

    async def forget(
        self,
        item: str | Item | None = None,
        *,
        policy: Policy | None = None,
        dry_run: bool = False,
        tz: tzinfo | None = None,
    ) -> list[RetentionDecision]:
        """Apply retention: each item's own policy (or ``policy`` for every item), to the points of
        ``item`` or of every item; returns the decision for every point, oldest first, kept or
        removed with its reasons (docs/format.md, "Retention"). Buckets are in UTC unless ``tz``.

        Unless ``dry_run``, the snapshot objects of removed points are deleted, and only those: the
        data they referenced stays until a prune. Points committed after the listing are not
        decided and never deleted; a damaged point is not listed and so never deleted either. An
        unknown ``item`` is a ``NotFoundError``; points of an item that is no longer protected are
        decided by ``policy`` when given, else kept."""
        names = [item.name if isinstance(item, Item) else item] if item is not None else None
        if not dry_run:
            await self._repo.require_writable("forget recovery points")
        policies: dict[str, Policy] = {}
        for rec in await protection.usable_items(self._repo):
            policies[rec.name] = Policy.from_json(rec.policy)
        if names is not None and names[0] not in policies:
            await protection.find_item(self._repo, names[0])  # the NotFoundError naming the item
        points = [
            RecoveryPoint._from(s)
            for s in await selection.matching(self._repo)
            if names is None or s.item in names
        ]
        by_item: dict[str, list[RecoveryPoint]] = {}
        for p in points:
            by_item.setdefault(p.item, []).append(p)
        decisions: list[RetentionDecision] = []
        for name, mine in by_item.items():
            decisions.extend(retention.decide(mine, policy or policies.get(name, Policy()), tz=tz))
        decisions.sort(key=lambda d: (d.time, d.id))
        gone = [d.id for d in decisions if not d.keep]
        if gone and not dry_run:
            await self._repo.backend.delete_many(["snapshots/" + sid for sid in gone])
            log.info("forgot %d recovery point(s): %s", len(gone), ", ".join(g[:8] for g in gone))
        return decisions

    async def prune(
        self,
        *,
        dry_run: bool = False,
        max_unused: float | int = prune_run.DEFAULT_MAX_UNUSED,
        max_repack_bytes: int | None = None,
        allow_early_delete: bool = False,
        prices: str | os.PathLike[str] | PriceTable | None = None,
    ) -> PruneReport:
        """Delete the data no recovery point references, in two phases (docs/format.md, "prune, step
        by step"): a run condemns unreferenced packs and repacks partly used ones (while more than
        ``max_unused`` of the kept packs' bytes are unused: a fraction as a float, bytes as an int;
        at most ``max_repack_bytes`` copied), and a later run, once ``GRACE`` has passed and every
        snapshot that started before has ended, deletes them. Takes the exclusive prune lease (a
        second prune gets ``LeaseHeldError`` naming the holder). ``dry_run`` reports what would be
        done. A damaged snapshot or tree makes it refuse (``report.refused``), deleting nothing.

        A pack in Cool, Cold or Archive still inside the tier's minimum retention (``prices``: a
        price file or ``PriceTable``, default the shipped one) is neither swept nor repacked: it
        stays condemned (or kept), and the report lists it with the date its minimum ends and the
        charge avoided, unless ``allow_early_delete``, which deletes it and reports the charge.

        Version-2 repositories only: a version-1 one refuses (``tiervault upgrade`` first)."""
        if not self._repo.gc_enabled:
            raise UsageError(
                f"the repository at {self.location} is format version 1, which never deletes data: "
                "run `tiervault upgrade` first to prune it"
            )
        table = prices if isinstance(prices, PriceTable) or prices is None else load_prices(prices)
        await self._repo.require_writable("prune")
        report = await prune_run.prune(
            self._repo,
            dry_run=dry_run,
            max_unused=max_unused,
            max_repack_bytes=max_repack_bytes,
            clock=self._clock,
            allow_early_delete=allow_early_delete,
            prices=table,
        )
        if not dry_run:  # this vault's own view: what the prune condemned, deleted and consolidated
            await self._repo.refresh_gc_view(reload_index=not self._repo.sessions.running)
        return report

    async def stats(
        self, *, cost: bool = False, prices: str | os.PathLike[str] | PriceTable | None = None
    ) -> StatsReport:
        """Objects and bytes per access tier (one listing of the store), and per item and recovery
        point the bytes their chunks take and the bytes no other item or point references
        (docs/costs.md). ``cost`` adds *estimated* monthly costs from a price table: the shipped one
        (list prices, see its ``note``), or ``prices`` (a price file, or a ``PriceTable``); it also
        gives what the same objects would cost all in Hot. ``prices`` without ``cost`` is a
        ``UsageError``, as is a price file that is not a valid table (the error names the field)."""
        if prices is not None and not cost:
            raise UsageError("prices= (stats --prices) needs cost=True (stats --cost)")
        table: PriceTable | None = None
        if cost:
            if isinstance(prices, PriceTable):
                table = prices
            else:
                table = default_prices() if prices is None else load_prices(prices)
        return await gather_stats(self._repo, table)

    async def tier(
        self, *, dry_run: bool = False, as_of: datetime | None = None, tz: tzinfo | None = None
    ) -> TierReport:
        """Move data packs to colder tiers by their items' policies (docs/tiering.md): each pack as
        the warmest rule of the live points needing it says, metadata always Hot, never warmer,
        never into a tier whose minimum retention would outlast the points needing it. Batched and
        resumable (a re-run plans what is left). ``dry_run`` plans without moving; ``as_of`` (a
        future time, a naive one UTC) previews the plan at that time and moves nothing. ``tz``: the
        time zone retention buckets in when predicting which points last (as ``forget``'s)."""
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        when = now if as_of is None else tiering_run.check_as_of(as_of, now)
        preview = dry_run or as_of is not None
        if not preview:
            await self._repo.require_writable("tier")
            if not self._repo.backend.capabilities.tiers:
                raise UsageError(f"{self.location} has no access tiers: nothing can be tiered")
        gc = await self._repo.refresh_gc_view(reload_index=not self._repo.sessions.running)
        return await tiering_run.tier(self._repo, gc, when, dry_run=preview, tz=tz)
