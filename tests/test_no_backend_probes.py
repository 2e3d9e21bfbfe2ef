"""Nothing in tiervault probes a backend for what it can do: it reads ``capabilities`` (issue 10).

No ``getattr``/``hasattr`` for a backend member, no ``isinstance`` against a backend class, and no
walking ``.inner`` down a stack of decorators: only the decorators themselves touch their ``inner``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tiervault.backend.base import Backend, Capabilities

SRC = Path(__file__).resolve().parent.parent / "src" / "tiervault"
#: the decorators: each forwards to its own ``inner``
DECORATORS = frozenset({"backend/retry.py", "cache/backend.py", "prune/requests.py"})
#: what a probe would look for: the contract's members and the capabilities
MEMBERS = frozenset(
    {n for n in dir(Backend) if not n.startswith("_")}
    | set(Capabilities.__dataclass_fields__)
    | {"inner", "create_container"}
)


def _names(node: ast.expr) -> list[str]:
    """The class names an ``isinstance`` second argument mentions (``A``, ``m.A``, ``A | B``, tuples)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.BinOp):
        return _names(node.left) + _names(node.right)
    if isinstance(node, ast.Tuple):
        return [n for elt in node.elts for n in _names(elt)]
    return []


def probes(root: Path = SRC) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute) and node.attr == "inner" and rel not in DECORATORS:
                found.append(f"{where}: .inner")
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) >= 2):
                continue
            arg = node.args[1]
            if (
                node.func.id in ("getattr", "hasattr")
                and isinstance(arg, ast.Constant)
                and arg.value in MEMBERS
            ):
                found.append(f"{where}: {node.func.id}(..., {arg.value!r})")
            if node.func.id == "isinstance" and any(n.endswith("Backend") for n in _names(arg)):
                found.append(f"{where}: isinstance(..., {ast.unparse(arg)})")
    return found


def test_no_module_probes_a_backend() -> None:
    assert probes() == []


def test_the_scan_finds_probes(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "b = x.inner\n"
        "f = getattr(b, 'create_container', None)\n"
        "ok = hasattr(b, 'put_needs_bytes')\n"
        "if isinstance(b, (m.LocalBackend, int)): pass\n"
        "fine = getattr(o, 'chunker', None)\n"
    )
    assert probes(tmp_path) == [
        "m.py:1: .inner",
        "m.py:2: getattr(..., 'create_container')",
        "m.py:3: hasattr(..., 'put_needs_bytes')",
        "m.py:4: isinstance(..., (m.LocalBackend, int))",
    ]
