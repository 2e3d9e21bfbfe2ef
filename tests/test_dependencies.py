"""Every runtime dependency that pyproject.toml declares is imported by tiervault itself: nothing is
installed into a customer's service or Function for no reason (optional features live in extras)."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "tiervault"


def _declared() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0] for req in project["dependencies"]]


def _imported() -> set[str]:
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


def _packages_of(dist: str) -> set[str]:
    """The import packages a distribution installs (``azure.storage.blob`` for azure-storage-blob)."""
    out = set()
    for f in metadata.files(dist) or []:
        parts = f.parts
        if f.suffix == ".py" and parts[-1] == "__init__.py" and ".dist-info" not in parts[0]:
            out.add(".".join(parts[:-1]))
        elif f.suffix in (".py", ".so") and len(parts) == 1:
            out.add(parts[0].split(".")[0])
    # the outermost package of each: azure.storage.blob, not azure.storage.blob.aio
    return {p for p in out if not any(p.startswith(q + ".") for q in out)}


def test_every_runtime_dependency_is_imported() -> None:
    imported = _imported()
    unused = [
        dist
        for dist in _declared()
        if not any(m == p or m.startswith(p + ".") for p in _packages_of(dist) for m in imported)
    ]
    assert not unused, f"declared in [project.dependencies] but imported nowhere in src/: {unused}"


def test_the_check_sees_packages() -> None:
    """The test above can fail: each declared distribution maps to at least one import package."""
    for dist in _declared():
        assert _packages_of(dist), dist
