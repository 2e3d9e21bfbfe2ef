"""``tiervault key list | add | remove | passwd``: the repository's passwords (key slots)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from tiervault import ScryptParams, Vault

from . import passwords
from .context import Context, Handler, run_on_vault, vault_command
from .exitcodes import ExitCode
from .options import Commands, add_kdf_option, kdf
from .output import table, when


def register(commands: Commands) -> None:
    keys = commands.add_group("key", "manage the repository's passwords (key slots)", dest="key_command")
    keys.add("list", "list the key slots", vault_command(_list))
    p = keys.add("add", "add a password", _new_key(_add_key, "added key {}"))
    _add_new_password_options(p)
    p = keys.add("remove", "remove a key slot (not the one in use)", vault_command(_remove))
    p.add_argument("id", metavar="ID", help="a key id or unique prefix")
    p = keys.add(
        "passwd",
        "change the password in use (replaces its key slot)",
        _new_key(_change_password, "password changed: key {} replaces the old one"),
    )
    _add_new_password_options(p)


def _add_new_password_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--new-password-file",
        metavar="FILE",
        default=None,
        help=f"read the new password from FILE (default: ${passwords.ENV_NEW_PASSWORD}, prompt)",
    )
    add_kdf_option(p)


#: Makes a key slot for a new password (``vault``, ``new_password``, ``kdf``); returns the new key's id.
_KeyMaker = Callable[[Vault, bytes, ScryptParams | None], Awaitable[str]]


async def _add_key(vault: Vault, new_password: bytes, kdf: ScryptParams | None) -> str:
    return await vault.add_key(new_password, kdf=kdf)


async def _change_password(vault: Vault, new_password: bytes, kdf: ScryptParams | None) -> str:
    return await vault.change_password(new_password, kdf=kdf)


def _new_key(make: _KeyMaker, done: str) -> Handler:
    """A command making a key slot for a new password: ask for the repository's password, then the new
    one; then ``make`` the slot and print its id (``done`` formats the short id)."""

    def handler(ctx: Context) -> int:
        password = passwords.password(ctx.args)
        new_password = passwords.new_password(ctx.args)

        async def run(ctx: Context, vault: Vault) -> int:
            kid = await make(vault, new_password, kdf(ctx.args))
            if ctx.json:
                ctx.emit({"id": kid})
            else:
                ctx.out.print(done.format(kid[:16]))
            return ExitCode.OK

        return run_on_vault(ctx, password, run)

    return handler


async def _list(ctx: Context, vault: Vault) -> int:
    keys = await vault.keys()
    if ctx.json:
        ctx.emit([k.to_json() for k in keys])
        return ExitCode.OK
    t = table("", "ID", "Created", "Host", "User")
    for k in keys:
        t.add_row(
            "*" if k.current else "",
            k.id[:16],
            when(k.created) if k.created else f"damaged: {k.damaged}",
            k.host,
            k.user,
        )
    ctx.out.print(t)
    return ExitCode.OK


async def _remove(ctx: Context, vault: Vault) -> int:
    before = {k.id for k in await vault.keys()}
    await vault.remove_key(ctx.args.id)
    removed = sorted(before - {k.id for k in await vault.keys()})
    if ctx.json:
        ctx.emit({"removed": removed})
    else:
        ctx.out.print("removed key " + ", ".join(k[:16] for k in removed))
    return ExitCode.OK
