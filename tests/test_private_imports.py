"""No module of tiervault imports another module's private names (``from x import _y``): what is
shared across modules is public in the module that owns it (issue 10, "library manners")."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "tiervault"


def private_imports(root: Path = SRC) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tiervault"):
                found += [
                    f"{path.relative_to(root)}:{node.lineno}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    return found


def test_no_private_names_cross_modules() -> None:
    assert private_imports() == []


def test_the_scan_finds_a_private_import(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("from tiervault.x import __version__, ok\nfrom tiervault.y import a, _b\n")
    assert private_imports(tmp_path) == ["m.py:2: from tiervault.y import _b"]
