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

# the ranges decode_tree accepts (docs/format.md, "Validity")
MODE_BITS = 0o7777  # permission bits only: rwx, setuid, setgid, sticky
ID_MAX = (1 << 32) - 1  # uid, gid: uid_t and gid_t are 32 bits
U64_MAX = (1 << 64) - 1  # inode, device, links, rdev
SIZE_MAX = (1 << 63) - 1  # size, hole lengths: off_t
TIME_MIN, TIME_MAX = -(1 << 63), (1 << 63) - 1  # mtime_ns, ctime_ns: int64 ns

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


def _get_bytes(obj: dict[str, Any], key: str, what: str) -> bytes | None:
    """A byte-string field stored as ``key`` (UTF-8 text) or ``key_b64`` (base64 of bytes that are
    not UTF-8); None when neither is present. Exactly one form, and the canonical one, is allowed."""
    text = obj.get(key)
    b64 = obj.get(key + "_b64")
    if text is not None:
        if b64 is not None:
            raise FormatError(f"{what} has both {key!r} and {key + '_b64'!r}")
        if type(text) is not str:
            raise FormatError(f"{what}: {key!r} is not a string")
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"{what}: {key!r} is not valid Unicode (a lone surrogate)") from None
    if b64 is None:
        return None
    if type(b64) is not str:
        raise FormatError(f"{what}: {key + '_b64'!r} is not a string")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise FormatError(f"{what}: {key + '_b64'!r} is not base64") from None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    raise FormatError(f"{what}: {key + '_b64'!r} holds UTF-8, which is stored as {key!r}")


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


def _check_name(name: bytes | None, what: str) -> bytes:
    if not name or b"/" in name or b"\0" in name or name in (b".", b".."):
        raise FormatError(f"{what}: bad name {name!r:.80}" if name is not None else f"{what} without a name")
    return name


def json_name(obj: dict[str, Any]) -> bytes:
    """The raw name of a node's JSON object (``name``, or ``name_b64`` when it is not UTF-8)."""
    return _check_name(_get_bytes(obj, "name", "tree node"), "tree node")


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


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(obj: dict[str, Any], key: str, lo: int, hi: int, default: int | None, what: str) -> int:
    """An integer field in [lo, hi] (a bool is not an integer); ``default`` when absent, if any."""
    v = obj.get(key, default)
    if v is None:
        raise FormatError(f"{what}: no {key!r}")
    if type(v) is not int:
        raise FormatError(f"{what}: {key!r} is not an integer: {_short(v)}")
    if not lo <= v <= hi:
        raise FormatError(f"{what}: {key!r} = {_short(v)} is out of range [{lo}, {hi}]")
    return v


def _what(name: bytes) -> str:
    return f"tree node {name!r:.80}"


def _chunk_id(v: Any, name: bytes) -> bytes:
    if type(v) is str and len(v) == 64:
        try:
            raw = bytes.fromhex(v)
        except ValueError:
            pass
        else:
            if len(raw) == 32:  # fromhex skips whitespace
                return raw
    raise FormatError(f"{_what(name)}: 'subtree' is not an id of 64 hex digits: {_short(v)}")


def _content(v: Any, name: bytes) -> list[ContentItem]:
    if type(v) is not list:
        raise FormatError(f"{_what(name)}: 'content' is not a list")
    out: list[ContentItem] = []
    fromhex = bytes.fromhex
    for c in v:
        if type(c) is str and len(c) == 64:
            try:
                raw = fromhex(c)
            except ValueError:
                raw = b""
            if len(raw) == 32:
                out.append(raw)
                continue
        elif type(c) is int and 0 < c <= SIZE_MAX:
            out.append(c)
            continue
        raise FormatError(
            f"{_what(name)}: content item {_short(c)} is neither a chunk id (64 hex digits) "
            f"nor a hole length in [1, {SIZE_MAX}]"
        )
    return out


def _xattrs(v: Any, what: str) -> list[tuple[bytes, bytes]]:
    if type(v) is not list:
        raise FormatError(f"{what}: 'xattrs' is not a list")
    out: list[tuple[bytes, bytes]] = []
    for attr in v:
        if type(attr) is not dict:
            raise FormatError(f"{what}: xattr is not an object")
        key = _get_bytes(attr, "name", f"{what}: xattr")
        if not key or b"\0" in key:
            raise FormatError(f"{what}: xattr without a name" if key is None else f"{what}: bad xattr name")
        value = attr.get("value")
        if type(value) is not str:
            raise FormatError(f"{what}: xattr {key!r:.60} has no string 'value'")
        try:
            out.append((key, base64.b64decode(value, validate=True)))
        except ValueError:
            raise FormatError(f"{what}: xattr {key!r:.60}: 'value' is not base64") from None
    if len({k for k, _ in out}) != len(out):
        raise FormatError(f"{what}: an xattr name appears twice")
    return out


def node_from_json(obj: dict[str, Any]) -> Node:
    """A node from its JSON object, every field checked (docs/format.md, "Validity"); FormatError
    for anything a writer of this format cannot have produced."""
    if type(obj) is not dict:
        raise FormatError("tree node is not an object")
    name = json_name(obj)
    get = obj.get
    ntype = get("type")
    mode, uid, gid, mtime, ctime = get("mode"), get("uid"), get("gid"), get("mtime_ns"), get("ctime_ns", 0)
    inode, device = get("inode", 0), get("device", 0)
    # one test for the common case; the slow path below says which field is wrong
    if not (
        type(ntype) is str
        and ntype in NODE_TYPES
        and type(mode) is int
        and 0 <= mode <= MODE_BITS
        and type(uid) is int
        and 0 <= uid <= ID_MAX
        and type(gid) is int
        and 0 <= gid <= ID_MAX
        and type(mtime) is int
        and TIME_MIN <= mtime <= TIME_MAX
        and type(ctime) is int
        and TIME_MIN <= ctime <= TIME_MAX
        and type(inode) is int
        and 0 <= inode <= U64_MAX
        and type(device) is int
        and 0 <= device <= U64_MAX
    ):
        what = _what(name)
        if type(ntype) is not str or ntype not in NODE_TYPES:
            raise FormatError(f"{what}: unknown type {_short(ntype)}")
        _int(obj, "mode", 0, MODE_BITS, None, what)
        for key, default in (("uid", None), ("gid", None)):
            _int(obj, key, 0, ID_MAX, default, what)
        for key, default in (("mtime_ns", None), ("ctime_ns", 0)):
            _int(obj, key, TIME_MIN, TIME_MAX, default, what)
        for key in ("inode", "device"):
            _int(obj, key, 0, U64_MAX, 0, what)
        raise FormatError(f"{what}: bad field")  # not reached: one of the above fails
    n = Node(name, ntype, mode, uid, gid, mtime, ctime, inode, device)
    if ntype == "file":
        size: Any = get("size")
        links: Any = get("links", 1)
        if not (type(size) is int and 0 <= size <= SIZE_MAX and type(links) is int and 0 <= links <= U64_MAX):
            _int(obj, "size", 0, SIZE_MAX, None, _what(name))
            _int(obj, "links", 0, U64_MAX, 1, _what(name))
        n.size, n.links = size, links
        n.content = _content(get("content"), name)
    elif ntype == "dir":
        n.subtree = _chunk_id(get("subtree"), name)
    elif ntype == "symlink":
        n.target = target = _get_bytes(obj, "target", _what(name))
        if not target or b"\0" in target:
            problem = "symlink without a target" if target is None else f"bad target {target!r:.80}"
            raise FormatError(f"{_what(name)}: {problem}")
    elif ntype != "fifo":  # chardev, blockdev
        n.rdev = _int(obj, "rdev", 0, U64_MAX, None, _what(name))
    xattrs = get("xattrs")
    if xattrs is not None:
        n.xattrs = _xattrs(xattrs, _what(name))
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


def _nested_deeper(data: bytes, limit: int) -> bool:
    """Do arrays and objects nest more than ``limit`` deep in this JSON? (A tree nests 4 deep.)"""
    depth, in_string, escaped = 0, False, False
    for b in data:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif b in (0x5D, 0x7D):
            depth -= 1
    return False


def decode_tree_json(data: bytes) -> list[dict[str, Any]]:
    """The nodes of a tree as JSON objects, checked only as far as the envelope (``v``, a node list
    of objects). For readers that compare or copy nodes rather than interpret them (the archiver's
    parent trees); ``decode_tree`` checks every field."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"bad tree: {exc}") from exc
    except RecursionError as exc:
        if not _nested_deeper(data, 16):
            raise  # the caller's own stack is deep: not the tree's fault
        raise FormatError("bad tree: JSON nested too deeply") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise FormatError("tree is not an object with a node list")
    if doc.get("v") != TREE_VERSION:
        raise FormatError(f"tree version {doc.get('v')} is not supported")
    nodes: list[dict[str, Any]] = doc["nodes"]
    if not all(isinstance(o, dict) for o in nodes):
        raise FormatError("tree node is not an object")
    return nodes


def decode_tree(data: bytes) -> list[Node]:
    """A tree's nodes, every field checked, and the names strictly increasing by raw bytes (sorted,
    no duplicates). Anything else is a FormatError, whatever the bytes."""
    return nodes_from_json(decode_tree_json(data))


def nodes_from_json(objs: list[dict[str, Any]]) -> list[Node]:
    """``decode_tree`` after the envelope: the nodes of ``decode_tree_json``'s objects, checked by the
    same rules (for a reader that keeps the objects, such as the archiver with its parent trees)."""
    nodes = [node_from_json(o) for o in objs]
    for i in range(1, len(nodes)):
        if nodes[i - 1].name >= nodes[i].name:
            a, b = nodes[i - 1].display_name, nodes[i].display_name
            if a == b:
                raise FormatError(f"duplicate name in tree: {a!r}")
            raise FormatError(f"tree names are not sorted by raw bytes: {a!r} before {b!r}")
    return nodes
