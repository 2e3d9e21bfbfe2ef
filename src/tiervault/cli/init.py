"""``tiervault init``: create a new repository."""

from __future__ import annotations

import asyncio

import tiervault

from . import passwords
from .context import Context, cache_options, repository
from .exitcodes import ExitCode
from .options import Commands, add_kdf_option, kdf
from .output import text


def register(commands: Commands) -> None:
    p = commands.add("init", "create a new repository", _handle)
    add_kdf_option(p)


def _handle(ctx: Context) -> int:
    return asyncio.run(_init(ctx, passwords.password(ctx.args, confirm=True)))


async def _init(ctx: Context, password: bytes) -> int:
    url = repository(ctx.args)
    async with tiervault.init(url, password=password, kdf=kdf(ctx.args), **cache_options(ctx.args)) as vault:
        if ctx.json:
            ctx.emit({"repository_id": vault.repository_id, "location": vault.location})
        else:
            ctx.out.print(
                f"created repository {vault.repository_id[:8]} at {text(vault.location)}", soft_wrap=True
            )
    return ExitCode.OK
