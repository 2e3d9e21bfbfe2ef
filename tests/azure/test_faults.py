"""Faults between tiervault and Azure Storage: a crash of the store, lost responses, 503 storms,
throttling and refused credentials, injected by a reverse proxy in front of Azurite
(``tests/support/faultproxy.py``) so that the real SDK, its retry policy and tiervault's own retry
layer (``backend/retry.py``) all run as they would against Azure.

Retry layers under test (docs/azure.md, "Retries"): the SDK retries transport errors, 408 and 5xx
itself; ``RetryingBackend`` (tenacity) retries only 429; 4xx answers are never retried.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

import tiervault
from tests.support.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite
from tests.support.faultproxy import FaultProxy, FirstN, Record, RequestInfo
from tests.support.trees import File, assert_trees_equal, build_tree, snapshot_tree
from tiervault.errors import (
    BackendError,
    PermissionDeniedError,
    RepositoryNotFoundError,
)

PASSWORD = "fault-injection correct horse"
KDF = tiervault.ScryptParams(log_n=10)  # fast key derivation: tests, not security
MiB = 1 << 20
PACK_SIZE = 1 << 20  # the smallest allowed: many packs from little data
#: packs a snapshot keeps in flight (``FolderArchiver(max_inflight=4)``)
MAX_INFLIGHT = 4


# ------------------------------------------------------------------------------------ helpers


def random_tree(root: Path, *, files: int, size: int, seed: int) -> int:
    """``files`` incompressible files of ``size`` bytes in three directories; returns the total."""
    rnd = random.Random(seed)
    build_tree(root, {f"d{i % 3}/f{i:02}.bin": File(rnd.randbytes(size)) for i in range(files)})
    return files * size


def is_data_upload(info: RequestInfo) -> bool:
    return info.is_blob_upload and info.blob.startswith("data/")


def is_config_upload(info: RequestInfo) -> bool:
    return info.is_blob_upload and info.blob == "config"


def uploads(records: list[Record], prefix: str = "data/") -> list[Record]:
    """Put Blob requests for names under ``prefix``."""
    return [r for r in records if r.method == "PUT" and r.blob.startswith(prefix) and "comp=" not in r.query]


def blob_sizes(azurite: Azurite, container: str, prefix: str = "data/") -> dict[str, int]:
    """The blobs under ``prefix`` as Azurite lists them right now (directly, not through the proxy)."""
    with azurite.service_client() as service:
        client = service.get_container_client(container)
        return {b.name: int(b.size) for b in client.list_blobs(name_starts_with=prefix)}


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not condition():  # noqa: ASYNC110 - state of other threads (proxy, archiver)
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}") from None


async def restore_exactly(
    vault: tiervault.Vault, point: tiervault.RecoveryPoint, src: Path, out: Path
) -> None:
    restored = await vault.restore(point, out, verify=True)
    assert restored.ok, restored.errors
    assert_trees_equal(snapshot_tree(src), snapshot_tree(out))


def init(url: str, azure: tiervault.AzureOptions | None = None):  # type: ignore[no-untyped-def]
    return tiervault.init(url, password=PASSWORD, pack_size=PACK_SIZE, kdf=KDF, azure=azure)


def open_(url: str, azure: tiervault.AzureOptions | None = None):  # type: ignore[no-untyped-def]
    return tiervault.open(url, password=PASSWORD, azure=azure)


@pytest.fixture
def container(azure_container: tuple[str, str]) -> str:
    """A fresh, empty container on the session's Azurite."""
    return azure_container[1]


# ------------------------------------------------------------------------------------ a crash


#: data packs Azurite has saved to disk before it is killed
DURABLE_PACKS = 12


async def test_azurite_killed_mid_snapshot_then_restarted(fresh_azurite: Azurite, tmp_path: Path) -> None:
    """SIGKILL of the store in the middle of a snapshot: the snapshot fails at once with a backend
    error; after a restart the repository checks clean, and the next snapshot reuses every pack
    that survived the crash instead of uploading its data again."""
    container = fresh_azurite.make_container()
    src = tmp_path / "src"
    total = random_tree(src, files=20, size=2 * MiB, seed=11)  # ~27 packs: room after both holds
    options = tiervault.AzureOptions(retry_total=1, retry_backoff=0.1)

    with FaultProxy(fresh_azurite.port) as proxy:
        url = proxy.address(container)
        async with init(url, options) as vault:
            await vault.protect(src, name="src")
            # let DURABLE_PACKS data packs through, park the next uploads, and make Azurite save
            proxy.hold_when(is_data_upload, after=DURABLE_PACKS)
            snapshot = asyncio.create_task(vault.snapshot("src"))

            def parked() -> bool:  # uploads wait at the proxy, none is on its way to Azurite
                return (proxy.held_now > 0 and proxy.forwarding_now == 0) or snapshot.done()

            await eventually(parked, "the hold")
            assert not snapshot.done(), "the snapshot ended before it stored its first packs"
            durable = blob_sizes(fresh_azurite, container)  # all acknowledged: nothing is in flight
            await asyncio.to_thread(fresh_azurite.wait_persisted, container, durable)
            assert len(durable) == DURABLE_PACKS
            # a few more packs are acknowledged just before the crash: they may be lost with it
            proxy.hold_when(is_data_upload, after=2)
            await eventually(parked, "the second hold")
            assert not snapshot.done()
            acknowledged = blob_sizes(fresh_azurite, container)
            fresh_azurite.kill()
            killed = time.monotonic()  # for the printout
            proxy.release()  # the parked uploads now meet a dead store
            with pytest.raises(BackendError) as failure:
                await asyncio.wait_for(snapshot, 60)
            failed_after = time.monotonic() - killed
        # one retry layer per failure: at most the SDK's one retry (retry_total=1), each attempt
        # possibly repeated at once by aiohttp on a closed connection; no tenacity retry on top
        # (a count of requests, not a time with a margin)
        attempts = collections.Counter(
            (r.method, r.path, r.query) for r in proxy.records() if r.outcome == "upstream_error"
        )
        assert attempts and max(attempts.values()) <= 2 * (1 + 1), attempts
        assert proxy.counts["upstream_error"] >= 1

        await asyncio.to_thread(fresh_azurite.restart)  # same port, same data
        survivors = blob_sizes(fresh_azurite, container)
        assert set(durable) <= set(survivors) <= set(acknowledged)

        async with open_(url, options) as vault:
            report = await vault.check()
            assert report.ok, report.errors
            assert {w["object"] for w in report.warnings} == set(survivors)  # unindexed: a warning
            assert not await vault.points()
            proxy.reset()
            result = await vault.snapshot("src")
            # every chunk in a surviving pack was reused; only the rest was uploaded again
            reused = sum(survivors.values())
            assert total - reused <= result.stats.bytes_new <= total - reused + 64 * 1024 * len(survivors)
            assert result.stats.bytes_new < total - DURABLE_PACKS * MiB  # at least the saved packs reused
            after = blob_sizes(fresh_azurite, container)
            assert set(survivors) <= set(after)
            assert len(uploads(proxy.records())) == len(after) - len(survivors)
            await restore_exactly(vault, result.point, src, tmp_path / "out")
            report = await vault.check(read_data=True)
            assert report.ok and not report.warnings, report.to_json()
    print(
        f"\nkill: {len(durable)} packs saved, {len(acknowledged)} acknowledged, {len(survivors)} survived; "
        f"failed {failed_after:.1f} s after SIGKILL with {type(failure.value).__name__}: {failure.value}; "
        f"second snapshot uploaded {result.stats.bytes_new / MiB:.1f} of {total / MiB:.0f} MiB"
    )


# ------------------------------------------------------------------------------------ random faults


async def test_everything_works_through_a_faulty_network(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    """5 % 503s, 3 % dropped connections, 5 % lost responses: init, two snapshots, restore and a
    full check all succeed and the data comes back exactly."""
    src = tmp_path / "src"
    random_tree(src, files=12, size=1 * MiB, seed=21)
    with FaultProxy(
        azurite.port,
        seed=546,  # one fault of each kind in its first 12 draws, 10 faults in the first 43 requests
        fail_rate=0.05,
        drop_rate=0.03,
        lost_response_rate=0.05,
        # a lost answer to the config upload is a known bug with its own test (below)
        fault_filter=lambda info: not is_config_upload(info),
    ) as proxy:
        started = time.monotonic()
        options = tiervault.AzureOptions(retry_backoff=0.1)
        async with init(proxy.address(container), options) as vault:
            await vault.protect(src, name="src")
            first = await vault.snapshot("src")
            (src / "d0" / "f00.bin").write_bytes(random.Random(22).randbytes(MiB))
            (src / "d1" / "new.bin").write_bytes(random.Random(23).randbytes(MiB // 2))
            second = await vault.snapshot("src")
            assert second.stats.files_reused >= 4
            await restore_exactly(vault, second.point, src, tmp_path / "out")
            report = await vault.check(read_data=True)
            assert report.ok and not report.warnings, report.to_json()
            assert [p.id for p in await vault.points()] == [first.point.id, second.point.id]
        elapsed = time.monotonic() - started
    counts = proxy.counts
    assert counts["failed"] > 0 and counts["dropped"] > 0 and counts["lost"] > 0, counts
    faults = [
        f"{r.outcome}:{r.method} {r.blob or r.path}" for r in proxy.records() if r.outcome != "forwarded"
    ]
    print(f"\nfaulty network: {dict(counts)} in {elapsed:.1f} s: {faults}")


async def test_lost_responses_to_pack_uploads(azurite: Azurite, container: str, tmp_path: Path) -> None:
    """A pack upload that reached storage but whose answer was lost: the retry (aiohttp's own
    immediate one for an idempotent PUT on a closed connection, else the SDK's) finds the blob (409),
    which is success for a content-addressed name; each pack is stored once."""
    src = tmp_path / "src"
    random_tree(src, files=4, size=1 * MiB, seed=31)
    lose = FirstN(2, is_data_upload)
    with FaultProxy(azurite.port, action_override=lambda info: "lost" if lose(info) else None) as proxy:
        async with init(proxy.address(container), tiervault.AzureOptions(retry_backoff=0.1)) as vault:
            await vault.protect(src, name="src")
            result = await vault.snapshot("src")
            await restore_exactly(vault, result.point, src, tmp_path / "out")
            report = await vault.check(read_data=True)
            assert report.ok and not report.warnings, report.to_json()
    assert proxy.counts["lost"] == 2
    put = uploads(proxy.records())
    lost = [r.blob for r in put if r.outcome == "lost"]
    per_blob = collections.Counter(r.blob for r in put)
    assert all(per_blob[b] == 2 for b in lost)  # the lost one, then the retry: 409
    assert [r.status for r in put if r.blob in lost and r.outcome == "forwarded"] == [409, 409]
    assert len(per_blob) == len(blob_sizes(azurite, container))


async def test_a_lost_response_to_the_config_upload_leaves_a_usable_repository(
    azurite: Azurite, container: str
) -> None:
    lose = FirstN(1, is_config_upload)
    with FaultProxy(azurite.port, action_override=lambda info: "lost" if lose(info) else None) as proxy:
        url = proxy.address(container)
        try:
            async with init(url, tiervault.AzureOptions(retry_backoff=0.1)):
                pass
        finally:
            assert proxy.counts["lost"] == 1
        async with open_(url) as vault:
            assert (await vault.check()).ok


# ------------------------------------------------------------------------------------ 503 storm


def requests_per_retry_chain(window: float, retry_total: int, backoff: float) -> int:
    """At most how many attempts of one request fit in ``window`` seconds under the SDK's
    ``ExponentialRetry(initial_backoff=backoff, increment_base=2, random_jitter_range=backoff)``:
    its k-th sleep is at least ``backoff + 2**k - backoff``; it retries a status at most
    ``min(retry_total, 3)`` times (``retry_status`` defaults to 3)."""
    attempts, elapsed = 1, 0.0
    for k in range(1, min(retry_total, 3) + 1):
        elapsed += (backoff + 2**k) - backoff
        if elapsed >= window:
            break
        attempts += 1
    return attempts


async def test_a_503_storm_is_waited_out_without_a_request_storm(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    storm_s, retry_total, backoff = 3.0, 4, 0.5
    src = tmp_path / "src"
    random_tree(src, files=8, size=1 * MiB, seed=41)
    options = tiervault.AzureOptions(retry_total=retry_total, retry_backoff=backoff)
    with FaultProxy(azurite.port) as proxy:
        async with init(proxy.address(container), options) as vault:
            await vault.protect(src, name="src")
            proxy.storm_when(is_data_upload, storm_s, after=2)  # from the third pack on
            started = time.monotonic()
            result = await asyncio.wait_for(vault.snapshot("src"), 60)
            finished = time.monotonic()
            records = proxy.records()
            stormy = [r for r in records if r.outcome == "storm"]
            assert stormy, "the storm never started"
            storm_start, storm_end = stormy[0].time, proxy.storm_until
            during = [r for r in records if storm_start <= r.time < storm_end]
            assert all(r.outcome == "storm" for r in during)
            await restore_exactly(vault, result.point, src, tmp_path / "out")
            assert (await vault.check(read_data=True)).ok
    assert finished > storm_end, "the snapshot cannot have finished during the storm"
    # each upload slot may be refilled once during the storm (by a request answered just as it
    # began), plus one other request; each of them retries with the SDK's back-off only
    bound = (2 * MAX_INFLIGHT + 1) * requests_per_retry_chain(storm_s, retry_total, backoff)
    assert len(during) <= bound, f"{len(during)} requests during a {storm_s} s storm (bound {bound})"
    print(
        f"\nstorm: {len(during)} requests answered 503 during {storm_end - storm_start:.1f} s "
        f"(bound {bound}); snapshot took {finished - started:.1f} s, {len(records)} requests in all"
    )


# ------------------------------------------------------------------------------------ 429


async def test_throttling_is_retried_once_by_the_retry_layer(
    azurite: Azurite, container: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """429 is not retried by the SDK; tenacity in RetryingBackend retries it, once per 429."""
    throttled_n = 3
    throttle = FirstN(throttled_n, is_data_upload)
    src = tmp_path / "src"
    random_tree(src, files=6, size=1 * MiB, seed=51)
    caplog.set_level(logging.WARNING, logger="tiervault.backend.retry")
    with FaultProxy(azurite.port, status_override=lambda info: 429 if throttle(info) else None) as proxy:
        async with init(proxy.address(container)) as vault:
            await vault.protect(src, name="src")
            result = await asyncio.wait_for(vault.snapshot("src"), 60)
            await restore_exactly(vault, result.point, src, tmp_path / "out")
    put = uploads(proxy.records())
    throttled = [r.blob for r in put if r.status == 429]
    assert len(throttled) == throttled_n == proxy.counts["override"]
    per_blob = collections.Counter(r.blob for r in put)
    stored = blob_sizes(azurite, container)
    assert set(per_blob) == set(stored)
    # exactly one more request per 429: no retry by the SDK, one by tenacity
    assert {b: n for b, n in per_blob.items() if n != 1} == dict.fromkeys(throttled, 2)
    assert len(put) == len(stored) + throttled_n
    retries = [r for r in caplog.records if r.name == "tiervault.backend.retry"]
    assert len(retries) == throttled_n and all("429" in r.getMessage() for r in retries)


# ------------------------------------------------------------------------------------ refusals


def assert_no_retries(proxy: FaultProxy, most: int = 2) -> int:
    """Only a handful of requests, none of them repeated (a repeat would be a retry)."""
    seen = [(r.method, r.path, r.query) for r in proxy.records()]
    assert len(seen) <= most, seen
    assert len(set(seen)) == len(seen), f"a request was repeated: {seen}"
    return len(seen)


async def refused(opening, error: type[Exception]) -> tuple[float, Exception]:  # type: ignore[no-untyped-def]
    """Open (or init) and close; it must fail with ``error``. "At once" is what the callers check with
    ``assert_no_retries`` (no repeated request, so no back-off sleep), not a time with a margin; the
    elapsed time is returned for the printout only, and ``wait_for`` is a guard against a hang."""

    async def attempt() -> None:
        async with opening:
            pass

    started = time.monotonic()
    with pytest.raises(error) as caught:
        await asyncio.wait_for(attempt(), 60)
    return time.monotonic() - started, caught.value


def az_url(proxy: FaultProxy, container: str) -> str:
    return f"az://{ACCOUNT_NAME}/{container}?endpoint={proxy.blob_endpoint}"


async def test_a_wrong_account_key_is_refused_at_once(azurite: Azurite, container: str) -> None:
    async with init(f"azurite://127.0.0.1:{azurite.port}/{container}"):
        pass
    bad_key = "A" * 86 + "=="  # well-formed base64, wrong
    with FaultProxy(azurite.port) as proxy:
        bad = tiervault.AzureOptions(
            connection_string=(
                f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={bad_key};"
                f"BlobEndpoint={proxy.blob_endpoint};"
            )
        )
        elapsed, exc = await refused(open_(az_url(proxy, container), bad), PermissionDeniedError)
        n = assert_no_retries(proxy)
        proxy.reset()
        await refused(init(az_url(proxy, f"{container}-new"), bad), PermissionDeniedError)
        assert_no_retries(proxy)
    print(f"\nwrong key: {type(exc).__name__} after {elapsed:.2f} s and {n} request(s): {exc}")


async def test_an_expired_sas_is_refused_at_once(azurite: Azurite, container: str) -> None:
    async with init(f"azurite://127.0.0.1:{azurite.port}/{container}"):
        pass
    now = datetime.now(UTC)
    permission = ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True, list=True)

    def sas(expiry: datetime) -> str:
        return generate_container_sas(
            ACCOUNT_NAME,
            container,
            account_key=ACCOUNT_KEY,
            permission=permission,
            start=now - timedelta(hours=2),
            expiry=expiry,
        )

    with FaultProxy(azurite.port) as proxy:
        url = az_url(proxy, container)
        # the same SAS, still valid, opens the repository: the refusal below is the expiry
        async with open_(url, tiervault.AzureOptions(sas_token=sas(now + timedelta(hours=1)))) as vault:
            assert await vault.items() == []
        proxy.reset()
        expired = tiervault.AzureOptions(sas_token=sas(now - timedelta(minutes=5)))
        elapsed, exc = await refused(open_(url, expired), PermissionDeniedError)
        n = assert_no_retries(proxy)
    print(f"\nexpired SAS: {type(exc).__name__} after {elapsed:.2f} s and {n} request(s): {exc}")


async def test_a_missing_container_is_reported_at_once(azurite: Azurite) -> None:
    with FaultProxy(azurite.port) as proxy:
        missing = f"missing-{time.monotonic_ns()}"
        elapsed, exc = await refused(open_(proxy.address(missing)), RepositoryNotFoundError)
        n = assert_no_retries(proxy)
    # not merely "no repository here": it names the address and says the container itself is missing
    assert str(exc).startswith(f"no tiervault repository at {proxy.address(missing)} ("), exc
    assert f"container '{missing}' does not exist" in str(exc), exc
    print(f"\nmissing container: {type(exc).__name__} after {elapsed:.2f} s and {n} request(s): {exc}")
