"""``tiervault cache stats | prune | clear``: the local disk tier of this repository."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tiervault import Vault

from .context import Context, VaultRun, vault_command
from .exitcodes import ExitCode
from .options import Commands
from .output import count, filesize, text


def register(commands: Commands) -> None:
    actions = commands.add_group("cache", "the local disk tier of this repository", dest="cache_command")
    actions.add("stats", "where the disk tier is, what it holds and what it served", vault_command(_stats))
    actions.add(
        "prune",
        "evict least recently used entries until the cache is within its bound",
        vault_command(_cleanup("evicted", Vault.cache_prune)),
    )
    actions.add(
        "clear",
        "remove every cached object of this repository (the repository keeps them)",
        vault_command(_cleanup("removed", Vault.cache_clear)),
    )


async def _stats(ctx: Context, vault: Vault) -> int:
    st = await vault.cache_stats()
    if ctx.json:
        ctx.emit(st.to_json())
        return ExitCode.OK
    if st.directory is None:
        ctx.out.print(
            "disk tier: off for this repository (use --cache-dir DIR to turn it on)", soft_wrap=True
        )
        return ExitCode.OK
    u = st.usage
    state = "on" if st.enabled else f"off for this run ({st.disabled_reason})"
    ctx.out.print(
        f"disk tier: {state}\n"
        f"  directory: {text(st.directory)}\n"
        f"  holds:     {filesize(u.bytes)} of {filesize(st.max_bytes)} in {count(u.entries, 'object')}: "
        f"{count(u.data_entries, 'data pack')} ({filesize(u.data_bytes)}), "
        f"{count(u.metadata_entries, 'metadata object')} ({filesize(u.metadata_bytes)})",
        soft_wrap=True,
    )
    return ExitCode.OK


def _cleanup(verb: str, clean: Callable[[Vault], Awaitable[Any]]) -> VaultRun:
    async def run(ctx: Context, vault: Vault) -> int:
        result = await clean(vault)
        if ctx.json:
            ctx.emit(result.to_json())
        else:
            u = result.usage
            ctx.out.print(
                f"{verb} {count(result.removed_entries, 'object')} ({filesize(result.removed_bytes)}); "
                f"the disk tier holds {filesize(u.bytes)} in {count(u.entries, 'object')}",
                soft_wrap=True,
            )
        return ExitCode.OK

    return run
