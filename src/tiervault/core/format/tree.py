"""Trees: one directory's entries, serialized deterministically (docs/format.md, "Trees").

A tree is canonical JSON (UTF-8, keys sorted, no spaces) ``{"nodes": [...], "v": 1}`` with nodes sorted
by the raw bytes of their names. It is stored as a chunk in a meta pack; its id is the keyed hash of
these bytes, so equal directories are stored once. Byte strings that may not be UTF-8 (names, symlink
targets) are stored as ``"name"`` when they decode as UTF-8 and as ``"name_b64"`` otherwise.
File content is a list whose items are a chunk id (64 hex digits) or an integer: a hole of that many
zero bytes, restored as a hole.
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from tiervault.core.format import FormatError

TREE_VERSION = 1
NODE_TYPES = frozenset({"file", "dir", "symlink", "fifo", "chardev", "blockdev"})

ContentItem = bytes | int  # 32-byte chunk id, or hole length


@dataclass(slots=True)
class Node:
    name: bytes
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    device: int = 0
    links: int = 1
    size: int = 0
    content: list[ContentItem] = field(default_factory=list)
    subtree: bytes | None = None
    target: bytes | None = None
    rdev: int = 0
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return self.name.decode("utf-8", "backslashreplace")


def put_bytes(out: dict[str, Any], key: str, value: bytes) -> None:
    try:
        out[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        out[key + "_b64"] = base64.b64encode(value).decode("ascii")


def _get_bytes(obj: dict[str, Any], key: str) -> bytes | None:
    if key in obj:
        return str(obj[key]).encode("utf-8")
    if key + "_b64" in obj:
        return base64.b64decode(obj[key + "_b64"], validate=True)
    return None


def entry_json(
    name: bytes,
    ntype: str,
    mode: int,
    uid: int,
    gid: int,
    mtime_ns: int,
    ctime_ns: int,
    inode: int,
    device: int,
) -> dict[str, Any]:
    """The fields every node has, as its JSON object (the type-specific fields are added by the caller).

    ``node_to_json`` builds on this; so does the archiver, which keeps directories as JSON objects so
    that an unchanged directory is recognised by comparing objects, with no ``Node`` per entry.
    """
    out: dict[str, Any] = {
        "type": ntype,
        "mode": mode,
        "uid": uid,
        "gid": gid,
        "mtime_ns": mtime_ns,
        "ctime_ns": ctime_ns,
        "inode": inode,
        "device": device,
    }
    put_bytes(out, "name", name)
    return out


def content_to_json(content: list[ContentItem]) -> list[str | int]:
    return [c.hex() if isinstance(c, bytes) else c for c in content]


def xattrs_to_json(xattrs: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    attrs = []
    for k, v in xattrs:
        attr: dict[str, Any] = {"value": base64.b64encode(v).decode("ascii")}
        put_bytes(attr, "name", k)
        attrs.append(attr)
    return attrs


def json_name(obj: dict[str, Any]) -> bytes:
    """The raw name of a node's JSON object (``name``, or ``name_b64`` when it is not UTF-8)."""
    name = _get_bytes(obj, "name")
    if not name:
        raise FormatError("tree node without a name")
    return name


def node_to_json(n: Node) -> dict[str, Any]:
    out = entry_json(n.name, n.type, n.mode, n.uid, n.gid, n.mtime_ns, n.ctime_ns, n.inode, n.device)
    if n.type == "file":
        out["size"] = n.size
        out["links"] = n.links
        out["content"] = content_to_json(n.content)
    elif n.type == "dir":
        if n.subtree is None:
            raise ValueError("dir node without subtree")
        out["subtree"] = n.subtree.hex()
    elif n.type == "symlink":
        if n.target is None:
            raise ValueError("symlink node without target")
        put_bytes(out, "target", n.target)
    elif n.type in ("chardev", "blockdev"):
        out["rdev"] = n.rdev
    if n.xattrs:
        out["xattrs"] = xattrs_to_json(n.xattrs)
    return out


def node_from_json(obj: dict[str, Any]) -> Node:
    if not isinstance(obj, dict):
        raise FormatError("tree node is not an object")
    name = _get_bytes(obj, "name")
    ntype = obj.get("type")
    if name is None or ntype not in NODE_TYPES or not name or b"/" in name or name in (b".", b".."):
        raise FormatError("bad tree node")
    n = Node(
        name=name,
        type=str(ntype),
        mode=int(obj["mode"]),
        uid=int(obj["uid"]),
        gid=int(obj["gid"]),
        mtime_ns=int(obj["mtime_ns"]),
        ctime_ns=int(obj.get("ctime_ns", 0)),
        inode=int(obj.get("inode", 0)),
        device=int(obj.get("device", 0)),
    )
    if ntype == "file":
        n.size = int(obj["size"])
        n.links = int(obj.get("links", 1))
        n.content = [bytes.fromhex(c) if isinstance(c, str) else int(c) for c in obj["content"]]
    elif ntype == "dir":
        n.subtree = bytes.fromhex(obj["subtree"])
    elif ntype == "symlink":
        n.target = _get_bytes(obj, "target")
        if n.target is None:
            raise FormatError("symlink node without a target")
    elif ntype in ("chardev", "blockdev"):
        n.rdev = int(obj["rdev"])
    for attr in obj.get("xattrs", []):
        key = _get_bytes(attr, "name")
        if key is None:
            raise FormatError("xattr without a name")
        n.xattrs.append((key, base64.b64decode(attr["value"], validate=True)))
    return n


def encode_tree(nodes: list[Node]) -> bytes:
    """Canonical bytes of a directory. Raises ValueError on duplicate names."""
    ordered = sorted(nodes, key=lambda n: n.name)
    for a, b in itertools.pairwise(ordered):
        if a.name == b.name:
            raise ValueError(f"duplicate name in tree: {a.display_name}")
    return encode_tree_json([node_to_json(n) for n in ordered])


def encode_tree_json(nodes: list[dict[str, Any]]) -> bytes:
    """Canonical bytes of a directory from its nodes' JSON objects, already sorted by raw name."""
    doc = {"nodes": nodes, "v": TREE_VERSION}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_tree_json(data: bytes) -> list[dict[str, Any]]:
    """The nodes of a tree as JSON objects, checked only as far as the envelope (``v``, a node list
    of objects). For readers that compare or copy nodes rather than interpret them (the archiver's
    parent trees); ``decode_tree`` checks every field."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"bad tree: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise FormatError("tree is not an object with a node list")
    if doc.get("v") != TREE_VERSION:
        raise FormatError(f"tree version {doc.get('v')} is not supported")
    nodes: list[dict[str, Any]] = doc["nodes"]
    if not all(isinstance(o, dict) for o in nodes):
        raise FormatError("tree node is not an object")
    return nodes


def decode_tree(data: bytes) -> list[Node]:
    try:
        return [node_from_json(o) for o in decode_tree_json(data)]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"bad tree: {exc}") from exc
