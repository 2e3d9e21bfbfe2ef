"""The administrative half of ``Vault``: checking and upgrading the repository, its key slots, and
the local disk tier. Kept apart from the backup and restore methods in ``vault.py`` only to keep each
module small; ``Vault`` inherits these methods unchanged."""

from __future__ import annotations

from tiervault.cache import CacheBackend, CacheCleanup, CacheStats
from tiervault.core.crypto import ScryptParams
from tiervault.errors import UsageError
from tiervault.maintenance import CheckResult, check
from tiervault.models import KeyInfo
from tiervault.repo.leftovers import incomplete_writes, leftover_warnings
from tiervault.repo.repository import Repository
from tiervault.repo.upgrade import UpgradeResult
from tiervault.restore import staging

Password = str | bytes


def password_bytes(pw: Password) -> bytes:
    """A password as the key derivation takes it (UTF-8 for text); an empty one is refused."""
    data = pw.encode("utf-8") if isinstance(pw, str) else bytes(pw)
    if not data:
        raise UsageError("the password must not be empty")
    return data


class VaultAdmin:
    """Methods of ``Vault`` (see there) over its repository and disk tier."""

    _repo: Repository
    _cache: CacheBackend | None

    # ------------------------------------------------------------------ the disk tier

    def _disk_tier(self) -> CacheBackend:
        if self._cache is None:  # pragma: no cover - _backend_for always stacks one
            raise UsageError("this vault has no disk tier")
        return self._cache

    async def cache_stats(self) -> CacheStats:
        """The disk tier of this repository: on or off (and why), where, how full, and how many read
        requests and bytes it and the store served since the vault was opened."""
        return await self._disk_tier().report()

    async def cache_prune(self) -> CacheCleanup:
        """Evict least recently used entries (data packs first) until the cache is within its bound."""
        return await self._disk_tier().prune()

    async def cache_clear(self) -> CacheCleanup:
        """Remove every cached object of this repository (nothing is lost: the store has them all)."""
        return await self._disk_tier().clear()

    # ------------------------------------------------------------------ maintenance and keys

    async def check(self, *, read_data: bool = False) -> CheckResult:
        """Verify the repository; ``read_data`` also reads and authenticates every data pack.

        Temporary files left by unfinished writes are reported as warnings (count and bytes, then
        each one by name); the next snapshot removes those older than the safe age. So are restores
        from Archive in progress (their staging copies and bytes), damaged rehydration records and
        staging copies without a record (docs/restore-archive.md)."""
        result = await check(self._repo, read_data=read_data)
        result.warnings.extend(leftover_warnings(await incomplete_writes(self._repo.backend)))
        result.warnings.extend(staging.check_warnings(await staging.load_rehydrations(self._repo)))
        return result

    async def upgrade(self) -> UpgradeResult:
        """Upgrade the repository to format version 2 (docs/format.md, "Upgrading to version 2"):
        tiervault versions that only know version 1 can then no longer open it, every key slot still
        opens, nothing but ``config`` is rewritten. Resumes an upgrade a killed run left half done;
        on a version-2 repository it changes nothing and says so (``result.upgraded`` is False). A
        repository needing writer features this tiervault lacks is refused (``UnsupportedFormatError``)."""
        return await self._repo.upgrade()

    async def keys(self) -> list[KeyInfo]:
        """The repository's key slots, oldest first."""
        return [KeyInfo._from(k) for k in await self._repo.list_keys()]

    async def add_key(self, password: Password, *, kdf: ScryptParams | None = None) -> str:
        return await self._repo.add_key(password_bytes(password), kdf=kdf)

    async def remove_key(self, key_id: str) -> None:
        await self._repo.remove_key(key_id)

    async def change_password(self, new_password: Password, *, kdf: ScryptParams | None = None) -> str:
        return await self._repo.change_password(password_bytes(new_password), kdf=kdf)
