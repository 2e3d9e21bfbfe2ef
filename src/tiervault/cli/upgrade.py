"""``tiervault upgrade``: upgrade the repository to format version 2 (or finish a half-done upgrade)."""

from __future__ import annotations

from tiervault import Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .options import Commands


def register(commands: Commands) -> None:
    commands.add(
        "upgrade",
        "upgrade the repository to format version 2 (tiervault versions that only know version 1 can "
        "then no longer open it; run it while no snapshot runs)",
        vault_command(_upgrade),
    )


async def _upgrade(ctx: Context, vault: Vault) -> int:
    result = await vault.upgrade()
    if ctx.json:
        ctx.emit(result.to_json())
    else:
        ctx.out.print(result.message, soft_wrap=True)
    return ExitCode.OK
