"""What ``decode_tree`` refuses (docs/format.md, "Trees", "Validity"): a tree is a crafted object as much as
a damaged one, since every host holding the key can write one. Anything that is not a tree this format's
writer could have produced is a ``FormatError`` (an ``IntegrityError`` naming the pack at the repository
level), never another exception: no ValueError from a NUL byte, no OverflowError from a huge mode."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiervault.core.format import FormatError
from tiervault.core.format.tree import Node, decode_tree, encode_tree, node_from_json, node_to_json

from .test_tree import node_lists

CID = "ab" * 32


def doc(*nodes: dict[str, Any]) -> bytes:
    """A tree of these node objects in this order (not sorted, not checked)."""
    return json.dumps({"nodes": list(nodes), "v": 1}, sort_keys=True, separators=(",", ":")).encode()


def obj(name: str | None = "n", ntype: str = "fifo", **fields: Any) -> dict[str, Any]:
    """A valid node object of ``ntype``, with ``fields`` replacing (or, as None, removing) fields."""
    out: dict[str, Any] = {
        "name": name,
        "type": ntype,
        "mode": 0o644,
        "uid": 1000,
        "gid": 1000,
        "mtime_ns": 1_700_000_000_000_000_000,
        "ctime_ns": 1_700_000_000_000_000_000,
        "inode": 12,
        "device": 2049,
    }
    out.update(
        {
            "file": {"size": 6, "links": 1, "content": [CID]},
            "dir": {"subtree": CID},
            "symlink": {"target": "elsewhere"},
            "chardev": {"rdev": 5},
            "blockdev": {"rdev": 5},
            "fifo": {},
        }[ntype]
    )
    for k, v in {"name": name, **fields}.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@pytest.mark.parametrize("ntype", ["file", "dir", "symlink", "fifo", "chardev", "blockdev"])
def test_the_valid_base_nodes_decode(ntype: str) -> None:
    (n,) = decode_tree(doc(obj(ntype=ntype)))
    assert n.type == ntype and node_to_json(n) == obj(ntype=ntype)


def test_duplicate_names_are_refused() -> None:
    """Defect 1: a symlink ``l`` and a directory ``l`` in one tree (the restore escape)."""
    tree = doc(obj("l", "symlink", target="/outside"), obj("l", "dir"))
    with pytest.raises(FormatError, match="duplicate name in tree: 'l'"):
        decode_tree(tree)
    # the same name in its two spellings is the same name
    with pytest.raises(FormatError, match="duplicate"):
        decode_tree(doc(obj("a"), obj("a")))


@pytest.mark.parametrize(
    "names",
    [
        ["b", "a"],
        ["z", "A"],
        # by code point "\uffff" < "\U00010000" and by UTF-8 bytes too; a b64 name (0xff) sorts last
        [{"name_b64": "/w=="}, "z"],
        ["a", "c", "b"],
    ],
)
def test_names_not_sorted_by_raw_bytes_are_refused(names: list[Any]) -> None:
    nodes = [obj(n) if isinstance(n, str) else obj(**{"name": None, **n}) for n in names]
    with pytest.raises(FormatError, match="not sorted by raw bytes"):
        decode_tree(doc(*nodes))


BAD_FIELDS: list[tuple[str, dict[str, Any]]] = [
    # names
    ("fifo", {"name": "a\x00b"}),
    ("fifo", {"name": "\x00"}),
    ("fifo", {"name": 7}),
    ("fifo", {"name": ["a"]}),
    ("fifo", {"name": None, "name_b64": "YQ=="}),  # UTF-8 "a" must be stored as "name"
    ("fifo", {"name": None, "name_b64": "/wA="}),  # b"\xff\x00": NUL
    ("fifo", {"name": None, "name_b64": 5}),
    ("fifo", {"name_b64": "/w=="}),  # both spellings
    ("fifo", {"name": "."}),
    ("fifo", {"name": "x/y"}),
    # the type
    ("fifo", {"type": "socket"}),
    ("fifo", {"type": 1}),
    ("fifo", {"type": ["file"]}),
    ("fifo", {"type": None}),
    # the fields of every node
    ("fifo", {"mode": 2**40}),
    ("fifo", {"mode": 0o10000}),
    ("fifo", {"mode": 0o40755}),  # the file type is not part of the mode
    ("fifo", {"mode": -1}),
    ("fifo", {"mode": True}),
    ("fifo", {"mode": 0.0}),
    ("fifo", {"mode": "644"}),
    ("fifo", {"mode": None}),
    ("fifo", {"uid": -1}),
    ("fifo", {"uid": 2**32}),
    ("fifo", {"gid": 2**70}),
    ("fifo", {"gid": False}),
    ("fifo", {"uid": None}),
    ("fifo", {"mtime_ns": 2**63}),
    ("fifo", {"mtime_ns": -(2**63) - 1}),
    ("fifo", {"mtime_ns": 1.5}),
    ("fifo", {"mtime_ns": None}),
    ("fifo", {"ctime_ns": 2**64}),
    ("fifo", {"ctime_ns": "0"}),
    ("fifo", {"inode": -1}),
    ("fifo", {"inode": 2**64}),
    ("fifo", {"device": -5}),
    ("fifo", {"device": 2**64}),
    ("fifo", {"device": True}),
    # files
    ("file", {"size": -1}),
    ("file", {"size": 2**63}),
    ("file", {"size": 6.0}),
    ("file", {"size": None}),
    ("file", {"links": -1}),
    ("file", {"links": 2**64}),
    ("file", {"links": True}),
    ("file", {"content": None}),
    ("file", {"content": CID}),
    ("file", {"content": {"0": CID}}),
    ("file", {"content": ["zz" * 32]}),
    ("file", {"content": ["ab" * 31]}),
    ("file", {"content": ["ab" * 33]}),
    ("file", {"content": ["ab " * 21 + "a"]}),  # 64 characters, whitespace inside
    ("file", {"content": [0]}),
    ("file", {"content": [-4096]}),
    ("file", {"content": [2**63]}),
    ("file", {"content": [True]}),
    ("file", {"content": [4096.0]}),
    ("file", {"content": [None]}),
    ("file", {"content": [[CID]]}),
    # directories
    ("dir", {"subtree": None}),
    ("dir", {"subtree": "ab" * 31}),
    ("dir", {"subtree": "xy" * 32}),
    ("dir", {"subtree": 5}),
    ("dir", {"subtree": [CID]}),
    # symlinks
    ("symlink", {"target": None}),
    ("symlink", {"target": ""}),
    ("symlink", {"target": "a\x00b"}),
    ("symlink", {"target": 1}),
    ("symlink", {"target": None, "target_b64": "!!"}),
    ("symlink", {"target": None, "target_b64": ""}),
    ("symlink", {"target_b64": "/w=="}),
    # devices
    ("chardev", {"rdev": None}),
    ("chardev", {"rdev": -1}),
    ("blockdev", {"rdev": 2**64}),
    ("blockdev", {"rdev": "5"}),
    # xattrs
    ("fifo", {"xattrs": {"name": "user.x", "value": ""}}),
    ("fifo", {"xattrs": ["user.x"]}),
    ("fifo", {"xattrs": [{"value": "AA=="}]}),
    ("fifo", {"xattrs": [{"name": "", "value": "AA=="}]}),
    ("fifo", {"xattrs": [{"name": "user.\x00x", "value": "AA=="}]}),
    ("fifo", {"xattrs": [{"name": 3, "value": "AA=="}]}),
    ("fifo", {"xattrs": [{"name": "user.x"}]}),
    ("fifo", {"xattrs": [{"name": "user.x", "value": 0}]}),
    ("fifo", {"xattrs": [{"name": "user.x", "value": "!!"}]}),
    ("fifo", {"xattrs": [{"name": "user.x", "value": ""}, {"name": "user.x", "value": "AA=="}]}),
]


@pytest.mark.parametrize(("ntype", "fields"), BAD_FIELDS, ids=[repr(f)[:60] for _, f in BAD_FIELDS])
def test_bad_fields_are_format_errors(ntype: str, fields: dict[str, Any]) -> None:
    """Defect 8: every decoded field is checked, and the error names the node and the field."""
    with pytest.raises(FormatError, match=r"tree node|bad tree"):
        decode_tree(doc(obj(ntype=ntype, **fields)))


def test_a_lone_surrogate_name_is_a_format_error() -> None:
    tree = doc(obj()).replace(b'"name":"n"', b'"name":"\\ud800"')
    with pytest.raises(FormatError, match="surrogate"):
        decode_tree(tree)


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"nodes":' + b"[" * 100_000, b"1" * 5000])
def test_pathological_json_is_a_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_tree(data)


def test_edge_values_are_accepted() -> None:
    edge = obj(
        "f",
        "file",
        mode=0o7777,
        uid=2**32 - 1,
        gid=0,
        mtime_ns=-(2**63),
        ctime_ns=2**63 - 1,
        inode=2**64 - 1,
        device=0,
        size=2**63 - 1,
        links=0,
        content=[1, CID, 2**63 - 1],
        xattrs=[{"name_b64": "/w==", "value": ""}],
    )
    (n,) = decode_tree(doc(edge))
    assert n.content == [1, bytes.fromhex(CID), 2**63 - 1] and n.xattrs == [(b"\xff", b"")]
    assert node_to_json(n) == edge


def test_unknown_fields_are_ignored() -> None:
    """docs/format.md, "Format changes": nodes may gain optional fields within version 1."""
    assert decode_tree(doc(obj(future={"x": [1]})))[0] == node_from_json(obj())


# ---------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    *obj("x", "file"),
    "name_b64",
    "subtree",
    "target",
    "target_b64",
    "rdev",
    "xattrs",
]


def _decodes_or_format_error(data: bytes) -> list[Node] | None:
    try:
        nodes = decode_tree(data)
    except FormatError:
        return None
    # what decodes is a valid tree: it encodes back to a tree that decodes to the same nodes
    assert decode_tree(encode_tree(nodes)) == nodes
    for n in nodes:
        assert n.name and b"\0" not in n.name and b"/" not in n.name
        assert 0 <= n.mode <= 0o7777 and 0 <= n.uid < 2**32 and 0 <= n.gid < 2**32
        assert all(type(v) is int and 0 <= v < 2**64 for v in (n.inode, n.device, n.links, n.rdev, n.size))
        assert all((isinstance(c, bytes) and len(c) == 32) or 0 < c < 2**63 for c in n.content)
        assert n.type != "symlink" or (n.target and b"\0" not in n.target)
    return nodes


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_fuzzed_bytes_raise_only_format_errors(data: bytes) -> None:
    _decodes_or_format_error(data)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_fuzzed_documents_raise_only_format_errors(value: Any) -> None:
    _decodes_or_format_error(json.dumps({"nodes": value, "v": 1}).encode())
    _decodes_or_format_error(json.dumps({"nodes": [value], "v": 1}).encode())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ntype=st.sampled_from(["file", "dir", "symlink", "fifo", "chardev", "blockdev"]),
    changes=st.dictionaries(st.sampled_from(FIELDS), json_values | st.just(None), min_size=1, max_size=3),
    xattr=st.dictionaries(st.sampled_from(["name", "name_b64", "value"]), json_values, max_size=3),
)
def test_mutated_nodes_raise_only_format_errors(
    ntype: str, changes: dict[str, Any], xattr: dict[str, Any]
) -> None:
    """A valid node with up to three fields removed or replaced by any JSON value (and a fuzzed
    xattr): it decodes to a valid node, or it is a FormatError."""
    node = obj(ntype=ntype, **changes)
    _decodes_or_format_error(doc(node))
    _decodes_or_format_error(doc({**obj(ntype=ntype), "xattrs": [xattr]}))


@settings(max_examples=100, deadline=None)
@given(ns=node_lists, rnd=st.randoms(use_true_random=False))
def test_any_order_but_the_sorted_one_is_refused(ns: list[Node], rnd: Any) -> None:
    objs = [node_to_json(n) for n in sorted(ns, key=lambda n: n.name)]
    shuffled = list(objs)
    rnd.shuffle(shuffled)
    if shuffled == objs:
        assert decode_tree(doc(*shuffled)) == sorted(ns, key=lambda n: n.name)
    else:
        with pytest.raises(FormatError, match="not sorted"):
            decode_tree(doc(*shuffled))


def test_a_deep_caller_stack_is_not_blamed_on_the_tree() -> None:
    """json.loads raises RecursionError when the *caller* is deep (a recursive walk): that is not a
    damaged tree, and must not be reported as one; only a document that nests deeply is."""
    data = encode_tree([Node(name=b"a", type="dir", subtree=b"\x01" * 32, xattrs=[(b"user.x", b"")])])
    outcomes: set[str] = set()

    def at_depth(n: int) -> None:
        if n > 0:
            at_depth(n - 1)
            return
        try:
            decode_tree(data)
            outcomes.add("decoded")
        except RecursionError:
            outcomes.add("RecursionError")
        except FormatError:
            outcomes.add("FormatError")

    limit = sys.getrecursionlimit()
    for depth in range(limit - 60, limit):
        try:
            at_depth(depth)
        except RecursionError:
            outcomes.add("too deep to call")
    assert "decoded" in outcomes and "RecursionError" in outcomes, outcomes
    assert "FormatError" not in outcomes
