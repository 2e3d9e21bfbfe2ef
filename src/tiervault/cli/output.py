"""What the command line prints: text made safe, counts, times, tables, the live progress display on
stderr, log records and error lines."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime

from rich import box
from rich.console import Console
from rich.filesize import decimal as filesize
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

from .context import Context

__all__ = [
    "PROG",
    "PROGRESS_INTERVAL",
    "count",
    "errors_table",
    "print_problems",
    "filesize",
    "logging_to",
    "print_error",
    "progress",
    "table",
    "text",
    "when",
]

PROG = "tiervault"
PROGRESS_INTERVAL = 0.2  # seconds between two reads of the progress counters


def text(s: str) -> str:
    """A string safe to print: names that are not valid UTF-8 come back with surrogate escapes."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def when(dt: datetime) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(*columns: str, right: Sequence[str] = ()) -> Table:
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    return t


def errors_table(errors: Sequence[dict[str, str]], key: str = "path", kind: str = "error") -> Table:
    """A table of problems (``kind`` ``"error"`` or ``"warning"``: the column and the field it shows)."""
    t = table(key.capitalize(), kind.capitalize())
    for e in errors:
        t.add_row(text(e.get(key, "?")), text(e.get(kind, "")))
    return t


def print_problems(
    ctx: Context, problems: Sequence[dict[str, str]], heading: str, key: str = "path", kind: str = "error"
) -> None:
    """When there are ``problems``: the line ``heading:``, then their table (see :func:`errors_table`)."""
    if problems:
        ctx.out.print(f"{heading}:")
        ctx.out.print(errors_table(problems, key=key, kind=kind))


@asynccontextmanager
async def progress(
    ctx: Context, label: str, counters: tiervault.Progress | None = None
) -> AsyncIterator[None]:
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


class _ConsoleLogHandler(logging.Handler):
    """Log records as short lines through the stderr console (so they print above a live progress bar)."""

    def __init__(self, console: Console, level: int) -> None:
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(text(self.format(record)), soft_wrap=True)
        except Exception:
            self.handleError(record)


class _ConciseFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"


@contextmanager
def logging_to(console: Console, debug: bool) -> Iterator[None]:
    """While the body runs, the ``tiervault`` logger prints to ``console``: warnings and above as short
    lines, or everything with timestamps when ``debug``."""
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


def print_error(message: str) -> None:
    """``tiervault: error: MESSAGE`` on stderr, on one line."""
    line = " ".join(text(message).split())
    sys.stderr.write(f"{PROG}: error: {line}\n")
    sys.stderr.flush()
