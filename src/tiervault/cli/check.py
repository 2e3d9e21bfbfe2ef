"""``tiervault check``: verify the repository's structure and metadata (and, optionally, all data)."""

from __future__ import annotations

from tiervault import Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .options import Commands
from .output import count, filesize, print_problems, progress


def register(commands: Commands) -> None:
    p = commands.add("check", "verify the repository's structure and metadata", vault_command(_check))
    p.add_argument("--read-data", action="store_true", help="also read and authenticate every data pack")


async def _check(ctx: Context, vault: Vault) -> int:
    async with progress(ctx, "checking" + (" all data" if ctx.args.read_data else "")):
        result = await vault.check(read_data=ctx.args.read_data)
    if ctx.json:
        ctx.emit(result.to_json())
    else:
        ctx.out.print(
            f"{count(result.snapshots, 'recovery point')}, {count(result.trees, 'tree')}, "
            f"{count(result.packs, 'pack')} "
            f"({result.packs_read:,} read, {filesize(result.bytes_read)})",
            soft_wrap=True,
        )
        warnings, errors = result.warnings, result.errors
        print_problems(ctx, warnings, count(len(warnings), "warning"), key="object", kind="warning")
        print_problems(ctx, errors, count(len(errors), "error"), key="object")
        if not errors:
            ctx.out.print("no errors found")
    return ExitCode.OK if result.ok else ExitCode.INTEGRITY
