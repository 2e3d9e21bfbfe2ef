"""Tree (directory) encoding."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiervault.core.format import FormatError
from tiervault.core.format.tree import (
    NODE_TYPES,
    Node,
    decode_tree,
    encode_tree,
    node_from_json,
    node_to_json,
)


def _valid_name(b: bytes) -> bytes:
    b = b.replace(b"/", b"_").replace(b"\0", b"_")
    return b + b"_" if b in (b".", b"..") else b


# arbitrary bytes (mostly not UTF-8), Latin-1 bytes (never UTF-8 beyond ASCII), and UTF-8 text
any_names = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0xFF), min_size=1, max_size=10).map(
        lambda s: s.encode("latin-1")
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).map(str.encode),
).map(_valid_name)
ids = st.binary(min_size=32, max_size=32)
# every value the decoder accepts, edges included (docs/format.md, "Validity")
times = st.integers(-(2**63), 2**63 - 1)
u64 = st.integers(0, 2**64 - 1)
ugids = st.integers(0, 2**32 - 1)
modes = st.integers(0, 0o7777)
sizes = st.integers(0, 2**63 - 1)
content = st.lists(st.one_of(ids, st.integers(1, 2**63 - 1)), max_size=8)
# xattr names are raw bytes too (UTF-8 or not), without NUL; each name once
xattr_names = st.one_of(
    st.binary(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20).map(lambda s: s.encode("utf-8", "surrogateescape")),
).filter(lambda b: b"\0" not in b)
xattrs = st.lists(st.tuples(xattr_names, st.binary(max_size=40)), max_size=3, unique_by=lambda kv: kv[0])
targets = st.binary(min_size=1, max_size=60).map(lambda b: b.replace(b"\0", b"_"))


@st.composite
def nodes(draw: st.DrawFn, name: st.SearchStrategy[bytes] = any_names) -> Node:
    ntype = draw(st.sampled_from(sorted(NODE_TYPES)))
    n = Node(
        name=draw(name),
        type=ntype,
        mode=draw(modes),
        uid=draw(ugids),
        gid=draw(ugids),
        mtime_ns=draw(times),
        ctime_ns=draw(times),
        inode=draw(u64),
        device=draw(u64),
        xattrs=draw(xattrs),
    )
    if ntype == "file":
        n.size = draw(sizes)
        n.links = draw(u64)
        n.content = draw(content)
    elif ntype == "dir":
        n.subtree = draw(ids)
    elif ntype == "symlink":
        n.target = draw(targets)
    elif ntype in ("chardev", "blockdev"):
        n.rdev = draw(u64)
    return n


def unique_by_name(ns: list[Node]) -> list[Node]:
    seen: dict[bytes, Node] = {}
    for n in ns:
        seen.setdefault(n.name, n)
    return list(seen.values())


node_lists = st.lists(nodes(), max_size=10).map(unique_by_name)


@settings(max_examples=100, deadline=None)
@given(ns=node_lists)
def test_roundtrip(ns: list[Node]) -> None:
    data = encode_tree(ns)
    decoded = decode_tree(data)
    assert decoded == sorted(ns, key=lambda n: n.name)
    assert encode_tree(decoded) == data


@settings(max_examples=100, deadline=None)
@given(ns=node_lists, rnd=st.randoms(use_true_random=False))
def test_encoding_is_independent_of_input_order(ns: list[Node], rnd: object) -> None:
    shuffled = list(ns)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert encode_tree(shuffled) == encode_tree(ns)


def test_encoding_is_canonical_json() -> None:
    n = Node(name=b"b", type="dir", subtree=b"\x01" * 32, mode=0o755)
    m = Node(name=b"a", type="file", size=3, content=[b"\x02" * 32, 5])
    data = encode_tree([n, m])
    doc = json.loads(data)
    assert list(doc) == ["nodes", "v"] and doc["v"] == 1
    assert [x["name"] for x in doc["nodes"]] == ["a", "b"]
    assert doc["nodes"][0]["content"] == ["02" * 32, 5]
    assert json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == data


def test_names_are_sorted_by_raw_bytes() -> None:
    # b"\xff" sorts after every UTF-8 name; "é" (c3 a9) after "z"
    ns = [Node(name=x, type="fifo") for x in (b"\xff", "é".encode(), b"z", b"A")]
    assert [n.name for n in decode_tree(encode_tree(ns))] == [b"A", b"z", "é".encode(), b"\xff"]


def test_non_utf8_names_and_targets_use_b64() -> None:
    n = Node(name=b"caf\xe9", type="symlink", target=b"\xff\xfe/x")
    obj = node_to_json(n)
    assert "name" not in obj and obj["name_b64"] == "Y2Fm6Q=="
    assert "target" not in obj and "target_b64" in obj
    assert node_from_json(obj) == n
    assert decode_tree(encode_tree([n])) == [n]


@settings(max_examples=100, deadline=None)
@given(ns=st.lists(nodes(), min_size=1, max_size=5), data=st.data())
def test_duplicate_names_are_rejected(ns: list[Node], data: st.DataObject) -> None:
    dup = data.draw(nodes(name=st.just(ns[0].name)))
    with pytest.raises(ValueError, match="duplicate"):
        encode_tree([*ns, dup])


def test_incomplete_nodes_are_rejected() -> None:
    with pytest.raises(ValueError):
        encode_tree([Node(name=b"d", type="dir")])
    with pytest.raises(ValueError):
        encode_tree([Node(name=b"l", type="symlink")])


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b"[]",
        b'{"v":1,"nodes":[[]]}',
        b'{"v":1,"nodes":{"a":1}}',
        b'{"v":1,"nodes":[1]}',
        b'{"v":2,"nodes":[]}',
        b'{"v":1}',
        b'{"v":1,"nodes":[{"type":"file"}]}',
        b'{"v":1,"nodes":[{"name":"x","type":"socket","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}',
        b'{"v":1,"nodes":[{"name":"a/b","type":"fifo","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}',
        b'{"v":1,"nodes":[{"name":"..","type":"fifo","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}',
        b'{"v":1,"nodes":[{"name":"","type":"fifo","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}',
        b'{"v":1,"nodes":[{"name_b64":"!!","type":"fifo","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}',
        b'{"v":1,"nodes":[{"name":"f","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}',
        b'{"v":1,"nodes":[{"name":"f","type":"dir","mode":0,"uid":0,"gid":0,"mtime_ns":0,"subtree":"zz"}]}',
        b'{"v":1,"nodes":[{"name":"f","type":"dir","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}',
        b'{"v":1,"nodes":[{"name":"l","type":"symlink","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}',
    ],
)
def test_bad_trees_are_format_errors(doc: bytes) -> None:
    with pytest.raises(FormatError):
        decode_tree(doc)


def test_non_utf8_xattr_name_roundtrips() -> None:
    n = Node(name=b"f", type="fifo", xattrs=[(b"user.caf\xe9", b"\x00\xff"), (b"user.plain", b"v")])
    assert decode_tree(encode_tree([n])) == [n]
