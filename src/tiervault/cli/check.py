"""``tiervault check``: verify the repository's structure and metadata (and, optionally, all data)."""

from __future__ import annotations

from typing import Any

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
        if result.unused is None:
            ctx.out.print("unused: not computed (a damaged recovery point or tree may reference any pack)")
        else:
            size = result.unused_bytes or 0
            ctx.out.print(
                f"unused: {count(len(result.unused), 'pack')}, {size:,} bytes ({filesize(size)}): "
                "read by no recovery point, a prune deletes them",
                soft_wrap=True,
            )
        for plan, after, packs, size in _condemned(result.condemned):
            ctx.out.print(
                f"condemned: {count(packs, 'pack')}, {size:,} bytes, by plan {plan[:16]}: "
                f"deleted by the next prune after {after}",
                soft_wrap=True,
            )
        warnings, errors = result.warnings, result.errors
        print_problems(ctx, warnings, count(len(warnings), "warning"), key="object", kind="warning")
        print_problems(ctx, errors, count(len(errors), "error"), key="object")
        if not errors:
            ctx.out.print("no errors found")
    return ExitCode.OK if result.ok else ExitCode.INTEGRITY


def _condemned(condemned: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    """Condemned packs by plan: (plan id, earliest deletion, packs, bytes), oldest plan first."""
    plans: dict[str, tuple[str, str, int, int]] = {}
    for c in condemned:
        plan, after, packs, size = plans.get(c["plan"], (c["plan"], c["after"], 0, 0))
        plans[plan] = (plan, after, packs + 1, size + int(c["bytes"]))
    return sorted(plans.values(), key=lambda p: (p[1], p[0]))
