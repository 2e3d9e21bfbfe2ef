"""``tiervault protect`` and ``tiervault items``: the protected items and their policies."""

from __future__ import annotations

from typing import Any

from tiervault import Item, NotFoundError, Policy, Vault

from .context import Context, vault_command
from .exitcodes import ExitCode
from .options import Commands
from .output import table, text

_KEEP = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_TIERS = ("cool", "cold", "archive")


def register(commands: Commands) -> None:
    p = commands.add(
        "protect",
        "register a folder as a protected item, or change an item's policy",
        vault_command(_protect),
    )
    p.add_argument("path", metavar="PATH", help="the folder to protect")
    p.add_argument("--name", required=True, metavar="N", help="the item's name")
    pol = p.add_argument_group(
        "policy",
        "given options replace the item's whole policy; with none, an existing item keeps its policy",
    )
    for k in _KEEP:
        pol.add_argument(f"--keep-{k}", type=int, metavar="N", default=None, help=f"keep the {k} N points")
    pol.add_argument(
        "--keep-within",
        metavar="D",
        default=None,
        help="keep every point within D of the newest (7d, 2w, 1y2m)",
    )
    pol.add_argument(
        "--keep-tag",
        action="append",
        default=None,
        metavar="T",
        help="keep every point with this tag (repeatable)",
    )
    for t in _TIERS:
        pol.add_argument(
            f"--{t}-after-days",
            type=int,
            metavar="N",
            default=None,
            help=f"move data only older points need to {t.capitalize()} after N days",
        )
    pol.add_argument(
        "--schedule", metavar="CRON", default=None, help="a 5- or 6-field cron expression (a hint)"
    )

    commands.add("items", "list the protected items", vault_command(_items))


def _policy_text(policy: Policy) -> str:
    shown = {k: ",".join(v) if isinstance(v, list) else v for k, v in policy.to_json().items()}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "keep all"


def _item_json(item: Item) -> dict[str, Any]:
    return {
        "name": item.name,
        "kind": item.kind,
        "source": item.source,
        "policy": item.policy.to_json(),
        "created": item.created,
        "updated": item.updated,
    }


async def _protect(ctx: Context, vault: Vault) -> int:
    a = ctx.args
    fields: dict[str, Any] = {f"keep_{k}": getattr(a, f"keep_{k}") for k in _KEEP}
    fields.update({f"{t}_after_days": getattr(a, f"{t}_after_days") for t in _TIERS})
    fields["schedule"] = a.schedule
    fields["keep_within"], fields["keep_tags"] = a.keep_within, a.keep_tag
    given = {k: v for k, v in fields.items() if v is not None}
    policy: Policy | None
    if given:
        policy = Policy(**given)
    else:  # no policy options: keep an existing item's policy (Vault.protect would reset it)
        try:
            policy = (await vault.item(a.name)).policy
        except NotFoundError:
            policy = None
    item = await vault.protect(a.path, name=a.name, policy=policy)
    if ctx.json:
        ctx.emit(_item_json(item))
    else:
        ctx.out.print(
            f"item {item.name!r} protects {text(item.source)} ({_policy_text(item.policy)})", soft_wrap=True
        )
    return ExitCode.OK


async def _items(ctx: Context, vault: Vault) -> int:
    items = await vault.items()
    if ctx.json:
        ctx.emit([_item_json(i) for i in items])
        return ExitCode.OK
    t = table("Name", "Kind", "Source", "Policy", "Updated")
    for i in items:
        t.add_row(i.name, i.kind, text(i.source), _policy_text(i.policy), i.updated[:19].replace("T", " "))
    ctx.out.print(t)
    return ExitCode.OK
