"""The systems ``bench/bench.py`` measures: how each one runs a step (its argv, environment and working
directory), where its repository is, how big the repository is, and what its output tells us.

Every system keeps its own state (caches, config) below ``WORK/state/<system>``, never in ``~``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
TV_STEP = BENCH_DIR / "tv_step.py"

PASSWORD = "tiervault-bench-not-a-secret"
ITEM = "corpus"

#: every system, in the default order (the order of the figures table; runs rotate it)
SYSTEMS = (
    "tiervault",
    "tiervault-az-warm",
    "tiervault-az-cold",
    "restic",
    "restic-rclone",
    "borg-lz4",
    "borg-zstd3",
)
AZURE_SYSTEMS = frozenset({"tiervault-az-warm", "tiervault-az-cold", "restic-rclone"})

#: the programs each system needs on PATH
TOOLS: dict[str, tuple[str, ...]] = {
    "restic": ("restic",),
    "restic-rclone": ("restic", "rclone"),
    "borg-lz4": ("borg",),
    "borg-zstd3": ("borg",),
}
#: the Debian/Ubuntu package of each program
PACKAGES = {"restic": "restic", "rclone": "rclone", "borg": "borgbackup"}
AZURITE_INSTALL = "apt-get install npm && python tests/support/azurite.py install"
#: the name of the rclone remote, defined only through environment variables
RCLONE_REMOTE = "tvbench"


def install_command(tools: list[str]) -> str:
    return "apt-get install " + " ".join(PACKAGES[t] for t in tools)


def missing_tools(systems: list[str], which: Any = shutil.which) -> dict[str, str]:
    """``{system: install command}`` for each selected system whose programs are not on PATH."""
    out = {}
    for name in systems:
        absent = [t for t in TOOLS.get(name, ()) if which(t) is None]
        if absent:
            out[name] = install_command(absent)
    return out


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return (out.stdout.strip() or out.stderr.strip()).splitlines()[0] if (out.stdout or out.stderr) else ""


def tree_bytes(root: Path) -> int:
    """Apparent size of the regular files under ``root`` (sum of st_size; directories not counted)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                total += os.lstat(full).st_size
    return total


# ------------------------------------------------------------------------------------------- Azurite


def account_sas(account: str, key: str, now: datetime | None = None) -> str:
    """An account SAS for the blob service: service + container + object, read/write/delete/list/add/create,
    valid from a minute ago (clock skew) to a day ahead."""
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    now = now or datetime.now(UTC)
    return generate_account_sas(
        account,
        key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(
            read=True, write=True, delete=True, list=True, add=True, create=True
        ),
        expiry=now + timedelta(days=1),
        start=now - timedelta(minutes=1),
    )


def rclone_env(blob_endpoint: str, sas: str, config: Path, remote: str = RCLONE_REMOTE) -> dict[str, str]:
    """The environment that defines the rclone remote ``remote`` (azureblob, through an account SAS URL).

    Why a SAS URL: Debian's rclone 1.60 reaches an emulator only on port 10000 (``use_emulator``) and
    takes ``endpoint`` as a DNS suffix, while a ``sas_url`` may name any host and port. ``RCLONE_CONFIG``
    points at an empty file of the bench's own, so ``~/.config/rclone`` is neither read nor created.
    """
    prefix = f"RCLONE_CONFIG_{remote.upper()}_"
    return {
        "RCLONE_CONFIG": str(config),
        prefix + "TYPE": "azureblob",
        prefix + "SAS_URL": f"{blob_endpoint}?{sas}",
    }


def sigterm_as_keyboard_interrupt() -> Any:
    """SIGTERM raises KeyboardInterrupt while inside, so the ``finally`` that stops Azurite and the step
    processes runs (the helper of ``tests.support.azurite``)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(1, str(ROOT))  # after bench/: tests.support.azurite
    from tests.support.azurite import sigterm_as_keyboard_interrupt as helper

    return helper()


class AzureSide:
    """The one Azurite of a bench invocation (``tests.support.azurite``), with container helpers."""

    def __init__(self, location: Path) -> None:
        if str(ROOT) not in sys.path:
            sys.path.insert(1, str(ROOT))  # after bench/: tests.support.azurite
        from tests.support.azurite import Azurite

        self.server = Azurite(location)

    def start(self) -> None:
        """Install (``npm``, first time only) and start; raises ``AzuriteError``."""
        from tests.support.azurite import ensure_installed

        ensure_installed(self.server.cache_dir)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def blob_endpoint(self) -> str:
        return self.server.blob_endpoint

    def version(self) -> str:
        from tests.support.azurite import installed_versions

        v = installed_versions(self.server.cache_dir) or {}
        return f"Azurite {v.get('azurite')} on Node {v.get('node')}"

    def sas(self) -> str:
        from tests.support.azurite import ACCOUNT_KEY, ACCOUNT_NAME

        return account_sas(ACCOUNT_NAME, ACCOUNT_KEY)

    def new_container_name(self, hint: str) -> str:
        from tests.support.azurite import unique_container_name

        return unique_container_name(hint)

    def create_container(self, name: str) -> None:
        self.server.make_container(name)

    def delete_container(self, name: str) -> None:
        self.server.delete_container(name)

    def container_bytes(self, name: str) -> int:
        """Sum of the sizes of the blobs in a container (0 when it does not exist)."""
        from azure.core.exceptions import ResourceNotFoundError

        with self.server.service_client() as client:
            try:
                return sum(b.size for b in client.get_container_client(name).list_blobs())
            except ResourceNotFoundError:
                return 0


# ------------------------------------------------------------------------------------------- systems


class System:
    """How one backup program runs each step, and what its output tells us.

    ``start_run`` gives the system a fresh, empty repository (and fresh caches) at the start of a run;
    ``end_run`` removes it. ``before_step`` runs outside the timing, before every step.
    """

    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.state = work / "state" / self.name
        self.repo = ""

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start_run(self, run: int) -> None:
        shutil.rmtree(self.state, ignore_errors=True)
        self.state.mkdir(parents=True)

    def end_run(self) -> None:
        pass

    def before_step(self, step: str) -> None:
        pass

    def init(self, corpus: Path) -> list[str]:
        raise NotImplementedError

    def backup(self, corpus: Path, step: str) -> list[str]:
        raise NotImplementedError

    def restore(self, target: Path) -> list[str]:
        raise NotImplementedError

    def cwd(self, step: str, target: Path) -> Path:
        """The working directory of a step's process."""
        return self.work

    def restored_root(self, target: Path, corpus: Path) -> Path:
        """Where the corpus' top directory ends up below the restore ``target``."""
        return target

    def repo_bytes(self) -> int:
        return tree_bytes(Path(self.repo))

    def details(self, step: str, stdout: str) -> dict[str, Any]:
        return {}


class LocalRepoMixin(System):
    """A repository directory ``WORK/repo-<system>``, recreated every run."""

    def start_run(self, run: int) -> None:
        super().start_run(run)
        self.repo = str(self.work / f"repo-{self.name}")
        shutil.rmtree(self.repo, ignore_errors=True)

    def end_run(self) -> None:
        shutil.rmtree(self.repo, ignore_errors=True)


class Tiervault(LocalRepoMixin):
    """tiervault on a local repository (its disk tier is off for local repositories)."""

    name = "tiervault"

    def cache_dir(self) -> Path:
        return self.state / "cache"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TIERVAULT_BENCH_PASSWORD": PASSWORD,
            "TIERVAULT_CACHE_DIR": str(self.cache_dir()),
        }

    def init(self, corpus: Path) -> list[str]:
        argv = [sys.executable, str(TV_STEP), "init", "--repo", self.repo]
        return [*argv, "--source", str(corpus), "--name", ITEM]

    def backup(self, corpus: Path, step: str) -> list[str]:
        return [sys.executable, str(TV_STEP), "snapshot", "--repo", self.repo, "--name", ITEM]

    def restore(self, target: Path) -> list[str]:
        return [sys.executable, str(TV_STEP), "restore", "--repo", self.repo, "--target", str(target)]

    def details(self, step: str, stdout: str) -> dict[str, Any]:
        lines = stdout.strip().splitlines()
        try:
            out: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            return {"stdout_tail": lines[-3:]}
        return out


class TiervaultAzure(Tiervault):
    """tiervault on ``azurite://127.0.0.1:PORT/CONTAINER``, a new container every run (created by the
    measured ``init``), with its disk tier (on by default for Azure) in ``$TIERVAULT_CACHE_DIR``.

    ``warm``: one cache directory for the whole run (kept across steps: the restore reads data packs
    the snapshots wrote through). Cold: the cache directory is deleted before every step.
    """

    def __init__(self, work: Path, azure: AzureSide, *, warm: bool) -> None:
        self.name = "tiervault-az-warm" if warm else "tiervault-az-cold"
        super().__init__(work)
        self.azure, self.warm = azure, warm
        self.container = ""

    def start_run(self, run: int) -> None:
        System.start_run(self, run)
        self.container = self.azure.new_container_name(f"{self.name}-run{run + 1}")
        self.repo = f"azurite://127.0.0.1:{self.azure.port}/{self.container}"

    def end_run(self) -> None:
        with contextlib.suppress(Exception):
            self.azure.delete_container(self.container)

    def before_step(self, step: str) -> None:
        if not self.warm:
            shutil.rmtree(self.cache_dir(), ignore_errors=True)

    def repo_bytes(self) -> int:
        return self.azure.container_bytes(self.container)

    def details(self, step: str, stdout: str) -> dict[str, Any]:
        out = super().details(step, stdout)
        out["cache_bytes_after"] = tree_bytes(self.cache_dir())  # the disk tier: not the repository
        return out


class Restic(LocalRepoMixin):
    name = "restic"

    def __init__(self, work: Path, exe: str = "restic") -> None:
        super().__init__(work)
        self.exe = exe

    def env(self) -> dict[str, str]:
        # A cache per run inside the work dir (not ~/.cache): not counted as repository size.
        return {**os.environ, "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(self.state / "cache")}

    def init(self, corpus: Path) -> list[str]:
        return [self.exe, "--repo", self.repo, "init"]

    def backup(self, corpus: Path, step: str) -> list[str]:
        return [self.exe, "--repo", self.repo, "backup", "--json", str(corpus)]

    def restore(self, target: Path) -> list[str]:
        return [self.exe, "--repo", self.repo, "restore", "latest", "--target", str(target)]

    def restored_root(self, target: Path, corpus: Path) -> Path:
        return target / str(corpus.resolve()).lstrip("/")  # restic recreates the absolute source path

    def details(self, step: str, stdout: str) -> dict[str, Any]:
        if step in ("initial", "mutated", "no-change"):
            for line in reversed(stdout.splitlines()):
                if '"message_type":"summary"' in line.replace(" ", ""):
                    try:
                        summary: dict[str, Any] = json.loads(line)
                    except json.JSONDecodeError:
                        break
                    return summary
        return {"stdout_tail": stdout.strip().splitlines()[-3:]}


class ResticRclone(Restic):
    """restic through rclone's azureblob backend (``-r rclone:tvbench:CONTAINER/restic``) on the bench's
    Azurite: restic 0.14's own azure backend cannot reach an emulator. A new container every run,
    created with the SDK before the (measured) ``restic init``."""

    name = "restic-rclone"

    def __init__(self, work: Path, azure: AzureSide, exe: str = "restic") -> None:
        super().__init__(work, exe)
        self.azure = azure
        self.container = ""
        self._rclone_env: dict[str, str] = {}

    def start_run(self, run: int) -> None:
        System.start_run(self, run)
        self.container = self.azure.new_container_name(f"{self.name}-run{run + 1}")
        self.azure.create_container(self.container)
        self.repo = f"rclone:{RCLONE_REMOTE}:{self.container}/restic"
        config = self.state / "rclone.conf"
        config.touch()
        self._rclone_env = rclone_env(self.azure.blob_endpoint, self.azure.sas(), config)

    def end_run(self) -> None:
        with contextlib.suppress(Exception):
            self.azure.delete_container(self.container)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self._rclone_env}

    def repo_bytes(self) -> int:
        return self.azure.container_bytes(self.container)


class Borg(LocalRepoMixin):
    """borg 1.2 on a local repository (``repokey-blake2``), one archive per backup step."""

    def __init__(self, work: Path, compression: str, exe: str = "borg") -> None:
        self.name = {"lz4": "borg-lz4", "zstd,3": "borg-zstd3"}[compression]
        super().__init__(work)
        self.compression, self.exe = compression, exe
        self.last_archive = ""

    def env(self) -> dict[str, str]:
        base = self.state / "base"
        return {
            **os.environ,
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_BASE_DIR": str(base),
            "BORG_CACHE_DIR": str(base / "cache"),
            "BORG_CONFIG_DIR": str(base / "config"),
            "BORG_SECURITY_DIR": str(base / "security"),
            "BORG_KEYS_DIR": str(base / "keys"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def init(self, corpus: Path) -> list[str]:
        return [self.exe, "init", "--encryption=repokey-blake2", self.repo]

    def backup(self, corpus: Path, step: str) -> list[str]:
        self.last_archive = step
        argv = [self.exe, "create", "--json", "--compression", self.compression]
        return [*argv, f"{self.repo}::{step}", str(corpus)]

    def restore(self, target: Path) -> list[str]:
        return [self.exe, "extract", f"{self.repo}::{self.last_archive}"]  # into the cwd

    def cwd(self, step: str, target: Path) -> Path:
        return target if step == "restore" else self.work

    def restored_root(self, target: Path, corpus: Path) -> Path:
        return target / str(corpus.resolve()).lstrip("/")  # borg stores paths without the leading "/"

    def details(self, step: str, stdout: str) -> dict[str, Any]:
        if step in ("initial", "mutated", "no-change"):
            try:
                out = json.loads(stdout)
            except json.JSONDecodeError:
                return {"stdout_tail": stdout.strip().splitlines()[-3:]}
            return {
                "archive": out.get("archive", {}).get("name"),
                "stats": out.get("archive", {}).get("stats"),
                "cache_stats": out.get("cache", {}).get("stats"),
                "duration": out.get("archive", {}).get("duration"),
            }
        return {}


def make_systems(
    names: list[str], work: Path, azure: AzureSide | None, which: Mapping[str, str | None]
) -> list[System]:
    """The System objects for ``names`` (all available: tools on PATH, Azurite running if needed)."""
    out: list[System] = []
    for name in names:
        if name == "tiervault":
            out.append(Tiervault(work))
        elif name in ("tiervault-az-warm", "tiervault-az-cold"):
            assert azure is not None
            out.append(TiervaultAzure(work, azure, warm=name.endswith("warm")))
        elif name == "restic":
            out.append(Restic(work, which.get("restic") or "restic"))
        elif name == "restic-rclone":
            assert azure is not None
            out.append(ResticRclone(work, azure, which.get("restic") or "restic"))
        elif name in ("borg-lz4", "borg-zstd3"):
            out.append(Borg(work, "lz4" if name == "borg-lz4" else "zstd,3", which.get("borg") or "borg"))
        else:
            raise ValueError(f"unknown system {name!r}")
    return out
