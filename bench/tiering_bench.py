"""The tiering scenario (``bench.py --scenarios tiering``): issue 12's "Measure", in one process.

A point a day for ``days`` simulated days (400) of the bench corpus (``make_corpus.py --profile tree``,
``--mutate --seed 1000+day`` before every day's point), on a real repository written through the real
writer, stored in a ``MemoryBackend`` (tests/support/memory.py) whose store times follow a
``FakeClock`` (tests/support): nothing on disk has to be aged, and a day is one ``advance``. Every day:
``snapshot(time=day)``, ``forget`` (keep-daily 7, keep-weekly 5, keep-monthly 12, keep-yearly 3),
``prune`` (once a day: the plan condemned on day d is swept on day d+1, past the 1 h grace), ``tier``
(cool 30, cold 90, archive 180 days).

The backend is ``EarlyDeleteMeter``: on every delete of a data pack in Cool, Cold or Archive, and on
every tier change out of one, it computes ``costs.early_delete_charge`` from the pack's tier and its
tier-change time against the clock (the goal of the issue: 0). At days 100, 200, 300 and the last,
``stats(cost=True)``: objects and bytes per tier and the estimated monthly cost against all-Hot; at
the end, ``plan_restore`` of the oldest remaining point at Standard and High priority.

Why ``--profile tree`` only: the ``large`` profile's ``--mutate`` appends 2 % of the log's size every
time, which compounds to 2750 times its size over 400 mutations (and rewrites every large file daily).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # after bench/: tests.support (the memory backend, the fake clock)

from tests.support import FakeClock, MemoryBackend  # noqa: E402

import tiervault  # noqa: E402
from tiervault.backend.base import Tier  # noqa: E402
from tiervault.costs import PriceTable, default_prices, early_delete_charge  # noqa: E402
from tiervault.errors import ObjectNotFoundError  # noqa: E402
from tiervault.repo.repository import DEFAULT_PACK_SIZE, Repository  # noqa: E402

DAYS = 400
SCALE = 0.05
SMOKE_DAYS = 40
CHECKPOINTS = (100, 200, 300)
DAY = timedelta(days=1)
START = datetime(2025, 7, 1, 2, tzinfo=UTC)
MUTATE_SEED_BASE = 1000  # day d: make_corpus --mutate --seed 1000+d
ITEM = "corpus"
PASSWORD = b"tiervault-bench"
KDF = tiervault.ScryptParams(log_n=10)  # key derivation is not what is measured
POLICY = tiervault.Policy(
    keep_daily=7,
    keep_weekly=5,
    keep_monthly=12,
    keep_yearly=3,
    cool_after_days=30,
    cold_after_days=90,
    archive_after_days=180,
)
STEPS = ("mutate", "snapshot", "forget", "prune", "tier")
ORDER = (Tier.HOT, Tier.COOL, Tier.COLD, Tier.ARCHIVE)
MB = 1_000_000
SMALL = 128 << 10  #: the cold tiers' minimum billable size: the tierer leaves smaller packs in Hot
BACKEND_NOTE = (
    "in-process MemoryBackend (tests/support/memory.py) on a FakeClock: store times and tier-change "
    "times are the simulated day's; no disk, no network, nothing aged by hand"
)


class EarlyDeleteMeter(MemoryBackend):
    """A ``MemoryBackend`` that prices every early deletion it is asked to make: a data pack deleted,
    or moved out of its tier, before that tier's minimum retention (30/90/180 days) has passed."""

    def __init__(self, *, clock: FakeClock, table: PriceTable) -> None:
        super().__init__(clock=clock)
        self.fake_clock = clock
        self.table = table
        self.charges: list[dict[str, Any]] = []
        self.deletes: dict[str, int] = {t.value: 0 for t in ORDER}
        self.day = 0

    async def _meter(self, name: str, op: str, to: Tier | None = None) -> None:
        if not name.startswith("data/"):
            return
        try:
            info = await self.stat(name)
        except ObjectNotFoundError:
            return
        if to is not None and to is info.tier:
            return
        if op == "delete":
            self.deletes[info.tier.value] += 1
        if info.tier is Tier.HOT:
            return
        since = info.tier_changed or info.modified
        days = max(0.0, (self.fake_clock.now() - since.timestamp()) / DAY.total_seconds())
        charge = early_delete_charge(info.tier, info.size, days, self.table)
        if charge > 0:
            self.charges.append(
                {
                    "day": self.day,
                    "pack": name,
                    "op": op if to is None else f"{op} {to.value}",
                    "tier": info.tier.value,
                    "days_in_tier": round(days, 3),
                    "bytes": info.size,
                    "charge": charge,
                }
            )

    async def delete(self, name: str) -> None:  # delete_many deletes one by one through here
        await self._meter(name, "delete")
        await super().delete(name)

    async def set_tier(self, name: str, tier: Tier) -> None:  # set_tier_many: through here too
        await self._meter(name, "set_tier", Tier(tier))
        await super().set_tier(name, tier)


class Mutator:
    """``make_corpus.py --out CORPUS --seed N --mutate``, in this process: the script's own ``Gen`` and
    ``mutate`` (byte-identical to the command), with the generator built once instead of every day
    (building its content pool is most of the command's second)."""

    def __init__(self, make_corpus: Path, corpus: Path) -> None:
        spec = importlib.util.spec_from_file_location("tiervault_bench_make_corpus", make_corpus)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {make_corpus}")
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        seed_file = corpus / ".corpus_seed"
        seed = int(seed_file.read_text()) if seed_file.exists() else 1
        self.gen = self.module.Gen(seed)
        self.corpus = corpus

    def __call__(self, seed: int) -> dict[str, str]:
        stats: dict[str, str] = self.module.mutate(self.gen, str(self.corpus), seed)
        return stats


async def tier_stats(vault: tiervault.Vault, table: PriceTable, day: int, when: datetime) -> dict[str, Any]:
    """``stats(cost=True)`` at one day: per tier and in all, with the all-Hot comparison."""
    s = await vault.stats(cost=True, prices=table)
    points = await vault.points()
    return {
        "day": day,
        "date": when.date().isoformat(),
        "points": len(points),
        "objects": s.objects,
        "bytes": s.bytes,
        "tiers": {
            t.tier.value: {
                "objects": t.objects,
                "bytes": t.bytes,
                "billable_bytes": t.billable_bytes,
                "monthly_cost": t.estimated_monthly_cost,
            }
            for t in s.tiers
        },
        "monthly_cost": s.estimated_monthly_cost,
        "all_hot_monthly_cost": s.estimated_all_hot_monthly_cost,
        "saving": s.estimated_saving,
        "saving_percent": s.estimated_saving_percent,
    }


async def restore_plan(vault: tiervault.Vault, table: PriceTable) -> dict[str, Any]:
    """``plan_restore`` of the oldest remaining point at both priorities (what the user would see)."""
    oldest = (await vault.points())[0]
    out: dict[str, Any] = {"point": oldest.id, "time": oldest.time.isoformat()}
    for prio in ("standard", "high"):
        plan = await vault.plan_restore(oldest, priority=prio)
        j = plan.to_json()
        reh = j.get("rehydration") or {}
        out[prio] = {
            "files": j["files"],
            "bytes": j["bytes"],
            "packs": j["packs"],
            "bytes_by_tier": j["bytes_by_tier"],
            "readable": j["readable"],
            "now_files": j["now_files"],
            "now_bytes": j["now_bytes"],
            "archived_packs": j["rehydrate_packs"],
            "archived_bytes": j["rehydrate_bytes"],
            "expected_wait_s": reh.get("expected_wait_s"),
            "expected_wait": reh.get("expected_wait"),
            "estimated_cost": reh.get("estimated_cost"),
            "currency": reh.get("currency", table.currency),
        }
    return out


async def simulate(corpus: Path, make_corpus: Path, days: int, log: Any) -> dict[str, Any]:
    table = default_prices()
    clock = FakeClock(start=START.timestamp())
    backend = EarlyDeleteMeter(clock=clock, table=table)
    repo = await Repository.init(backend, PASSWORD, pack_size=DEFAULT_PACK_SIZE, kdf=KDF)
    vault = tiervault.Vault(repo, clock=clock)
    await vault.protect(corpus, name=ITEM, policy=POLICY)
    mutate = Mutator(make_corpus, corpus)
    checkpoints = [d for d in CHECKPOINTS if d < days] + [days]
    walls = dict.fromkeys((*STEPS, "stats"), 0.0)
    totals = {"points_taken": 0, "forgotten": 0, "swept_packs": 0, "repacked_packs": 0, "moves": 0}
    moves_to = {t.value: 0 for t in ORDER[1:]}
    held: dict[str, int] = {}
    held_last: dict[str, int] = {}
    snaps: list[dict[str, Any]] = []
    daily: list[dict[str, int]] = []
    started = time.perf_counter()
    for day in range(days):
        backend.day = day + 1
        now = datetime.fromtimestamp(clock.now(), UTC)
        t0 = time.perf_counter()
        if day:  # day 0 is the corpus as generated
            mutate(MUTATE_SEED_BASE + day)
        t1 = time.perf_counter()
        await vault.snapshot(ITEM, time=now)
        t2 = time.perf_counter()
        totals["forgotten"] += sum(1 for d in await vault.forget() if not d.keep)
        t3 = time.perf_counter()
        pr = await vault.prune()
        if not pr.ok:
            raise RuntimeError(f"day {day + 1}: prune refused: {pr.refused}")
        t4 = time.perf_counter()
        tr = await vault.tier()
        if tr.failed:
            raise RuntimeError(f"day {day + 1}: tier failed: {tr.failed}")
        t5 = time.perf_counter()
        totals["points_taken"] += 1
        totals["swept_packs"] += len(pr.swept)
        totals["repacked_packs"] += len(pr.repacked)
        totals["moves"] += len(tr.moves)
        for m in tr.moves:
            moves_to[m.target.value] += 1
        for rule, n in tr.held.items():
            held[rule] = max(held.get(rule, 0), n)
        held_last = dict(sorted(tr.held.items()))
        for k, a, b in zip(STEPS, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True):
            walls[k] += b - a
        if day + 1 in checkpoints:
            t6 = time.perf_counter()
            snap = await tier_stats(vault, table, day + 1, now)
            data = [len(o.data) for n, o in backend.objects.items() if n.startswith("data/")]
            snap["data_packs"] = len(data)
            snap["data_packs_under_128k"] = sum(1 for n in data if n < SMALL)
            snap["early_delete_charges"] = len(backend.charges)
            snap["early_delete_cost"] = sum(c["charge"] for c in backend.charges)
            snaps.append(snap)
            walls["stats"] += time.perf_counter() - t6
            log(
                f"  tiering: day {day + 1}/{days} ({now.date()}): {snap['points']} points, "
                f"{snap['bytes'] / MB:.1f} MB, saving {snap['saving_percent'] or 0:.1f} % vs all-Hot, "
                f"{len(backend.charges)} early deletion(s), {time.perf_counter() - started:.0f} s so far"
            )
        daily.append(
            {"day": day + 1, "moves": len(tr.moves), "swept": len(pr.swept), "repacked": len(pr.repacked)}
        )
        clock.advance(DAY.total_seconds())
    plan = await restore_plan(vault, table)
    check = await vault.check()
    await vault.aclose()
    return {
        "backend": BACKEND_NOTE,
        "prices": {
            "region": table.region,
            "currency": table.currency,
            "taken": table.prices_taken.isoformat(),
        },
        "checkpoints": snaps,
        "early_deletion": {
            "charges": len(backend.charges),
            "cost": sum(c["charge"] for c in backend.charges),
            "currency": table.currency,
            "by_tier": {t.value: sum(1 for c in backend.charges if c["tier"] == t.value) for t in ORDER[1:]},
            "list": backend.charges[:200],
            "deletes_by_tier": backend.deletes,
        },
        "totals": totals
        | {"moves_to": moves_to, "held_max": dict(sorted(held.items())), "held_last_day": held_last},
        "restore_oldest": plan,
        "check_ok": check.ok,
        "daily": daily,
        "wall_s": walls | {"total": time.perf_counter() - started},
    }


def scenario(
    pristine: Path, work: Path, make_corpus: Path, *, days: int, scale: float, log: Any
) -> tuple[dict[str, Any], list[Table], list[str]]:
    """Run the simulation on a fresh copy of ``pristine``; the JSON entry, its tables and notes."""
    import shutil

    corpus = work / "tiering-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.copytree(pristine, corpus, symlinks=True)
    nfiles = sum(len(f) for _, _, f in os.walk(corpus))
    log(f"[bold]tiering:[/] {days} simulated days from {START.date()}, corpus profile tree scale {scale:g}")
    try:
        result = asyncio.run(simulate(corpus, make_corpus, days, log))
    finally:
        shutil.rmtree(corpus, ignore_errors=True)
    entry: dict[str, Any] = {
        "config": {
            "days": days,
            "start": START.isoformat(),
            "profile": "tree",
            "scale": scale,
            "corpus_files": nfiles,
            "mutate_seeds": f"{MUTATE_SEED_BASE + 1}..{MUTATE_SEED_BASE + days - 1}",
            "policy": POLICY.to_json(),
            "pack_size": DEFAULT_PACK_SIZE,
            "prune": "once a day after forget (default max_unused); a plan is swept the next day",
        },
        "runs": [],
        **result,
    }
    return entry, tables(entry), notes(entry)


def notes(entry: dict[str, Any]) -> list[str]:
    out = [f"tiering: {entry['backend']}"]
    if not entry.get("check_ok", True):
        out.append("tiering: [red]check of the simulated repository failed at the end")
    return out


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / MB:.2f}"


def _money(v: float | None, cur: str) -> str:
    return "-" if v is None else f"{v:.4f} {cur}"


def tables(entry: dict[str, Any]) -> list[Table]:
    cfg, cur = entry["config"], entry["prices"]["currency"]
    t = Table(
        title=f"tiering: {cfg['days']} simulated days, corpus tree scale {cfg['scale']:g} "
        f"({cfg['corpus_files']} files), estimated monthly cost ({entry['prices']['region']}, "
        f"list prices of {entry['prices']['taken']})",
        title_justify="left",
    )
    t.add_column("day")
    t.add_column("points", justify="right")
    for tier in ORDER:
        t.add_column(f"{tier.value} obj / MB", justify="right")
    for col in ("cost/month", "all-Hot", "saving", "early del."):
        t.add_column(col, justify="right")
    for s in entry["checkpoints"]:
        per = [s["tiers"].get(tier.value, {}) for tier in ORDER]
        cells = [f"{x.get('objects', 0)} / {_mb(x.get('bytes', 0))}" for x in per]
        t.add_row(
            f"{s['day']} ({s['date']})",
            str(s["points"]),
            *cells,
            _money(s["monthly_cost"], cur),
            _money(s["all_hot_monthly_cost"], cur),
            "-" if s["saving_percent"] is None else f"{s['saving_percent']:.1f} %",
            f"{s['early_delete_charges']} ({s['early_delete_cost']:.4f})",
        )
    early = entry["early_deletion"]
    r = entry["restore_oldest"]
    p = Table(title="tiering: early deletion and the restore of the oldest point", title_justify="left")
    p.add_column("figure")
    p.add_column("value", justify="right")
    deleted = ", ".join(f"{k} {v}" for k, v in early["deletes_by_tier"].items())
    moves = " / ".join(str(v) for v in entry["totals"]["moves_to"].values())
    p.add_row(
        "early-deletion charges incurred (goal 0)", f"{early['charges']} ({_money(early['cost'], cur)})"
    )
    p.add_row("data packs deleted, by the tier they were in", deleted)
    p.add_row("tier moves (to cool / cold / archive)", moves)
    last = entry["totals"].get("held_last_day", {})
    p.add_row(
        "data packs kept in place on the last day, by rule", ", ".join(f"{k} {v}" for k, v in last.items())
    )
    p.add_row("oldest point", f"{r['point'][:12]} ({r['time'][:10]})")
    std, high = r["standard"], r["high"]
    p.add_row("  files, MB", f"{std['files']}, {_mb(std['bytes'])}")
    p.add_row("  bytes by tier (MB)", ", ".join(f"{k} {_mb(v)}" for k, v in std["bytes_by_tier"].items()))
    p.add_row("  archived packs, MB", f"{std['archived_packs']}, {_mb(std['archived_bytes'])}")
    for name, plan in (("standard", std), ("high", high)):
        cost = _money(plan["estimated_cost"], cur)
        p.add_row(f"  wait / cost at {name}", f"{plan['expected_wait'] or '-'} / {cost}")
    p.add_row("  restorable now: files, MB", f"{std['now_files']}, {_mb(std['now_bytes'])}")
    w = entry["wall_s"]
    walls = ", ".join(f"{w[k]:.0f}" for k in (*STEPS, "stats"))
    p.add_row("wall s (mutate, snapshot, forget, prune, tier, stats; total)", f"{walls}; {w['total']:.0f}")
    return [t, p]
