"""Azurite, the Azure Blob emulator the tests run against, managed from Python.

``ensure_installed`` puts **Azurite 3.37.0 and a Node 22 binary** (the npm ``node`` package) into a
git-ignored cache inside the checkout (``.cache/azurite``) with the machine's own npm; ``Azurite`` runs
the blob service on that Node, in a process group of its own, and stops it by its own PID. Why so
(``../shared/AZURE.md``, "Azurite"): on Node 20 a plain ``npm install azurite`` quietly picks 3.35,
which breaks Blob Batch with the Python SDK; killing an npm/npx wrapper leaves the real ``node`` running.

Persistence: with ``--location`` Azurite keeps blob bytes in files at once, but its metadata
(LokiJS) is saved on a timer, every ``AUTOSAVE_INTERVAL`` seconds and only when changed. So
``stop()``/``restart()`` (SIGINT: Azurite saves and closes) keep everything, while ``kill()`` (SIGKILL,
a crash) loses what was acknowledged in the last few seconds, unlike real Azure: call
``wait_persisted(container, names)`` before ``kill()`` when a test needs those writes to survive.

Also a script (only the standard library is imported at module level, so any Python runs it)::

    python tests/support/azurite.py install          # what ``nox -s tests`` does before pytest
    python tests/support/azurite.py run [--port N]   # an Azurite in the foreground, for a shell
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

AZURITE_VERSION = "3.37.0"
NODE_MAJOR = 22
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Git-ignored (``.cache/`` in ``.gitignore``); safe to delete, reinstalled on the next run.
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "azurite"

ACCOUNT_NAME = "devstoreaccount1"
#: Azurite's well-known development account key (public, documented by Microsoft).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

#: Seconds between two saves of Azurite's LokiJS metadata databases (``autosaveInterval: 5000``).
AUTOSAVE_INTERVAL = 5.0
_DB_FILES = ("__azurite_db_blob__.json", "__azurite_db_blob_extent__.json")
_MARKER = ".installed.json"
_NPM_TIMEOUT = 900.0

# Ends Azurite when the process that started it is gone, even by SIGKILL (no finalizer, no atexit):
# the parent's PID comes in the environment, and a reparented node sees another ppid.
_WATCHDOG_JS = """\
// tiervault tests: end this Azurite when the Python process that started it has gone.
const parent = Number(process.env.TIERVAULT_AZURITE_PARENT || 0);
if (parent > 0) {
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, "SIGKILL");
  }, 500).unref();
}
"""


class AzuriteError(RuntimeError):
    """Azurite could not be installed, started or reached."""


# ------------------------------------------------------------------------------------ install


def node_binary(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Where the Node 22 binary of the npm ``node`` package lives in ``cache_dir``."""
    return cache_dir / "node_modules" / "node" / "bin" / "node"


def blob_main_js(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """The entry point of Azurite's blob service (blob only: no queue, no table)."""
    return cache_dir / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"


def installed_versions(cache_dir: Path = DEFAULT_CACHE_DIR) -> dict[str, str] | None:
    """``{"azurite": ..., "node": ...}`` of a complete install in ``cache_dir``, else None."""
    try:
        marker = json.loads((cache_dir / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not (
        isinstance(marker, dict) and node_binary(cache_dir).is_file() and blob_main_js(cache_dir).is_file()
    ):
        return None
    return {str(k): str(v) for k, v in marker.items()}


def _is_current(versions: dict[str, str] | None) -> bool:
    return (
        versions is not None
        and versions.get("azurite") == AZURITE_VERSION
        and versions.get("node", "").startswith(f"v{NODE_MAJOR}.")
    )


def ensure_installed(cache_dir: Path = DEFAULT_CACHE_DIR, *, log: bool = False) -> Path:
    """Install Azurite ``AZURITE_VERSION`` and Node ``NODE_MAJOR`` into ``cache_dir`` unless there.

    Returns the Node binary. Idempotent and fast when already installed (reads one small file);
    several processes may call it at once (a file lock). Needs ``npm`` on PATH (any Node version:
    the versions are pinned, so npm's engine check cannot pick an older Azurite). A marker written
    last makes an interrupted install start again from scratch. Raises ``AzuriteError``.
    """
    cache_dir = cache_dir.resolve()
    if _is_current(installed_versions(cache_dir)):
        return node_binary(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / ".install.lock"):
        if _is_current(installed_versions(cache_dir)):  # another process finished it meanwhile
            return node_binary(cache_dir)
        started = time.monotonic()
        _npm_install(cache_dir)
        versions = _check_install(cache_dir)
        (cache_dir / _MARKER).write_text(json.dumps(versions) + "\n")
        if log:
            print(
                f"azurite: installed Azurite {versions['azurite']} and Node {versions['node']} "
                f"into {cache_dir} in {time.monotonic() - started:.1f} s",
                flush=True,
            )
    return node_binary(cache_dir)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _npm_install(cache_dir: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise AzuriteError(
            "npm was not found on PATH: the Azure tests install Azurite from the npm registry; install "
            "Node.js and npm (any version), or set TIERVAULT_TEST_AZURITE=0 to skip the Azure tests"
        )
    for stale in (_MARKER, "node_modules", "package.json", "package-lock.json"):
        path = cache_dir / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    command = [
        npm,
        "install",
        "--prefix",
        str(cache_dir),
        "--no-audit",
        "--no-fund",
        "--no-update-notifier",
        # Exact versions: npm only warns that azurite wants a newer Node than the one running npm.
        "--engine-strict=false",
        "--loglevel=error",
        f"node@{NODE_MAJOR}",
        f"azurite@{AZURITE_VERSION}",
    ]
    try:
        done = subprocess.run(
            command,
            cwd=cache_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AzuriteError(f"`{' '.join(command)}` took more than {_NPM_TIMEOUT:.0f} s") from exc
    except OSError as exc:
        raise AzuriteError(f"could not run npm: {exc}") from exc
    if done.returncode != 0:
        raise AzuriteError(
            f"`{' '.join(command)}` failed with exit code {done.returncode}:\n"
            + _tail(done.stdout + done.stderr, 40)
        )


def _check_install(cache_dir: Path) -> dict[str, str]:
    """Versions actually installed (not those asked for), or ``AzuriteError``."""
    try:
        package = json.loads((cache_dir / "node_modules" / "azurite" / "package.json").read_text())
    except (OSError, ValueError) as exc:
        raise AzuriteError(f"npm did not install azurite into {cache_dir}: {exc}") from exc
    azurite = str(package.get("version"))
    if azurite != AZURITE_VERSION:
        raise AzuriteError(f"npm installed azurite {azurite}, not {AZURITE_VERSION}")
    node, main_js = node_binary(cache_dir), blob_main_js(cache_dir)
    if not main_js.is_file():
        raise AzuriteError(f"azurite {azurite} has no {main_js}")
    try:
        node_version = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise AzuriteError(f"the Node binary from npm ({node}) does not run: {exc}") from exc
    if not node_version.startswith(f"v{NODE_MAJOR}."):
        raise AzuriteError(f"npm installed Node {node_version}, not Node {NODE_MAJOR}")
    return {"azurite": azurite, "node": node_version}


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _write_if_changed(path: Path, text: str) -> Path:
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------ running


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_container_name(hint: str = "") -> str:
    """A fresh, valid container name (3-63 of ``[a-z0-9-]``), starting with a readable ``hint``."""
    stem = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:40].strip("-")
    return f"{stem}-{uuid.uuid4().hex[:12]}" if stem else f"c-{uuid.uuid4().hex[:12]}"


#: Every Azurite started by this process and not yet stopped, for the atexit safety net.
_RUNNING: dict[int, Azurite] = {}


class Azurite:
    """One Azurite blob service on 127.0.0.1, its data on disk under ``location``.

    ``start()`` picks a free port the first time; ``restart()`` comes back on the same port and the
    same ``location`` (so data survives). Blocking calls of a few seconds: from async code, call them
    through ``asyncio.to_thread`` if other tasks must go on meanwhile. Use as a context manager, or
    call ``stop()``; an atexit hook and a watchdog in the Node process end forgotten ones.
    """

    def __init__(
        self,
        location: Path,
        *,
        port: int | None = None,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        startup_timeout: float = 30.0,
        log_path: Path | None = None,
    ) -> None:
        self.location = Path(location).resolve()
        self.cache_dir = Path(cache_dir).resolve()
        self.startup_timeout = startup_timeout
        #: Azurite's stdout and stderr (the access log): appended to across restarts.
        self.log_path = log_path or self.location.with_name(self.location.name + ".log")
        #: The ``Server`` header Azurite answered with, e.g. ``Azurite-Blob/3.37.0``.
        self.server_header = ""
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        #: how the last process ended: its exit status, or ``-signal`` (``-9``: it had to be killed)
        self.last_exit: int | None = None

    # -------------------------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise AzuriteError("Azurite has no port before its first start()")
        return self._port

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def pid(self) -> int | None:
        """The PID of the ``node`` process (also its process group id), while running."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start Azurite (installing it first if needed) and wait until it answers HTTP requests."""
        if self.running:
            return
        node = ensure_installed(self.cache_dir)
        watchdog = _write_if_changed(self.cache_dir / "tiervault-watchdog.js", _WATCHDOG_JS)
        self.location.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        pick_port = self._port is None
        for attempt in range(3 if pick_port else 1):
            port = free_port() if pick_port else self.port
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._spawn(node, watchdog, port)
            try:
                self._wait_ready(port, log_start)
            except AzuriteError:
                self.kill()
                if pick_port and attempt < 2 and "EADDRINUSE" in self._log_since(log_start):
                    continue  # someone took the free port between our probe and Azurite's bind
                raise
            self._port = port
            return

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully: SIGINT makes Azurite save its metadata and exit; SIGKILL after ``timeout``."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal(proc, signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(10)
        self._forget()

    def kill(self) -> None:
        """SIGKILL, like a crash: acknowledged writes newer than ``AUTOSAVE_INTERVAL`` may be lost."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal(proc, signal.SIGKILL)
            proc.wait(10)
        self._forget()

    def restart(self) -> None:
        """``stop()`` if running (graceful), then ``start()`` on the same port and location."""
        self.stop()
        self.start()

    def wait_persisted(
        self, container: str, names: Iterable[str], timeout: float = 6 * AUTOSAVE_INTERVAL
    ) -> None:
        """Block until Azurite's saved metadata holds the blobs ``names`` of ``container`` (<= ~5 s).

        LokiJS saves its databases every ``AUTOSAVE_INTERVAL`` s when they changed (a temporary file,
        then a rename). Instead of guessing when a save has happened, read what was saved: the blob
        database must list each blob (and its container), and the extent database each extent that
        holds a blob's bytes. ``timeout`` only guards against a save that never comes.
        """
        if not self.running:
            raise AzuriteError("Azurite is not running")
        wanted = set(names)
        deadline = time.monotonic() + timeout
        while (missing := self._unsaved(container, wanted)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if missing:
            raise AzuriteError(f"Azurite did not save {sorted(missing)} of {container} in {timeout:.0f} s")

    def _unsaved(self, container: str, wanted: set[str]) -> set[str]:
        """The blobs of ``wanted`` that Azurite's saved metadata does not hold yet, with their bytes."""
        try:
            blobs = _saved_collections(self.location / _DB_FILES[0])
            extents = _saved_collections(self.location / _DB_FILES[1])
        except (FileNotFoundError, ValueError, KeyError):  # not saved yet
            return wanted
        if not any(c.get("name") == container for c in blobs.get("$CONTAINERS_COLLECTION$", [])):
            return wanted
        saved_extents = {e.get("id") for e in extents.get("$EXTENTS_COLLECTION$", [])}
        saved = {
            b["name"]
            for b in blobs.get("$BLOBS_COLLECTION$", [])
            if b.get("containerName") == container
            and (b.get("persistency") is None or b["persistency"].get("id") in saved_extents)
        }
        return wanted - saved

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<Azurite {AZURITE_VERSION} port={self._port} {state} location={self.location}>"

    # -------------------------------------------------------------------------------- SDK helpers

    def service_client(self) -> BlobServiceClient:
        """A sync ``BlobServiceClient`` for the development account; close it.

        ``retry_total=0``, as every SDK client against Azurite should have: Azurite answers some
        unsupported headers with 500, which the SDK's default policy retries with 15 s+ back-off.
        """
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, retry_total=0)

    def make_container(self, name: str | None = None) -> str:
        """Create a container (a fresh unique name by default) and return its name."""
        name = name or unique_container_name()
        with self.service_client() as client:
            client.create_container(name)
        return name

    def delete_container(self, name: str) -> None:
        """Delete a container and all its blobs; no error if it does not exist."""
        from azure.core.exceptions import ResourceNotFoundError

        with self.service_client() as client, contextlib.suppress(ResourceNotFoundError):
            client.delete_container(name)

    # -------------------------------------------------------------------------------- internals

    def _spawn(self, node: Path, watchdog: Path, port: int) -> None:
        command = [
            str(node),
            "--require",
            str(watchdog),
            str(blob_main_js(self.cache_dir)),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(self.location),
            "--disableTelemetry",
            "--skipApiVersionCheck",  # the SDK sends an x-ms-version newer than Azurite knows
            "--loose",  # ignore headers and parameters Azurite does not support, rather than fail
        ]
        env = {**os.environ, "TIERVAULT_AZURITE_PARENT": str(os.getpid())}
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                cwd=self.location,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach node and only node
            )
        _RUNNING[id(self)] = self

    def _wait_ready(self, port: int, log_start: int) -> None:
        """Until an HTTP request gets an answer from Azurite itself, at most ``startup_timeout`` s."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise AzuriteError(
                    f"Azurite exited with code {code} while starting on port {port}; its log "
                    f"({self.log_path}) ends with:\n{_tail(self._log_since(log_start), 20)}"
                )
            server = _probe(port)
            if server is not None:
                if not server.startswith("Azurite-Blob/"):
                    raise AzuriteError(f"port {port} is answered by {server!r}, not by Azurite")
                self.server_header = server
                return
            if time.monotonic() >= deadline:
                raise AzuriteError(
                    f"Azurite did not answer on port {port} within {self.startup_timeout:.0f} s; its "
                    f"log ({self.log_path}) ends with:\n{_tail(self._log_since(log_start), 20)}"
                )
            time.sleep(0.1)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # Only while the leader is unreaped: its PID, which is the group id, cannot be reused then.
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def _forget(self) -> None:
        if self._proc is not None:
            self.last_exit = self._proc.poll()
        self._proc = None
        _RUNNING.pop(id(self), None)


def _probe(port: int) -> str | None:
    """The ``Server`` header of an answer to an (unauthenticated) GET, or None if none came."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        conn.request("GET", f"/{ACCOUNT_NAME}?restype=service&comp=properties")
        response = conn.getresponse()
        response.read()
        return response.getheader("Server", "")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _saved_collections(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The documents of each collection of a saved LokiJS database (one JSON file)."""
    db = json.loads(path.read_text())
    return {c["name"]: list(c["data"]) for c in db["collections"]}


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING.values()):
        with contextlib.suppress(Exception):
            server.kill()


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt (so finalizers and atexit run), if it would
    otherwise kill the process outright; a no-op off the main thread or under a custom handler."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ------------------------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="azurite.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help=f"install Azurite {AZURITE_VERSION} on Node {NODE_MAJOR} if missing")
    run = commands.add_parser("run", help="run Azurite in the foreground until Ctrl-C or SIGTERM")
    run.add_argument("--port", type=int, default=None)
    run.add_argument("--location", type=Path, default=None, help="data directory (default: a temp dir)")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            started = time.monotonic()
            ensure_installed(args.cache_dir, log=True)
            versions = installed_versions(args.cache_dir.resolve()) or {}
            print(
                f"azurite: Azurite {versions.get('azurite')} on Node {versions.get('node')} ready in "
                f"{args.cache_dir} ({time.monotonic() - started:.1f} s)",
                flush=True,
            )
            return 0
        with sigterm_as_keyboard_interrupt(), contextlib.ExitStack() as stack:
            location = args.location or Path(stack.enter_context(tempfile.TemporaryDirectory())) / "data"
            server = stack.enter_context(Azurite(location, port=args.port, cache_dir=args.cache_dir))
            print(
                json.dumps(
                    {
                        "pid": server.pid,
                        "port": server.port,
                        "location": str(location),
                        "connection_string": server.connection_string,
                    }
                ),
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                while server.running:
                    time.sleep(0.5)
        return 0
    except AzuriteError as exc:
        print(f"azurite: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
