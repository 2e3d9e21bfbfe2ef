"""``tiervault prune`` and ``tiervault forget --prune`` (the CLI's fixtures are test_cli's), and
``Vault.prune``'s refusals: a version-1 repository, a store without leases, bad limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import tiervault
from tests.e2e import KDF, PASSWORD
from tests.support import FakeClock, MemoryBackend
from tests.support.azurite import Azurite, unique_container_name
from tests.test_cli import FAST_KDF, Run, repo, run, snapshot_id, source, tree, vault  # noqa: F401
from tiervault.backend.base import Capabilities, Tier
from tiervault.backend.local import LocalBackend
from tiervault.repo.repository import Repository


def _change(src: Path, i: int) -> None:
    (src / "docs" / "deep" / "blob.bin").write_bytes(bytes([i]) * 1000 + Path(__file__).read_bytes())


def test_forget_prune_then_prune_dry_run_and_json(vault: Path, source: Path, run: Run) -> None:  # noqa: F811
    for i in range(3):
        _change(source, i)
        snapshot_id(run)
    res = run("forget", "--keep-last", "1", "--prune", "--json")
    assert res.code == 0, res.err
    got = res.json()
    assert [p["keep"] for p in got["points"]] == [False, False, True]
    assert got["prune"]["ok"] and got["prune"]["condemned"] and not got["prune"]["swept"]

    res = run("prune", "--dry-run")
    assert res.code == 0, res.err
    assert "deferred" in res.out and "would be deleted" in res.out and "requests" in res.out

    res = run("prune", "--json", "--max-unused", "0%", "--max-repack-bytes", "1M")
    assert res.code == 0, res.err
    report = res.json()
    assert report["dry_run"] is False and report["deferred"] and not report["swept"]
    assert run("check").code == 0


def test_forget_prune_prints_both(vault: Path, source: Path, run: Run) -> None:  # noqa: F811
    for i in range(2):
        _change(source, i)
        snapshot_id(run)
    res = run("forget", "--keep-last", "1", "--prune")
    assert res.code == 0, res.err
    assert "1 point kept, 1 point removed" in res.out and "condemn" in res.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-unused", "150%"), "between 0% and 100%"),
        (("--max-unused", "lots"), "invalid size"),
        (("--max-repack-bytes", "-1"), "size"),
    ],
)
def test_bad_prune_options(vault: Path, run: Run, args: tuple[str, ...], message: str) -> None:  # noqa: F811
    res = run("prune", *args)
    assert res.code == 2 and message in res.err


async def test_prune_refuses_a_version_1_repository_and_a_store_without_leases() -> None:
    clock = FakeClock()
    old = await Repository.init(MemoryBackend(clock=clock), PASSWORD.encode(), kdf=KDF, version=1)
    with pytest.raises(tiervault.UsageError, match="tiervault upgrade"):
        await tiervault.Vault(old, clock=clock).prune()

    class NoLeases(MemoryBackend):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(tiers=True, leases=False)

    noleases = await Repository.init(NoLeases(clock=clock), PASSWORD.encode(), kdf=KDF)
    with pytest.raises(tiervault.UsageError, match="has no leases"):
        await tiervault.Vault(noleases, clock=clock).prune()
    with pytest.raises(tiervault.UsageError, match="max_unused"):
        await tiervault.Vault(noleases, clock=clock).prune(max_unused=2.0)


def test_prune_on_azurite(
    source: Path,  # noqa: F811
    run: Run,  # noqa: F811
    tmp_path: Path,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """forget --prune on Azure (Azurite): the lease, the heartbeat's store time, a PLAN; a second run
    waits for the grace period; check passes and the kept point restores."""
    container = unique_container_name("prune")
    url = f"azurite://127.0.0.1:{azurite.port}/{container}"
    monkeypatch.setenv("TIERVAULT_PASSWORD", PASSWORD)
    monkeypatch.setenv("TIERVAULT_CACHE_DIR", str(tmp_path / "cache"))
    try:
        assert run("-r", url, "init", *FAST_KDF).code == 0
        assert run("-r", url, "protect", str(source), "--name", "src").code == 0
        for i in range(3):
            _change(source, i)
            assert run("-r", url, "snapshot", "src").code == 0
        res = run("-r", url, "forget", "--keep-last", "1", "--prune", "--json")
        assert res.code == 0, res.err
        assert res.json()["prune"]["condemned"]
        res = run("-r", url, "prune", "--json")
        assert res.code == 0, res.err
        assert res.json()["deferred"] and not res.json()["swept"]
        with azurite.service_client() as client:
            blobs = [b.name for b in client.get_container_client(container).list_blobs()]
        assert any(b.startswith("gc/") for b in blobs) and "locks/prune" in blobs
        assert not [b for b in blobs if b.startswith("locks/") and b != "locks/prune"]  # heartbeats gone
        assert run("-r", url, "--no-cache", "check").code == 0
        target = tmp_path / "restored"
        assert run("-r", url, "--no-cache", "restore", "latest:src", "--target", str(target)).code == 0
        assert tree(target) == tree(source)
    finally:
        azurite.delete_container(container)


def test_prune_while_another_holds_the_lease_exits_with_the_holder(
    vault: Path,  # noqa: F811
    run: Run,  # noqa: F811
) -> None:
    backend = LocalBackend(vault)
    lease = asyncio.run(backend.acquire_lease("locks/prune", duration=60))
    try:
        res = run("prune")
        assert res.code == 1 and "another prune holds locks/prune" in res.err and "holder unknown" in res.err
    finally:
        asyncio.run(lease.release())
    assert run("prune").code == 0


def _cool_data(repo: Path) -> list[str]:  # noqa: F811
    async def go() -> list[str]:
        async with LocalBackend(repo) as store:
            packs = sorted([i.name async for i in store.list("data/")])
            await store.set_tier_many(packs, Tier.COOL)
            return packs

    return asyncio.run(go())


def test_prune_defers_repacking_a_cool_pack_then_allow_early_delete(
    vault: Path,  # noqa: F811
    source: Path,  # noqa: F811
    run: Run,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A partly live Cool pack (0 days in Cool) is not repacked: the text and the JSON name it, the
    day its minimum ends and the charge avoided; --allow-early-delete repacks it."""
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    for i in range(2):
        _change(source, i)
        snapshot_id(run)
    assert run("forget", "--keep-last", "1").code == 0
    packs = {n.rsplit("/", 1)[-1] for n in _cool_data(vault)}
    res = run("prune", "--max-unused", "0%")
    assert res.code == 0, res.err
    assert "early deletion" in res.out and "repack deferred until" in res.out and "USD" in res.out
    res = run("prune", "--json", "--max-unused", "0%")
    assert res.code == 0, res.err
    got = res.json()
    early = got["early_deletion"]
    assert early["allowed"] is False and early["deferred"] and not early["deleted"]
    assert {d["pack"] for d in early["deferred"]} <= packs and not set(got["repacked"]) & packs
    for d in early["deferred"]:
        assert d["step"] == "repack" and d["tier"] == "cool" and d["estimated_charge"] > 0
        assert d["minimum_ends"] > d["in_tier_since"]
    assert early["estimated_charge_avoided"] == sum(d["estimated_charge"] for d in early["deferred"])
    deferred = {d["pack"] for d in early["deferred"]}

    res = run("prune", "--json", "--max-unused", "0%", "--allow-early-delete")
    assert res.code == 0, res.err
    got = res.json()
    assert got["early_deletion"]["allowed"] is True and not got["early_deletion"]["deferred"]
    assert deferred <= set(got["repacked"])
    assert run("check").code == 0


def test_bad_prices_and_early_delete_options(
    vault: Path,  # noqa: F811
    source: Path,  # noqa: F811
    run: Run,  # noqa: F811
    tmp_path: Path,
) -> None:
    for i in range(2):
        _change(source, i)
        snapshot_id(run)
    missing = tmp_path / "nope.json"
    res = run("prune", "--prices", str(missing))
    assert res.code == 2 and "cannot read the price file" in res.err and "nope.json" in res.err
    bad = tmp_path / "bad.json"
    bad.write_text('{"region": "x", "colour": 1}')
    res = run("prune", "--prices", str(bad))
    assert res.code == 2 and "unknown field 'colour'" in res.err
    for opt in (("--allow-early-delete",), ("--prices", str(bad))):
        res = run("forget", "--keep-last", "1", *opt)
        assert res.code == 2 and "add --prune" in res.err
    res = run("points", "--json")
    assert res.code == 0 and len(res.json()) == 2  # nothing was forgotten
    res = run("forget", "--keep-last", "1", "--prune", "--prices", str(bad))
    assert res.code == 2 and "colour" in res.err  # the prune refuses before its lease
    res = run("forget", "--keep-last", "1", "--prune", "--allow-early-delete", "--json")
    assert res.code == 0, res.err
    assert res.json()["prune"]["early_deletion"]["allowed"] is True
