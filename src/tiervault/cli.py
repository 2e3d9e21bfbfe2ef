"""The ``tiervault`` command line: parse, run one call of the public API, print, map errors to exit codes.

Thin on purpose (DESIGN.md, "Layers"): every command opens the repository through ``tiervault.open``
(or ``tiervault.init``), calls one or two methods of :class:`tiervault.Vault` and prints the result,
as rich tables for people or, with ``--json``, as JSON on stdout for programs. Exit codes are decided
here and only here, from :data:`EXIT_CODES`.

Repository and passwords come from options or the environment, like restic:

* ``-r/--repo URL`` or ``TIERVAULT_REPOSITORY``;
* the password from ``--password-file FILE``, else ``TIERVAULT_PASSWORD``, else the file named by
  ``TIERVAULT_PASSWORD_FILE``, else a prompt when stdin is a terminal (twice for a new password);
* a new password (``key add``, ``key passwd``) from ``--new-password-file FILE``, else
  ``TIERVAULT_NEW_PASSWORD``, else a prompt.

A password file's content is used as bytes, less one trailing newline.

The local disk tier: ``--cache-dir DIR`` (default ``$TIERVAULT_CACHE_DIR`` or ``~/.cache/tiervault``,
used by default for Azure repositories only), ``--no-cache``, ``--cache-size SIZE``; ``tiervault cache
stats | prune | clear`` manages it.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import getpass
import json
import logging
import os
import stat
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from rich import box
from rich.console import Console
from rich.filesize import decimal as _filesize
from rich.progress import (
    FileSizeColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as _ProgressBar
from rich.table import Table

import tiervault
from tiervault import (
    BackendError,
    Entry,
    IntegrityError,
    Item,
    NotFoundError,
    Policy,
    RecoveryPoint,
    RepositoryNotFoundError,
    ScryptParams,
    TiervaultError,
    UnsupportedFormatError,
    UsageError,
    Vault,
    WrongPasswordError,
    tune_allocator,
)

PROG = "tiervault"
ENV_REPOSITORY = "TIERVAULT_REPOSITORY"
ENV_PASSWORD = "TIERVAULT_PASSWORD"
ENV_PASSWORD_FILE = "TIERVAULT_PASSWORD_FILE"
ENV_NEW_PASSWORD = "TIERVAULT_NEW_PASSWORD"
ENV_CACHE_DIR = "TIERVAULT_CACHE_DIR"
PROGRESS_INTERVAL = 0.2  # seconds between two reads of the progress counters


# ---------------------------------------------------------------------------------------- exit codes


class ExitCode(enum.IntEnum):
    """Every status ``tiervault`` exits with."""

    OK = 0
    ERROR = 1  # any other tiervault or backend error, or an unexpected one
    USAGE = 2  # bad arguments, an unknown item/point/path, a missing source path
    PARTIAL = 3  # the work completed, but some files could not be read (snapshot) or written (restore)
    INCOMPLETE = 4  # the --deadline ran out first: an incomplete point was saved; run again to resume
    REPOSITORY_NOT_FOUND = 10
    WRONG_PASSWORD = 11
    INTEGRITY = 12  # damaged objects, including ``check`` finding problems
    UNSUPPORTED_FORMAT = 13
    INTERRUPTED = 130  # Ctrl-C


#: The one table from exceptions to exit codes: the most specific class in an exception's MRO wins.
EXIT_CODES: dict[type[BaseException], ExitCode] = {
    TiervaultError: ExitCode.ERROR,
    BackendError: ExitCode.ERROR,
    UsageError: ExitCode.USAGE,
    NotFoundError: ExitCode.USAGE,
    RepositoryNotFoundError: ExitCode.REPOSITORY_NOT_FOUND,
    WrongPasswordError: ExitCode.WRONG_PASSWORD,
    IntegrityError: ExitCode.INTEGRITY,
    UnsupportedFormatError: ExitCode.UNSUPPORTED_FORMAT,
    KeyboardInterrupt: ExitCode.INTERRUPTED,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit status for an exception that ended a command (see :data:`EXIT_CODES`)."""
    for cls in type(exc).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return ExitCode.ERROR


class _ArgumentError(Exception):
    """argparse found bad arguments (raised instead of exiting, so ``main`` returns a status)."""


# ---------------------------------------------------------------------------------------- the parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(f"{message} (see '{self.prog} --help')")


def _add_global_options(p: argparse.ArgumentParser, *, in_subcommand: bool) -> None:
    """Options accepted both before and after the command.

    In subcommands their default is SUPPRESS, so a value given before the command is not overwritten.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if in_subcommand else value

    g = p.add_argument_group("global options")
    g.add_argument(
        "-r",
        "--repo",
        metavar="URL",
        default=default(None),
        help=f"repository: a path, file:///path, https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], "
        f"az://ACCOUNT/CONTAINER[/PREFIX] or azurite://HOST:PORT/CONTAINER (default: ${ENV_REPOSITORY})",
    )
    g.add_argument(
        "--password-file",
        metavar="FILE",
        default=default(None),
        help=f"read the password from FILE (default: ${ENV_PASSWORD}, ${ENV_PASSWORD_FILE}, prompt)",
    )
    g.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=default(None),
        help=f"the local disk tier's directory (default: ${ENV_CACHE_DIR}, else ~/.cache/tiervault; "
        "on by default for Azure repositories only)",
    )
    g.add_argument(
        "--no-cache",
        action="store_true",
        default=default(False),
        help="do not use the local disk tier",
    )
    g.add_argument(
        "--cache-size",
        metavar="SIZE",
        type=_size,
        default=default(None),
        help="bound of the disk tier for this repository, e.g. 500M or 4G (default: 2G)",
    )
    g.add_argument(
        "--json", action="store_true", default=default(False), help="print machine-readable JSON on stdout"
    )
    g.add_argument(
        "--debug", action="store_true", default=default(False), help="log at DEBUG level and show tracebacks"
    )


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(text: str) -> int:
    """``1048576``, ``512K``, ``500M``, ``4G``, ``1T`` (binary units; a trailing ``iB``/``B`` is allowed)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 500M, 4G)") from None
    n = int(value * _UNITS[unit])
    if n <= 0:
        raise argparse.ArgumentTypeError(f"the size must be > 0, not {text!r}")
    return n


def _kdf_log_n(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    low, high = ScryptParams.LOG_N_MIN, ScryptParams.LOG_N_MAX  # the range ScryptParams accepts
    if not low <= n <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
    return n


def _add_kdf_option(p: argparse.ArgumentParser) -> None:
    # hidden: scrypt cost 2**N for new key slots; tests use a small one to run fast
    p.add_argument("--kdf-log-n", type=_kdf_log_n, default=None, metavar="N", help=argparse.SUPPRESS)


_KEEP = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_TIERS = ("cool", "cold", "archive")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Tiered, encrypted, deduplicating backups.",
        epilog="POINT is a recovery point id, a unique prefix of one (4+ hex digits), 'latest' or "
        "'latest:ITEM'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {tiervault.__version__}")
    _add_global_options(parser, in_subcommand=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, parent: Any = commands) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        _add_global_options(p, in_subcommand=True)
        return p

    p = command("init", "create a new repository")
    _add_kdf_option(p)

    p = command("protect", "register a folder as a protected item, or change an item's policy")
    p.add_argument("path", metavar="PATH", help="the folder to protect")
    p.add_argument("--name", required=True, metavar="N", help="the item's name")
    pol = p.add_argument_group(
        "policy",
        "given options replace the item's whole policy; with none, an existing item keeps its policy",
    )
    for k in _KEEP:
        pol.add_argument(f"--keep-{k}", type=int, metavar="N", default=None, help=f"keep the {k} N points")
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

    command("items", "list the protected items")

    p = command("snapshot", "take a recovery point of a protected item")
    p.add_argument("item", metavar="ITEM")
    p.add_argument("--tag", action="append", default=[], metavar="T", help="tag the point (repeatable)")
    p.add_argument("--force-rehash", action="store_true", help="read every file, even unchanged ones")
    p.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="stop in time to save an incomplete point before SECONDS have passed (exit 4); "
        "the next snapshot of the item resumes from it",
    )

    p = command("points", "list recovery points, oldest first")
    p.add_argument("--item", metavar="I", default=None, help="only points of this item")
    p.add_argument(
        "--tag", action="append", default=[], metavar="T", help="only points with this tag (repeatable)"
    )

    p = command("ls", "list a directory inside a recovery point")
    p.add_argument("point", metavar="POINT")
    p.add_argument("path", metavar="PATH", nargs="?", default="", help="a directory or file inside the point")
    p.add_argument("-R", "--recursive", action="store_true", help="list subdirectories too")

    p = command("restore", "restore a recovery point, or part of it, into a directory")
    p.add_argument("point", metavar="POINT")
    p.add_argument("--target", required=True, metavar="DIR", help="where to restore to")
    p.add_argument(
        "--path", action="append", default=[], metavar="P", help="restore only this path (repeatable)"
    )
    p.add_argument(
        "--include", action="append", default=[], metavar="G", help="only paths matching this glob"
    )
    p.add_argument(
        "--exclude", action="append", default=[], metavar="G", help="skip paths matching this glob"
    )
    p.add_argument("--verify", action="store_true", help="read back and check every restored file")
    p.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="start no new read after SECONDS (exit 4); the same restore into the same target resumes",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="restore even into a directory inside the item's protected source (with a warning)",
    )

    p = command("check", "verify the repository's structure and metadata")
    p.add_argument("--read-data", action="store_true", help="also read and authenticate every data pack")

    p = command("key", "manage the repository's passwords (key slots)")
    keys = p.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    command("list", "list the key slots", keys)
    p = command("add", "add a password", keys)
    p.add_argument(
        "--new-password-file",
        metavar="FILE",
        default=None,
        help=f"read the new password from FILE (default: ${ENV_NEW_PASSWORD}, prompt)",
    )
    _add_kdf_option(p)
    p = command("remove", "remove a key slot (not the one in use)", keys)
    p.add_argument("id", metavar="ID", help="a key id or unique prefix")
    p = command("passwd", "change the password in use (replaces its key slot)", keys)
    p.add_argument(
        "--new-password-file",
        metavar="FILE",
        default=None,
        help=f"read the new password from FILE (default: ${ENV_NEW_PASSWORD}, prompt)",
    )
    _add_kdf_option(p)

    p = command("cache", "the local disk tier of this repository")
    actions = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    command("stats", "where the disk tier is, what it holds and what it served", actions)
    command("prune", "evict least recently used entries until the cache is within its bound", actions)
    command("clear", "remove every cached object of this repository (the repository keeps them)", actions)
    return parser


# ---------------------------------------------------------------------------------------- passwords


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _read_password_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:  # blocking is fine: this runs before the event loop
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read password file {path!r}: {exc.strerror or exc}") from exc
    for newline in (b"\r\n", b"\n"):
        if data.endswith(newline):
            return data[: -len(newline)]
    return data


def _prompt(what: str, *, confirm: bool, hint: str) -> bytes:
    if not _stdin_is_tty():
        raise UsageError(f"no {what} given and stdin is not a terminal: {hint}")
    try:
        first = getpass.getpass(f"enter {what}: ")
        if confirm and getpass.getpass(f"enter {what} again: ") != first:
            raise UsageError("the passwords do not match")
    except EOFError:
        raise UsageError(f"no {what} entered") from None
    return first.encode("utf-8")


def _password(args: argparse.Namespace, *, confirm: bool = False) -> bytes:
    if args.password_file is not None:
        return _read_password_file(args.password_file)
    if env := os.environ.get(ENV_PASSWORD):
        return os.fsencode(env)
    if path := os.environ.get(ENV_PASSWORD_FILE):
        return _read_password_file(path)
    what = "password for the new repository" if confirm else "repository password"
    return _prompt(what, confirm=confirm, hint=f"set {ENV_PASSWORD} or use --password-file")


def _new_password(args: argparse.Namespace) -> bytes:
    if args.new_password_file is not None:
        return _read_password_file(args.new_password_file)
    if env := os.environ.get(ENV_NEW_PASSWORD):
        return os.fsencode(env)
    return _prompt("new password", confirm=True, hint=f"set {ENV_NEW_PASSWORD} or use --new-password-file")


def _repository(args: argparse.Namespace) -> str:
    repo: str | None = args.repo or os.environ.get(ENV_REPOSITORY)
    if not repo:
        raise UsageError(f"no repository given: use -r/--repo or set {ENV_REPOSITORY}")
    return repo


def _kdf(args: argparse.Namespace) -> ScryptParams | None:
    return ScryptParams(log_n=args.kdf_log_n) if args.kdf_log_n is not None else None


# ---------------------------------------------------------------------------------------- output


@dataclass(slots=True)
class _Ctx:
    args: argparse.Namespace
    out: Console  # results (stdout)
    err: Console  # progress and log messages (stderr)
    interactive: bool  # show progress: stderr is a terminal and not --json

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def emit(self, obj: Any) -> None:
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
        sys.stdout.flush()


def _text(s: str) -> str:
    """A string safe to print: names that are not valid UTF-8 come back with surrogate escapes."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _when(dt: datetime) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _table(*columns: str, right: Sequence[str] = ()) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    return t


def _policy_text(policy: Policy) -> str:
    return ", ".join(f"{k}={v}" for k, v in policy.to_json().items()) or "keep all"


def _item_json(item: Item) -> dict[str, Any]:
    return {
        "name": item.name,
        "kind": item.kind,
        "source": item.source,
        "policy": item.policy.to_json(),
        "created": item.created,
        "updated": item.updated,
    }


def _errors_table(errors: Sequence[dict[str, str]], key: str = "path", kind: str = "error") -> Table:
    """A table of problems (``kind`` ``"error"`` or ``"warning"``: the column and the field it shows)."""
    t = _table(key.capitalize(), kind.capitalize())
    for e in errors:
        t.add_row(_text(e.get(key, "?")), _text(e.get(kind, "")))
    return t


@asynccontextmanager
async def _progress(ctx: _Ctx, label: str, counters: tiervault.Progress | None = None) -> AsyncIterator[None]:
    """While the body runs: a live display on stderr when interactive, else nothing.

    With ``counters`` it shows files and bytes done and the rate, read every PROGRESS_INTERVAL.
    """
    if not ctx.interactive:
        yield
        return
    if counters is None:
        with ctx.err.status(label):
            yield
        return
    bar = _ProgressBar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[files]:,} files"),
        FileSizeColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=ctx.err,
        transient=True,
    )
    task = bar.add_task(label, total=None, files=0)

    async def poll() -> None:
        while True:
            with counters.lock:
                files, nbytes = counters.files_done, counters.bytes_done
            bar.update(task, completed=nbytes, files=files)
            await asyncio.sleep(PROGRESS_INTERVAL)

    with bar:
        poller = asyncio.create_task(poll())
        try:
            yield
        finally:
            poller.cancel()
            await asyncio.wait([poller])


# ---------------------------------------------------------------------------------------- commands


async def _init(ctx: _Ctx, password: bytes) -> int:
    url = _repository(ctx.args)
    async with tiervault.init(
        url, password=password, kdf=_kdf(ctx.args), **_cache_options(ctx.args)
    ) as vault:
        if ctx.json:
            ctx.emit({"repository_id": vault.repository_id, "location": vault.location})
        else:
            ctx.out.print(
                f"created repository {vault.repository_id[:8]} at {_text(vault.location)}", soft_wrap=True
            )
    return ExitCode.OK


async def _protect(ctx: _Ctx, vault: Vault) -> int:
    a = ctx.args
    fields: dict[str, Any] = {f"keep_{k}": getattr(a, f"keep_{k}") for k in _KEEP}
    fields.update({f"{t}_after_days": getattr(a, f"{t}_after_days") for t in _TIERS})
    fields["schedule"] = a.schedule
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
            f"item {item.name!r} protects {_text(item.source)} ({_policy_text(item.policy)})", soft_wrap=True
        )
    return ExitCode.OK


async def _items(ctx: _Ctx, vault: Vault) -> int:
    items = await vault.items()
    if ctx.json:
        ctx.emit([_item_json(i) for i in items])
        return ExitCode.OK
    t = _table("Name", "Kind", "Source", "Policy", "Updated")
    for i in items:
        t.add_row(i.name, i.kind, _text(i.source), _policy_text(i.policy), i.updated[:19].replace("T", " "))
    ctx.out.print(t)
    return ExitCode.OK


async def _snapshot(ctx: _Ctx, vault: Vault) -> int:
    a = ctx.args
    counters = tiervault.Progress()
    async with _progress(ctx, f"snapshot {a.item}", counters):
        result = await vault.snapshot(
            a.item, tags=a.tag, force_rehash=a.force_rehash, progress=counters, deadline=a.deadline
        )
    s, point = result.stats, result.point
    if ctx.json:
        ctx.emit(
            {
                "point": point.to_json(),
                "stats": s.to_json(),
                "errors": list(result.errors),
                "warnings": list(result.warnings),
                "partial": result.partial,
                "incomplete": result.incomplete,
            }
        )
    else:
        ctx.out.print(
            f"recovery point {point.short_id} of item {point.item!r} saved"
            + (" (PARTIAL)" if result.partial else "")
            + (" (INCOMPLETE: the deadline ran out; run again to resume)" if result.incomplete else ""),
            soft_wrap=True,
        )
        ctx.out.print(
            f"  files: {s.files:,} ({s.files_read:,} read, {s.files_reused:,} unchanged), dirs: {s.dirs:,}, "
            f"other: {s.others:,}\n"
            f"  data:  {_filesize(s.bytes_total)} total, {_filesize(s.bytes_read)} read, "
            f"{_filesize(s.bytes_new)} new, {_filesize(s.stored_new)} stored in {s.packs_new:,} packs\n"
            f"  time:  {s.duration_s:.2f} s",
            soft_wrap=True,
        )
        if result.errors:
            ctx.out.print(f"{_count(len(result.errors), 'entry', 'entries')} could not be backed up:")
            ctx.out.print(_errors_table(result.errors))
        if result.warnings:
            ctx.out.print(f"{_count(len(result.warnings), 'file')} changed while being backed up:")
            t = _table("Path", "Warning")
            for w in result.warnings:
                t.add_row(_text(w.get("path", "?")), _text(w.get("warning", "")))
            ctx.out.print(t)
    if result.incomplete:
        return ExitCode.INCOMPLETE
    return ExitCode.PARTIAL if result.partial else ExitCode.OK


async def _points(ctx: _Ctx, vault: Vault) -> int:
    points = await vault.points(ctx.args.item, tags=ctx.args.tag or None)
    if ctx.json:
        ctx.emit([p.to_json() for p in points])
        return ExitCode.OK
    t = _table("ID", "Time", "Item", "Host", "Tags", "Files", "Size", "", right=("Files", "Size"))
    for p in points:
        t.add_row(
            p.short_id,
            _when(p.time),
            p.item,
            p.host,
            ",".join(p.tags),
            f"{p.stats.get('files', 0):,}",
            _filesize(int(p.stats.get("bytes_total", 0))),
            "partial" if p.partial else "",
        )
    ctx.out.print(t)
    ctx.out.print(_count(len(points), "recovery point"))
    return ExitCode.OK


_TYPE_CHAR = {"dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b"}


def _mode_text(e: Entry) -> str:
    return _TYPE_CHAR.get(e.type, "-") + stat.filemode(e.mode)[1:]


async def _ls(ctx: _Ctx, vault: Vault) -> int:
    a = ctx.args
    entries = await vault.ls(a.point, a.path, recursive=a.recursive)
    if ctx.json:
        ctx.emit([e.to_json() for e in entries])
        return ExitCode.OK
    t = _table("Mode", "Size", "Modified", "Path", right=("Size",))
    for e in entries:
        name = _text(e.path) + (f" -> {_text(e.target)}" if e.target is not None else "")
        t.add_row(_mode_text(e), f"{e.size:,}" if e.type == "file" else "", _when(e.mtime), name)
    ctx.out.print(t)
    return ExitCode.OK


async def _restore(ctx: _Ctx, vault: Vault) -> int:
    a = ctx.args
    point: RecoveryPoint = await vault.point(a.point)
    async with _progress(ctx, f"restoring {point.short_id}"):
        result = await vault.restore(
            point,
            a.target,
            paths=a.path or None,
            include=a.include or None,
            exclude=a.exclude or None,
            verify=a.verify,
            deadline=a.deadline,
            force=a.force,
        )
    s = result.stats
    if ctx.json:
        ctx.emit(
            {
                "point": point.id,
                "target": a.target,
                "ok": result.ok,
                "incomplete": result.incomplete,
                "stats": s.to_json(),
                "errors": list(result.errors),
            }
        )
    else:
        if result.incomplete:
            ctx.out.print("INCOMPLETE: the deadline came first; run the same restore again to finish it")
        verified = f", {s.files_verified:,} verified" if a.verify else ""
        ctx.out.print(
            f"restored recovery point {point.short_id} to {_text(a.target)}\n"
            f"  files: {s.files:,} ({s.files_written:,} written, {s.files_unchanged:,} unchanged{verified}), "
            f"dirs: {s.dirs:,}, symlinks: {s.symlinks:,}, other: {s.others:,}\n"
            f"  data:  {_filesize(s.bytes_written)} written, {_filesize(s.bytes_fetched)} fetched "
            f"from {s.packs_read:,} packs\n"
            f"  reads: {_count(s.cache_hits, 'request')} ({_filesize(s.cache_bytes)}) from the disk tier, "
            f"{_count(s.remote_reads, 'request')} ({_filesize(s.remote_bytes)}) from the repository\n"
            f"  time:  {s.duration_s:.2f} s",
            soft_wrap=True,
        )
        if result.errors:
            ctx.out.print(f"{_count(len(result.errors), 'entry', 'entries')} could not be restored:")
            ctx.out.print(_errors_table(result.errors))
    if not result.ok:
        return ExitCode.PARTIAL
    return ExitCode.INCOMPLETE if result.incomplete else ExitCode.OK


async def _check(ctx: _Ctx, vault: Vault) -> int:
    async with _progress(ctx, "checking" + (" all data" if ctx.args.read_data else "")):
        result = await vault.check(read_data=ctx.args.read_data)
    if ctx.json:
        ctx.emit(result.to_json())
    else:
        ctx.out.print(
            f"{_count(result.snapshots, 'recovery point')}, {_count(result.trees, 'tree')}, "
            f"{_count(result.packs, 'pack')} "
            f"({result.packs_read:,} read, {_filesize(result.bytes_read)})",
            soft_wrap=True,
        )
        if result.warnings:
            ctx.out.print(f"{_count(len(result.warnings), 'warning')}:")
            ctx.out.print(_errors_table(result.warnings, key="object", kind="warning"))
        if result.errors:
            ctx.out.print(f"{_count(len(result.errors), 'error')}:")
            ctx.out.print(_errors_table(result.errors, key="object"))
        else:
            ctx.out.print("no errors found")
    return ExitCode.OK if result.ok else ExitCode.INTEGRITY


async def _key_list(ctx: _Ctx, vault: Vault) -> int:
    keys = await vault.keys()
    if ctx.json:
        ctx.emit([k.to_json() for k in keys])
        return ExitCode.OK
    t = _table("", "ID", "Created", "Host", "User")
    for k in keys:
        t.add_row(
            "*" if k.current else "",
            k.id[:16],
            _when(k.created) if k.created else f"damaged: {k.damaged}",
            k.host,
            k.user,
        )
    ctx.out.print(t)
    return ExitCode.OK


def _key_add(new_password: bytes) -> Callable[[_Ctx, Vault], Awaitable[int]]:
    async def run(ctx: _Ctx, vault: Vault) -> int:
        kid = await vault.add_key(new_password, kdf=_kdf(ctx.args))
        if ctx.json:
            ctx.emit({"id": kid})
        else:
            ctx.out.print(f"added key {kid[:16]}")
        return ExitCode.OK

    return run


async def _key_remove(ctx: _Ctx, vault: Vault) -> int:
    before = {k.id for k in await vault.keys()}
    await vault.remove_key(ctx.args.id)
    removed = sorted(before - {k.id for k in await vault.keys()})
    if ctx.json:
        ctx.emit({"removed": removed})
    else:
        ctx.out.print("removed key " + ", ".join(k[:16] for k in removed))
    return ExitCode.OK


def _key_passwd(new_password: bytes) -> Callable[[_Ctx, Vault], Awaitable[int]]:
    async def run(ctx: _Ctx, vault: Vault) -> int:
        kid = await vault.change_password(new_password, kdf=_kdf(ctx.args))
        if ctx.json:
            ctx.emit({"id": kid})
        else:
            ctx.out.print(f"password changed: key {kid[:16]} replaces the old one")
        return ExitCode.OK

    return run


async def _cache_stats(ctx: _Ctx, vault: Vault) -> int:
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
        f"  directory: {_text(st.directory)}\n"
        f"  holds:     {_filesize(u.bytes)} of {_filesize(st.max_bytes)} in {_count(u.entries, 'object')}: "
        f"{_count(u.data_entries, 'data pack')} ({_filesize(u.data_bytes)}), "
        f"{_count(u.metadata_entries, 'metadata object')} ({_filesize(u.metadata_bytes)})",
        soft_wrap=True,
    )
    return ExitCode.OK


def _cleanup(verb: str, clean: Callable[[Vault], Awaitable[Any]]) -> Callable[[_Ctx, Vault], Awaitable[int]]:
    async def run(ctx: _Ctx, vault: Vault) -> int:
        result = await clean(vault)
        if ctx.json:
            ctx.emit(result.to_json())
        else:
            u = result.usage
            ctx.out.print(
                f"{verb} {_count(result.removed_entries, 'object')} ({_filesize(result.removed_bytes)}); "
                f"the disk tier holds {_filesize(u.bytes)} in {_count(u.entries, 'object')}",
                soft_wrap=True,
            )
        return ExitCode.OK

    return run


_CACHE_COMMANDS: dict[str, Callable[[_Ctx, Vault], Awaitable[int]]] = {
    "stats": _cache_stats,
    "prune": _cleanup("evicted", Vault.cache_prune),
    "clear": _cleanup("removed", Vault.cache_clear),
}

_VAULT_COMMANDS: dict[str, Callable[[_Ctx, Vault], Awaitable[int]]] = {
    "protect": _protect,
    "items": _items,
    "snapshot": _snapshot,
    "points": _points,
    "ls": _ls,
    "restore": _restore,
    "check": _check,
}


def _cache_options(args: argparse.Namespace) -> dict[str, Any]:
    """``cache_dir`` / ``cache_max_bytes`` for ``tiervault.open`` from ``--cache-dir``, ``--no-cache``
    and ``--cache-size`` (the library's defaults when none is given)."""
    if args.no_cache and args.cache_dir is not None:
        raise UsageError("--cache-dir and --no-cache exclude each other")
    options: dict[str, Any] = {}
    if args.no_cache:
        options["cache_dir"] = False
    elif args.cache_dir is not None:
        options["cache_dir"] = args.cache_dir
    if args.cache_size is not None:
        options["cache_max_bytes"] = args.cache_size
    return options


async def _with_vault(ctx: _Ctx, password: bytes, run: Callable[[_Ctx, Vault], Awaitable[int]]) -> int:
    async with tiervault.open(_repository(ctx.args), password=password, **_cache_options(ctx.args)) as vault:
        return await run(ctx, vault)


def _dispatch(ctx: _Ctx) -> int:
    """Gather the passwords (blocking: files, prompts), then run the command on an event loop."""
    a = ctx.args
    _repository(a)  # fail before any prompt
    _cache_options(a)
    if a.command == "restore":
        a.target = os.path.abspath(a.target)
    if a.command == "init":
        return asyncio.run(_init(ctx, _password(a, confirm=True)))
    run: Callable[[_Ctx, Vault], Awaitable[int]]
    if a.command == "key":
        password = _password(a)
        if a.key_command == "list":
            run = _key_list
        elif a.key_command == "remove":
            run = _key_remove
        elif a.key_command == "add":
            run = _key_add(_new_password(a))
        else:
            run = _key_passwd(_new_password(a))
    elif a.command == "cache":
        password = _password(a)
        run = _CACHE_COMMANDS[a.cache_command]
    else:
        password = _password(a)
        run = _VAULT_COMMANDS[a.command]
    return asyncio.run(_with_vault(ctx, password, run))


# ---------------------------------------------------------------------------------------- main


class _ConsoleLogHandler(logging.Handler):
    """Log records as short lines through the stderr console (so they print above a live progress bar)."""

    def __init__(self, console: Console, level: int) -> None:
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(_text(self.format(record)), soft_wrap=True)
        except Exception:
            self.handleError(record)


class _ConciseFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"


@contextmanager
def _logging(console: Console, debug: bool) -> Iterator[None]:
    logger = logging.getLogger("tiervault")
    level = logging.DEBUG if debug else logging.WARNING
    handler = _ConsoleLogHandler(console, level)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s") if debug else _ConciseFormatter()
    )
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _print_error(message: str) -> None:
    line = " ".join(_text(message).split())
    sys.stderr.write(f"{PROG}: error: {line}\n")
    sys.stderr.flush()


def _leaf(exc: BaseException) -> BaseException:
    """The error to report from an exception group: a tiervault error first, else the first one."""
    while isinstance(exc, BaseExceptionGroup):
        inner = list(exc.exceptions)
        exc = next((e for e in inner if isinstance(e, TiervaultError | BaseExceptionGroup)), inner[0])
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tiervault`` command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    The command owns its process, so it fixes glibc's ``mmap`` threshold first (before the scrypt work
    area and any worker thread; ``tiervault/memory.py``, opt-out ``TIERVAULT_MALLOC_TUNING=0``). The
    library never does that by itself: a service calls :func:`tiervault.tune_allocator` if it wants it.
    """
    tune_allocator()
    return int(_main(argv))


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except _ArgumentError as exc:
        _print_error(str(exc))
        return ExitCode.USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else ExitCode.OK if exc.code is None else ExitCode.USAGE
    interactive = _stderr_is_tty() and not args.json
    err = Console(
        stderr=True, markup=False, highlight=False, emoji=False, force_terminal=True if interactive else None
    )
    out = Console(markup=False, highlight=False, emoji=False)
    ctx = _Ctx(args, out, err, interactive)
    with _logging(err, args.debug):
        try:
            return int(_dispatch(ctx))
        except KeyboardInterrupt:
            _print_error("interrupted")
            return ExitCode.INTERRUPTED
        except Exception as raised:
            problem = _leaf(raised)
            if args.debug:
                traceback.print_exception(raised, file=sys.stderr)
            if isinstance(problem, TiervaultError | OSError):
                _print_error(str(problem))
            else:
                _print_error(
                    f"unexpected {type(problem).__name__}: {problem} (run with --debug for the traceback)"
                )
            return exit_code_for(problem)


if __name__ == "__main__":
    sys.exit(main())
