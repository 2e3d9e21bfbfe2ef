"""The shape of ``tiervault.backend``: small modules, each with one job (issue 10), and the Azure SDK
imported only when an Azure backend is asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tiervault

BACKEND = Path(tiervault.__file__).resolve().parent / "backend"
#: the most lines a module of the backend package may have
MAX_LINES = 400


def long_modules(root: Path = BACKEND, limit: int = MAX_LINES) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            found.append(f"{path.relative_to(root)}: {lines} lines")
    return found


def test_no_backend_module_exceeds_the_limit() -> None:
    assert long_modules() == []


def test_the_check_finds_a_long_module(tmp_path: Path) -> None:
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "big.py").write_text("x = 1\n" * 401)
    (tmp_path / "small.py").write_text("x = 1\n" * 400)
    assert long_modules(tmp_path) == ["part/big.py: 401 lines"]


def _modules_after(statement: str) -> list[str]:
    """The ``azure`` and ``aiohttp`` modules a fresh interpreter has loaded after ``statement``."""
    script = (
        f"import json, sys\n{statement}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('azure', 'aiohttp'))))\n"
    )
    src = str(Path(tiervault.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_importing_tiervault_or_the_local_backend_imports_no_azure_sdk() -> None:
    assert _modules_after("import tiervault, tiervault.backend.local") == []


def test_the_azure_backend_brings_the_sdk() -> None:
    """The check above can see the SDK: the Azure backend's package imports it."""
    assert "azure.storage.blob.aio" in _modules_after("import tiervault.backend.azure")
