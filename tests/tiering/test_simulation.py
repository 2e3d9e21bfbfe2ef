"""The tierer over 400 simulated days (issue 12): a point a day of a small changing tree, then
forget by a GFS policy, prune and tier, on a real repository (MemoryBackend on a FakeClock moving a
day per step). After every ``tier`` each data pack's tier equals what the test computes on its own
from the files it wrote (which points need which day's pack); no pack ever moves before its
threshold or towards a warmer tier, and none is deleted inside its tier's minimum retention.

Each day writes one pack: a small file that changes daily, and (six days in seven) a 200 KiB file
living 1 to 1000 days. So a pack born on day ``b`` is needed by the live points of days
``b .. b + lifetime - 1``, and a day without a big file makes a pack under 128 KiB (never tiered).
Repacking is off (``max_unused=1.0``): a pack keeps its name, which is what the model follows.

With keep-monthly 12, a pack only monthly points need is deleted some 335-365 days after its
newest point, so archiving it at 180 days would pay Archive's early deletion: only packs the yearly
point of 2025 needs (kept three years) reach Archive, which is why the days start in mid-2025.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import tiervault
from tests.prune.helpers import memory_vault, noise, write_files
from tests.support import FakeClock, MemoryBackend
from tiervault import retention
from tiervault.backend.base import Tier
from tiervault.tiering.expiry import FuturePoint

DAYS = 400
DAY = timedelta(days=1)
GFS = tiervault.Policy(
    keep_daily=7,
    keep_weekly=5,
    keep_monthly=12,
    keep_yearly=3,
    cool_after_days=30,
    cold_after_days=90,
    archive_after_days=180,
)
ORDER = [Tier.HOT, Tier.COOL, Tier.COLD, Tier.ARCHIVE]
THRESHOLD = {Tier.COOL: 30, Tier.COLD: 90, Tier.ARCHIVE: 180}
MINIMUM = {Tier.HOT: 0, Tier.COOL: 30, Tier.COLD: 90, Tier.ARCHIVE: 180}
LIFETIMES = (1, 4, 20, 75, 1000)


def lifetime(day: int) -> int:
    """Days the big file born on ``day`` lives (0: that day has none)."""
    return 0 if day % 7 == 3 else LIFETIMES[day % len(LIFETIMES)]


class Model:
    """The test's own account: points taken and forgotten, each pack's birth day, its tier and when
    it entered it as observed."""

    def __init__(self) -> None:
        self.times: dict[str, datetime] = {}  # every point ever taken -> its time
        self.day_of: dict[str, int] = {}
        self.live: set[str] = set()
        self.born: dict[str, int] = {}  # pack name -> day written
        self.tier: dict[str, Tier] = {}
        self.entered: dict[str, datetime] = {}

    def needing(self, pack: str) -> list[str]:
        b = self.born[pack]
        last = b + max(1, lifetime(b)) - 1
        return [p for p in self.live if b <= self.day_of[p] <= last]

    def kept_until(self, horizon: datetime) -> set[str]:
        """The points the policy keeps just before ``horizon`` if a point is taken every day till
        then: retention over the whole history (forgotten points included), then the future."""
        history = [FuturePoint(p, "sim", t) for p, t in self.times.items()]
        t = max(self.times.values()) + DAY
        n = 0
        while t < horizon:
            history.append(FuturePoint(f"f{n}", "sim", t))
            t, n = t + DAY, n + 1
        return {d.id for d in retention.decide(history, GFS) if d.keep}

    def expected(self, pack: str, size: int, now: datetime, kept: dict[Tier, set[str]]) -> Tier:
        cur = self.tier[pack]
        refs = self.needing(pack)
        if not refs or size < 128 * 1024:
            return cur
        age = now - max(self.times[p] for p in refs)
        want = Tier.HOT
        for tier, days in THRESHOLD.items():
            if age >= days * DAY:
                want = tier
        while want is not Tier.HOT and not set(refs) & kept[want]:
            want = ORDER[ORDER.index(want) - 1]
        if ORDER.index(want) <= ORDER.index(cur):
            return cur
        if cur is not Tier.HOT and now < self.entered[pack] + MINIMUM[cur] * DAY:
            return cur
        return want


async def test_400_days_of_gfs_tiering(tmp_path: Path) -> None:
    clock = FakeClock(start=datetime(2025, 7, 1, 2, tzinfo=UTC).timestamp())
    vault, repo = await memory_vault(clock)
    backend = repo.backend
    assert isinstance(backend, MemoryBackend)
    src = tmp_path / "src"
    write_files(src, {"small.txt": b"day -1"})
    await vault.protect(src, name="sim", policy=GFS)
    model = Model()
    deaths: dict[int, list[str]] = {}
    moves = 0
    held: set[str] = set()
    for day in range(DAYS):
        now = datetime.fromtimestamp(clock.now(), UTC)
        for gone in deaths.pop(day, []):
            (src / gone).unlink()
        files = {"small.txt": f"day {day}".encode()}
        if lifetime(day):
            files[f"f{day}.bin"] = noise(day, 200 * 1024)
            deaths.setdefault(day + lifetime(day), []).append(f"f{day}.bin")
        write_files(src, files)
        point = (await vault.snapshot("sim", time=now)).point
        model.times[point.id], model.day_of[point.id] = now, day
        model.live.add(point.id)
        for name in backend.objects:
            if name.startswith("data/") and name not in model.born:
                model.born[name], model.tier[name], model.entered[name] = day, Tier.HOT, now
        for d in await vault.forget():
            if not d.keep:
                model.live.discard(d.id)
        assert (await vault.prune(max_unused=1.0)).ok
        kept = {t: model.kept_until(now + MINIMUM[t] * DAY) for t in THRESHOLD}
        stored = {n: len(o.data) for n, o in backend.objects.items() if n.startswith("data/")}
        for name in list(model.tier):  # deleted by prune: never inside its tier's minimum
            if name not in stored:
                tier = model.tier.pop(name)
                assert now >= model.entered[name] + MINIMUM[tier] * DAY, (name, tier, day)
        want = {n: model.expected(n, size, now, kept) for n, size in stored.items()}
        report = await vault.tier()
        assert not report.failed and not report.warnings
        held |= set(report.held)
        infos = {i.name: i async for i in backend.list("data/")}
        today = 0
        for name, tier in want.items():
            info = infos[name]
            assert info.tier is tier, (day, name, model.born[name], info.tier, tier, report.to_json())
            if tier is not model.tier[name]:
                assert ORDER.index(tier) > ORDER.index(model.tier[name])  # colder only
                refs = model.needing(name)
                assert all(now - model.times[p] >= THRESHOLD[tier] * DAY for p in refs)
                model.tier[name], model.entered[name] = tier, now
                today += 1
            assert info.tier_changed == model.entered[name]
        assert len(report.moves) == today
        moves += today
        clock.advance(DAY.total_seconds())
    tiers = {t: sum(1 for x in model.tier.values() if x is t) for t in ORDER}
    assert moves > 0 and all(tiers.values()), tiers  # the yearly point of 2025 took packs to Archive
    assert {"small", "threshold", "early-deletion", "condemned"} <= held, held
