"""``Repository`` is a facade over parts that each hold one concern (docs/architecture.md,
"Repository"): what a caller changes through the facade is what the parts see, and the other way
round."""

from __future__ import annotations

import pytest

from tests.support.memory import MemoryBackend
from tiervault.core.crypto import ScryptParams
from tiervault.errors import IntegrityError
from tiervault.repo.repository import Repository

KDF = ScryptParams(log_n=10)


async def test_the_facade_and_its_parts_share_one_state(memory_backend: MemoryBackend) -> None:
    repo = await Repository.init(memory_backend, b"old", pack_size=1 << 20, kdf=KDF)
    assert repo.key_name == repo.keyring.key_name and repo.key_name.startswith("keys/")
    new_id = await repo.change_password(b"new", kdf=KDF)
    assert repo.key_name == repo.keyring.key_name == "keys/" + new_id
    assert [k["id"] for k in await repo.list_keys() if k["current"]] == [new_id]

    # index errors: one list, whichever side clears or fills it (check clears it, then reloads)
    assert repo.index_errors is repo.index_files.errors
    repo.index_errors.append(IntegrityError("index/ab", "damaged"))
    with pytest.raises(IntegrityError) as info:
        repo.locate(bytes(32))
    assert info.value.name == "index/ab"  # the chunk is blamed on the unreadable index file
    repo.index_errors.clear()
    assert repo.index_files.errors == []

    opened = await Repository.open(memory_backend, b"new")
    assert opened.key_name == "keys/" + new_id and opened.id == repo.id
    assert opened.index is opened.packs.index is opened.trees.index is opened.index_files.index
