"""Test-only backends: ``MemoryBackend`` (the storage contract in a dict) and ``FaultyBackend``.

``MemoryBackend`` keeps exactly the contract of ``tiervault.backend.base`` (same name rules, tier and
lease semantics as ``LocalBackend``), so unit tests above the backend layer run fast and without disk.

``FaultyBackend`` wraps any backend and injects the failures the layers above must survive::

    faulty = FaultyBackend(MemoryBackend())
    faulty.fail_call("get", nth=2)              # the 2nd get from now raises TransientBackendError
    faulty.corrupt("data/ab/ab12")              # reads of that object return one flipped bit
    faulty.lose_put_response("index/1")         # the put happens, then TransientBackendError
"""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from tiervault.backend.base import (
    Backend,
    Capabilities,
    Lease,
    ObjectInfo,
    RehydratePriority,
    Tier,
    validate_age,
    validate_name,
    validate_prefix,
)
from tiervault.clock import SYSTEM_CLOCK, Clock
from tiervault.errors import (
    BackendError,
    LeaseHeldError,
    ObjectArchivedError,
    ObjectNotFoundError,
    TransientBackendError,
    UsageError,
)

__all__ = ["FAULTABLE", "FaultyBackend", "FaultyLease", "MemoryBackend", "MemoryLease", "StoredObject"]

_ids = itertools.count(1)
#: tiers and leases as ``LocalBackend`` emulates them; no batches, no container, not remote
MEMORY_CAPABILITIES = Capabilities(tiers=True, leases=True)


def _check_range(offset: int, length: int | None) -> None:
    if offset < 0:
        raise UsageError(f"offset must be >= 0, not {offset}")
    if length is not None and length < 0:
        raise UsageError(f"length must be >= 0 or None, not {length}")


@dataclass(slots=True)
class StoredObject:
    """One object of a :class:`MemoryBackend` (tests may inspect it)."""

    data: bytes
    modified: float
    tier: Tier = Tier.HOT
    rehydrate_until: float | None = None
    #: when the object entered ``tier`` (the backend's clock); None: since it was written
    tier_changed: float | None = None


class MemoryBackend:
    """The storage contract in a dict. ``objects`` is public so tests can inspect (or damage) it."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, rehydrate_seconds: float = 0.0) -> None:
        self.objects: dict[str, StoredObject] = {}
        #: leftovers of unfinished writes (``leave_incomplete``), as ``list_incomplete`` reports them
        self.incomplete: dict[str, StoredObject] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._clock = clock
        self._rehydrate_seconds = rehydrate_seconds
        self._location = f"memory://{next(_ids)}"
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryBackend({self._location!r})"

    @property
    def location(self) -> str:
        return self._location

    @property
    def capabilities(self) -> Capabilities:
        return MEMORY_CAPABILITIES

    async def create_container(self) -> bool:
        if self._closed:
            raise UsageError(f"{self!r} is closed")
        return False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True

    # ------------------------------------------------------------------------------ helpers

    async def _enter(self, name: str) -> None:
        """Common preamble: open check, name check, and one scheduling point (as real I/O would)."""
        if self._closed:
            raise UsageError(f"{self!r} is closed")
        validate_name(name)
        await asyncio.sleep(0)

    def _obj(self, name: str) -> StoredObject:
        try:
            return self.objects[name]
        except KeyError:
            raise ObjectNotFoundError(name) from None

    def _effective(self, obj: StoredObject) -> tuple[Tier, bool]:
        if obj.tier is Tier.ARCHIVE and obj.rehydrate_until is not None:
            if self._clock.now() >= obj.rehydrate_until:
                return Tier.HOT, False
            return Tier.ARCHIVE, True
        return obj.tier, False

    def _info(self, name: str, obj: StoredObject) -> ObjectInfo:
        tier, rehydrating = self._effective(obj)
        changed = obj.modified if obj.tier_changed is None else obj.tier_changed
        if obj.tier is Tier.ARCHIVE and tier is Tier.HOT and obj.rehydrate_until is not None:
            changed = obj.rehydrate_until  # rehydrated: Hot since the rehydration finished
        modified = datetime.fromtimestamp(obj.modified, UTC)
        return ObjectInfo(
            name, len(obj.data), tier, modified, rehydrating, datetime.fromtimestamp(changed, UTC)
        )

    def _readable(self, name: str) -> bytes:
        obj = self._obj(name)
        tier, rehydrating = self._effective(obj)
        if tier is Tier.ARCHIVE:
            state = "is being rehydrated" if rehydrating else "must be rehydrated first"
            raise ObjectArchivedError(f"{name!r} is in the Archive tier and {state}")
        return obj.data

    def overwrite(self, name: str, data: bytes) -> None:
        """Test hook: replace an object's bytes in place (simulates bit rot or tampering)."""
        self._obj(name).data = bytes(data)

    def leave_incomplete(self, name: str, data: bytes) -> None:
        """Test hook: what a writer killed in the middle of a put would leave (written now)."""
        self.incomplete[name] = StoredObject(bytes(data), self._clock.now())

    # ----------------------------------------------------------------------------- contract

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        await self._enter(name)
        if name in self.objects:
            return False
        self.objects[name] = StoredObject(bytes(data), self._clock.now())
        return True

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        await self._enter(name)
        _check_range(offset, length)
        data = self._readable(name)
        return data[offset:] if length is None else data[offset : offset + length]

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        await self._enter(name)
        _check_range(offset, length)
        if block_size <= 0:
            raise UsageError(f"block_size must be > 0, not {block_size}")
        data = self._readable(name)
        end = len(data) if length is None else min(len(data), offset + length)
        for pos in range(offset, end, block_size):
            yield data[pos : min(pos + block_size, end)]
            await asyncio.sleep(0)

    async def stat(self, name: str) -> ObjectInfo:
        await self._enter(name)
        return self._info(name, self._obj(name))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        if self._closed:
            raise UsageError(f"{self!r} is closed")
        validate_prefix(prefix)
        await asyncio.sleep(0)
        snapshot = [(n, o) for n, o in self.objects.items() if n.startswith(prefix)]
        for name, obj in snapshot:
            yield self._info(name, obj)

    async def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        if self._closed:
            raise UsageError(f"{self!r} is closed")
        await asyncio.sleep(0)
        for name, obj in list(self.incomplete.items()):
            yield ObjectInfo(name, len(obj.data), Tier.HOT, datetime.fromtimestamp(obj.modified, UTC))

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        if self._closed:
            raise UsageError(f"{self!r} is closed")
        age = validate_age(older_than)
        await asyncio.sleep(0)
        now = self._clock.now()
        removed = []
        for name, obj in list(self.incomplete.items()):
            if now - obj.modified > age:
                del self.incomplete[name]
                removed.append(
                    ObjectInfo(name, len(obj.data), Tier.HOT, datetime.fromtimestamp(obj.modified, UTC))
                )
        return removed

    async def delete_many(self, names: Sequence[str]) -> None:
        for name in names:
            await self.delete(name)

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        for name in names:
            await self.set_tier(name, tier)

    async def delete(self, name: str) -> None:
        await self._enter(name)
        self.objects.pop(name, None)

    async def set_tier(self, name: str, tier: Tier) -> None:
        await self._enter(name)
        try:
            tier = Tier(tier)
        except ValueError:
            raise UsageError(f"unknown tier {tier!r}") from None
        obj = self._obj(name)
        current, _ = self._effective(obj)
        if current is Tier.ARCHIVE:
            if tier is Tier.ARCHIVE:
                return
            raise UsageError(f"{name!r} is in the Archive tier: use rehydrate to move it out")
        if tier is not current:
            obj.tier, obj.rehydrate_until, obj.tier_changed = tier, None, self._clock.now()

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        await self._enter(name)
        try:
            RehydratePriority(priority)
        except ValueError:
            raise UsageError(f"unknown rehydrate priority {priority!r}") from None
        obj = self._obj(name)
        tier, rehydrating = self._effective(obj)
        if tier is Tier.ARCHIVE and not rehydrating:
            obj.rehydrate_until = self._clock.now() + self._rehydrate_seconds

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        await self._enter(src)
        validate_name(dst)
        try:
            RehydratePriority(priority)
        except ValueError:
            raise UsageError(f"unknown rehydrate priority {priority!r}") from None
        source = self._obj(src)
        if dst in self.objects:
            return False
        now = self._clock.now()
        if self._effective(source)[0] is Tier.ARCHIVE:
            copy = StoredObject(source.data, now, Tier.ARCHIVE, now + self._rehydrate_seconds)
        else:
            copy = StoredObject(source.data, now)
        self.objects[dst] = copy
        return True

    async def acquire_lease(self, name: str, *, duration: float) -> MemoryLease:
        await self._enter(name)
        if not (duration > 0 and math.isfinite(duration)):
            raise UsageError(f"lease duration must be a finite number of seconds > 0, not {duration!r}")
        if name not in self.objects:
            self.objects[name] = StoredObject(b"", self._clock.now())
        now = self._clock.now()
        current = self._leases.get(name)
        if current is not None and current[1] > now:
            raise LeaseHeldError(f"{name!r} is leased by another holder for {current[1] - now:.1f}s more")
        lease_id = uuid.uuid4().hex
        self._leases[name] = (lease_id, now + duration)
        return MemoryLease(self, name, lease_id, float(duration))

    # ------------------------------------------------------------------------- lease helpers

    async def _renew(self, name: str, lease_id: str, duration: float) -> None:
        await asyncio.sleep(0)
        current = self._leases.get(name)
        if current is None or current[0] != lease_id:
            raise LeaseHeldError(f"the lease on {name!r} was lost (released, or expired and taken)")
        self._leases[name] = (lease_id, self._clock.now() + duration)

    async def _release(self, name: str, lease_id: str) -> None:
        await asyncio.sleep(0)
        current = self._leases.get(name)
        if current is not None and current[0] == lease_id:
            del self._leases[name]


class MemoryLease:
    """A lease on a :class:`MemoryBackend` object."""

    def __init__(self, backend: MemoryBackend, name: str, lease_id: str, duration: float) -> None:
        self._backend = backend
        self._name = name
        self.lease_id = lease_id
        self.duration = duration

    @property
    def name(self) -> str:
        return self._name

    async def renew(self) -> None:
        await self._backend._renew(self._name, self.lease_id, self.duration)

    async def release(self) -> None:
        await self._backend._release(self._name, self.lease_id)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


# ------------------------------------------------------------------------------------ faults

#: Methods ``fail_call`` can target ("lease.renew" / "lease.release" act on leases it handed out).
FAULTABLE = frozenset(
    {
        "put_if_absent",
        "get",
        "open_read",
        "stat",
        "list",
        "list_incomplete",
        "delete_incomplete",
        "delete",
        "set_tier",
        "rehydrate",
        "copy_rehydrate",
        "acquire_lease",
        "create_container",
        "lease.renew",
        "lease.release",
    }
)


@dataclass(slots=True)
class _FailRule:
    method: str
    name: str | None
    skip: int
    count: int
    error: BackendError | None


@dataclass(slots=True)
class _LostPut:
    name: str | None
    remaining: int


@dataclass(slots=True)
class _Corruption:
    position: int | None


def _flip(block: bytes, index: int) -> bytes:
    damaged = bytearray(block)
    damaged[index] ^= 0x01
    return bytes(damaged)


class FaultyBackend:
    """Wraps any backend and injects faults; with none armed it is a transparent pass-through.

    ``calls`` counts every call per method name; ``injected`` records each fault fired (a string).
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.injected: list[str] = []
        self._rules: list[_FailRule] = []
        self._corrupt: dict[str, _Corruption] = {}
        self._lost_puts: list[_LostPut] = []

    def __repr__(self) -> str:
        return f"FaultyBackend({self.inner!r})"

    # ------------------------------------------------------------------------------ arming

    def fail_call(
        self,
        method: str,
        *,
        nth: int = 1,
        count: int = 1,
        name: str | None = None,
        error: BackendError | None = None,
    ) -> None:
        """Make the ``nth`` call of ``method`` from now (1 = the next one) and the ``count - 1`` calls
        after it raise ``error`` (default ``TransientBackendError``) without reaching the inner backend.

        With ``name``, only calls for that object (for ``list``: that prefix) are counted and failed.
        """
        if method not in FAULTABLE:
            raise ValueError(f"unknown method {method!r}; one of {sorted(FAULTABLE)}")
        if nth < 1 or count < 1:
            raise ValueError("nth and count must be >= 1")
        self._rules.append(_FailRule(method, name, nth - 1, count, error))

    def corrupt(self, name: str, *, position: int | None = None) -> None:
        """Flip one bit in the bytes ``get``/``open_read`` return for ``name`` (the store is untouched).

        ``position`` is an offset in the object: only reads covering it are damaged. ``None`` damages
        the first byte of every non-empty read of ``name``.
        """
        self._corrupt[name] = _Corruption(position)

    def lose_put_response(self, name: str | None = None, *, count: int = 1) -> None:
        """The next ``count`` ``put_if_absent`` calls (for ``name``, or any) do write, then raise
        ``TransientBackendError`` as if the response had been lost on the way back."""
        if count < 1:
            raise ValueError("count must be >= 1")
        self._lost_puts.append(_LostPut(name, count))

    def heal(self) -> None:
        """Disarm every fault (counters are kept)."""
        self._rules.clear()
        self._corrupt.clear()
        self._lost_puts.clear()

    # ------------------------------------------------------------------------------ firing

    def _before(self, method: str, name: str) -> None:
        self.calls[method] += 1
        error: BackendError | None = None
        for rule in self._rules:
            if rule.method != method or (rule.name is not None and rule.name != name):
                continue
            if rule.skip > 0:
                rule.skip -= 1
            elif rule.count > 0:
                rule.count -= 1
                if error is None:
                    error = rule.error or TransientBackendError(f"injected fault: {method} {name!r}")
        self._rules = [r for r in self._rules if r.count > 0]
        if error is not None:
            self.injected.append(f"{method} {name}")
            raise error

    def _lose_put(self, name: str) -> bool:
        for entry in self._lost_puts:
            if entry.name is None or entry.name == name:
                entry.remaining -= 1
                self._lost_puts = [e for e in self._lost_puts if e.remaining > 0]
                return True
        return False

    def _damage(self, name: str, offset: int, block: bytes, first: bool) -> bytes:
        spec = self._corrupt.get(name)
        if spec is None or not block:
            return block
        if spec.position is None:
            if not first:
                return block
            index = 0
        elif offset <= spec.position < offset + len(block):
            index = spec.position - offset
        else:
            return block
        self.injected.append(f"corrupt {name}@{offset + index}")
        return _flip(block, index)

    # ---------------------------------------------------------------------------- contract

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def create_container(self) -> bool:
        self._before("create_container", "")
        return await self.inner.create_container()

    async def put_if_absent(self, name: str, data: bytes | memoryview) -> bool:
        self._before("put_if_absent", name)
        created = await self.inner.put_if_absent(name, data)
        if self._lose_put(name):
            self.injected.append(f"lost put response {name}")
            raise TransientBackendError(f"injected fault: response to put {name!r} lost (created={created})")
        return created

    async def get(self, name: str, *, offset: int = 0, length: int | None = None) -> bytes:
        self._before("get", name)
        data = await self.inner.get(name, offset=offset, length=length)
        return self._damage(name, offset, data, first=True)

    async def open_read(
        self, name: str, *, offset: int = 0, length: int | None = None, block_size: int = 4 << 20
    ) -> AsyncIterator[bytes]:
        self._before("open_read", name)
        pos, first = offset, True
        async for block in self.inner.open_read(name, offset=offset, length=length, block_size=block_size):
            damaged = self._damage(name, pos, block, first=first)
            first = first and not block
            pos += len(block)
            yield damaged

    async def stat(self, name: str) -> ObjectInfo:
        self._before("stat", name)
        return await self.inner.stat(name)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self._before("list", prefix)
        async for info in self.inner.list(prefix):
            yield info

    async def list_incomplete(self) -> AsyncIterator[ObjectInfo]:
        self._before("list_incomplete", "")
        async for info in self.inner.list_incomplete():
            yield info

    async def delete_incomplete(self, *, older_than: float) -> Sequence[ObjectInfo]:
        self._before("delete_incomplete", "")
        return await self.inner.delete_incomplete(older_than=older_than)

    async def delete_many(self, names: Sequence[str]) -> None:
        for name in names:
            await self.delete(name)

    async def set_tier_many(self, names: Sequence[str], tier: Tier) -> None:
        for name in names:
            await self.set_tier(name, tier)

    async def delete(self, name: str) -> None:
        self._before("delete", name)
        await self.inner.delete(name)

    async def set_tier(self, name: str, tier: Tier) -> None:
        self._before("set_tier", name)
        await self.inner.set_tier(name, tier)

    async def rehydrate(self, name: str, *, priority: RehydratePriority = RehydratePriority.STANDARD) -> None:
        self._before("rehydrate", name)
        await self.inner.rehydrate(name, priority=priority)

    async def copy_rehydrate(
        self, src: str, dst: str, *, priority: RehydratePriority = RehydratePriority.STANDARD
    ) -> bool:
        self._before("copy_rehydrate", dst)
        return await self.inner.copy_rehydrate(src, dst, priority=priority)

    async def acquire_lease(self, name: str, *, duration: float) -> FaultyLease:
        self._before("acquire_lease", name)
        return FaultyLease(self, await self.inner.acquire_lease(name, duration=duration))

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class FaultyLease:
    """A lease from the inner backend whose ``renew``/``release`` can be failed on demand."""

    def __init__(self, owner: FaultyBackend, inner: Lease) -> None:
        self._owner = owner
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    async def renew(self) -> None:
        self._owner._before("lease.renew", self.name)
        await self.inner.renew()

    async def release(self) -> None:
        self._owner._before("lease.release", self.name)
        await self.inner.release()
