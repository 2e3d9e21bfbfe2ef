"""The golden repositories: tiervault must read format v1 and v2, as committed in tests/fixtures/golden-v1
and tests/fixtures/golden-v2, forever; and golden-v1 upgraded to version 2 must read the same.

The fixtures were written once by ``tests/support/make_golden.py``; never regenerate one to make this
file pass. Every test works on a copy in ``tmp_path``, so the committed bytes are never modified. The
open / list / restore / check tests run on both (``golden``); the damage tests on golden-v1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tiervault
from tiervault.core.crypto import object_hash
from tiervault.core.format.keyfile import version1_bytes
from tiervault.core.format.pack import PRELUDE_SIZE

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "golden-v1"
MANIFEST: dict[str, Any] = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
PASSWORD: str = MANIFEST["password"]
SNAPSHOTS: list[list[dict[str, Any]]] = [s["entries"] for s in MANIFEST["snapshots"]]


def _objects(prefix: str, fixture: Path = FIXTURE) -> list[str]:
    root = fixture / "repo"
    return sorted(p.relative_to(root).as_posix() for p in (root / prefix).rglob("*") if p.is_file())


@dataclass(frozen=True)
class Golden:
    """One golden fixture: its directory, manifest and stored objects."""

    version: int

    @property
    def fixture(self) -> Path:
        return FIXTURES / f"golden-v{self.version}"

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.fixture / "manifest.json").read_text(encoding="utf-8")))

    @property
    def snapshots(self) -> list[list[dict[str, Any]]]:
        return [s["entries"] for s in self.manifest["snapshots"]]

    def objects(self, prefix: str) -> list[str]:
        return _objects(prefix, self.fixture)


GOLDEN = {1: Golden(1), 2: Golden(2)}


@pytest.fixture(params=sorted(GOLDEN), ids=lambda v: f"v{v}")
def golden(request: pytest.FixtureRequest) -> Golden:
    return GOLDEN[request.param]


@pytest.fixture
def golden_repo(golden: Golden, tmp_path: Path) -> Path:
    return copy_repo(tmp_path, golden.fixture)


DATA_PACKS = _objects("data")
META_PACKS = _objects("meta")
INDEX_FILES = _objects("index")
SNAPSHOT_OBJECTS = _objects("snapshots")


def test_fixture_is_complete() -> None:
    assert (FIXTURE / "repo" / "config").is_file()
    assert len(_objects("keys")) == 1
    assert len(SNAPSHOT_OBJECTS) == len(SNAPSHOTS) == 2
    assert DATA_PACKS and META_PACKS and INDEX_FILES
    config = json.loads((FIXTURE / "repo" / "config").read_bytes())
    assert config["version"] == MANIFEST["format_version"] == 1


def copy_repo(tmp_path: Path, fixture: Path = FIXTURE) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(fixture / "repo", dest)
    for p in dest.rglob("*"):  # a checkout may be read-only; the copy is ours to damage
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dest


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(tmp_path)


# ---------------------------------------------------------------------------------------------- restore


def describe_tree(root: Path) -> list[dict[str, Any]]:
    """The manifest's view of a directory tree (see make_golden.describe for the fields)."""
    broot = os.fsencode(root)
    rels = [b""]
    for dirpath, dirnames, filenames in os.walk(broot):
        rel = os.path.relpath(dirpath, broot)
        base = b"" if rel == b"." else rel
        rels += [os.path.join(base, n) if base else n for n in dirnames + filenames]
    out = []
    for rel in sorted(rels):
        full = os.path.join(broot, rel) if rel else broot
        st = os.lstat(full)
        e: dict[str, Any] = {
            "path": rel.decode("utf-8", "backslashreplace") or ".",
            "path_hex": rel.hex(),
            "type": None,
            "mode": None,
            "mtime_ns": st.st_mtime_ns,
            "size": None,
            "sha256": None,
            "target": None,
            "target_hex": None,
            "sparse": False,
            "xattrs": []
            if stat.S_ISLNK(st.st_mode)
            else [
                [os.fsencode(n).hex(), os.getxattr(full, n).hex()]
                for n in sorted(os.listxattr(full))
                if n.startswith("user.")
            ],
        }
        if stat.S_ISDIR(st.st_mode):
            e.update(type="dir", mode=stat.S_IMODE(st.st_mode))
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(full)
            e.update(
                type="symlink", target=target.decode("utf-8", "backslashreplace"), target_hex=target.hex()
            )
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            e.update(
                type="file",
                mode=stat.S_IMODE(st.st_mode),
                size=st.st_size,
                sha256=digest,
                sparse=st.st_blocks * 512 < st.st_size,
            )
        else:
            e["type"] = f"unexpected mode {st.st_mode:o}"
        out.append(e)
    return out


def user_xattrs_supported(directory: Path) -> bool:
    probe = directory / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


def assert_matches_manifest(restored: Path, expected: list[dict[str, Any]]) -> None:
    got = {e["path_hex"]: e for e in describe_tree(restored)}
    want = {e["path_hex"]: e for e in expected}
    assert any(e["xattrs"] for e in expected), "no extended attributes in the manifest"
    if not user_xattrs_supported(restored.parent):  # the restorer skips them where unsupported
        got = {k: {**e, "xattrs": []} for k, e in got.items()}
        want = {k: {**e, "xattrs": []} for k, e in want.items()}
    assert sorted(got) == sorted(want), "restored paths differ from the manifest"
    for key, w in want.items():
        assert got[key] == w, f"{w['path']}: restored {got[key]} != manifest {w}"
    # the manifest itself must contain what the golden repository promises to pin
    assert any(e["sparse"] for e in expected), "no sparse file in the manifest"
    assert any(e["type"] == "symlink" for e in expected)
    assert any(bytes.fromhex(e["path_hex"]) and not _is_utf8(bytes.fromhex(e["path_hex"])) for e in expected)


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_v2_fixture_is_complete() -> None:
    g = GOLDEN[2]
    assert len(g.objects("keys")) == 1
    assert len(g.objects("snapshots")) == len(g.snapshots) == 2
    assert g.objects("data") and g.objects("meta") and g.objects("index")
    config = json.loads((g.fixture / "repo" / "config").read_bytes())
    assert config["version"] == g.manifest["format_version"] == 2
    assert config["write_features"] == ["gc-1"] and config["read_features"] == []
    assert "upgraded_from" not in config  # created as version 2
    # the same source tree and points as golden-v1: only the format differs
    assert g.snapshots == SNAPSHOTS


async def test_check_reads_everything(golden: Golden, golden_repo: Path) -> None:
    async with tiervault.open(golden_repo, password=PASSWORD) as vault:
        assert vault._repo.format_version == golden.version
        result = await vault.check(read_data=True)
    assert result.ok, result.errors
    assert result.snapshots == 2
    assert result.packs == result.packs_read == len(golden.objects("data")) + len(golden.objects("meta"))
    assert not result.warnings


async def test_points_are_listed(golden: Golden, golden_repo: Path) -> None:
    async with tiervault.open(golden_repo, password=PASSWORD) as vault:
        points = await vault.points()
        items = await vault.items()
    assert [p.item for p in points] == [golden.manifest["item"]] * 2
    assert sorted("snapshots/" + p.id for p in points) == golden.objects("snapshots")
    assert points[0].time < points[1].time
    assert points[1].parent == points[0].id
    assert not any(p.partial for p in points)
    assert [i.name for i in items] == [golden.manifest["item"]]


@pytest.mark.parametrize("index", range(len(SNAPSHOTS)))
async def test_restore_reproduces_the_manifest(
    golden: Golden, golden_repo: Path, tmp_path: Path, index: int
) -> None:
    target = tmp_path / "restored"
    async with tiervault.open(golden_repo, password=PASSWORD) as vault:
        point = (await vault.points())[index]
        result = await vault.restore(point, target, verify=True)
    assert result.ok, result.errors
    assert result.stats.files_verified == sum(e["type"] == "file" for e in golden.snapshots[index])
    assert_matches_manifest(target, golden.snapshots[index])


async def test_restore_by_id_prefix_and_latest(golden: Golden, golden_repo: Path, tmp_path: Path) -> None:
    async with tiervault.open(golden_repo, password=PASSWORD) as vault:
        first, _second = await vault.points()
        await vault.restore(first.id[:12], tmp_path / "a", verify=True)
        await vault.restore("latest", tmp_path / "b", verify=True)
    assert_matches_manifest(tmp_path / "a", golden.snapshots[0])
    assert_matches_manifest(tmp_path / "b", golden.snapshots[1])


async def test_golden_v1_upgraded_reads_restores_and_checks(repo: Path, tmp_path: Path) -> None:
    """golden-v1 upgraded to version 2: its one key slot (sealed for the version-1 config) still opens,
    every point restores as the manifest says, check reads everything; a second upgrade is a no-op."""
    v1 = (repo / "config").read_bytes()
    async with tiervault.open(repo, password=PASSWORD) as vault:
        result = await vault.upgrade()
    assert result.upgraded and result.upgraded_from == object_hash(v1)
    config = json.loads((repo / "config").read_bytes())
    assert config["version"] == 2 and config["upgraded_from"] == object_hash(v1)
    assert version1_bytes(config) == v1
    assert not (repo / "config.next").exists()
    async with tiervault.open(repo, password=PASSWORD) as vault:
        assert vault._repo.format_version == 2
        points = await vault.points()
        assert sorted("snapshots/" + p.id for p in points) == SNAPSHOT_OBJECTS
        for i, point in enumerate(points):
            restored = await vault.restore(point, tmp_path / f"restored-{i}", verify=True)
            assert restored.ok, restored.errors
            assert_matches_manifest(tmp_path / f"restored-{i}", SNAPSHOTS[i])
        check = await vault.check(read_data=True)
        assert check.ok, check.errors
        assert check.packs_read == len(DATA_PACKS) + len(META_PACKS)
        assert not (await vault.upgrade()).upgraded


# ---------------------------------------------------------------------------------------------- refusals


async def test_wrong_password(golden_repo: Path) -> None:
    with pytest.raises(tiervault.WrongPasswordError):
        await tiervault.open(golden_repo, password="not-the-golden-password")


async def test_v2_newer_format_version_is_refused_before_a_password(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path, GOLDEN[2].fixture)
    config = repo / "config"
    text = config.read_text(encoding="utf-8")
    assert '"version":2' in text
    config.write_text(text.replace('"version":2', '"version":3'), encoding="utf-8")
    for password in (PASSWORD, "whatever"):
        with pytest.raises(tiervault.UnsupportedFormatError, match="upgrade tiervault"):
            await tiervault.open(repo, password=password)


async def test_v2_modified_config_is_an_integrity_error(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path, GOLDEN[2].fixture)
    config = repo / "config"
    doc = json.loads(config.read_bytes())
    doc["pack_size"] = doc["pack_size"] // 2
    config.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(tiervault.IntegrityError) as info:
        await tiervault.open(repo, password=PASSWORD)
    assert info.value.name == "config"


async def test_newer_format_version_is_refused(repo: Path) -> None:
    config = repo / "config"
    text = config.read_text(encoding="utf-8")
    assert '"version":1' in text
    config.write_text(text.replace('"version":1', '"version":2'), encoding="utf-8")
    with pytest.raises(tiervault.UnsupportedFormatError):
        await tiervault.open(repo, password=PASSWORD)
    # refused before any password is tried
    with pytest.raises(tiervault.UnsupportedFormatError):
        await tiervault.open(repo, password="whatever")


async def test_modified_config_is_an_integrity_error(repo: Path) -> None:
    config = repo / "config"
    doc = json.loads(config.read_bytes())
    doc["pack_size"] = doc["pack_size"] // 2
    config.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(tiervault.IntegrityError) as info:
        await tiervault.open(repo, password=PASSWORD)
    assert info.value.name == "config"


# ---------------------------------------------------------------------------------------------- damage


def _damage_offset(name: str, size: int) -> int:
    if name.startswith(("data/", "meta/")):
        # inside the first blob, which the recovery point that wrote the pack needs: a restore reads
        # blobs by range, so damage to the pack's header alone is for check to find
        return PRELUDE_SIZE + 5
    return size // 2


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, id=n.split("/")[0] + "-" + n.rsplit("/", 1)[-1][:8])
        for n in DATA_PACKS + META_PACKS + INDEX_FILES + SNAPSHOT_OBJECTS
    ],
)
async def test_one_flipped_byte_is_found_and_named(repo: Path, tmp_path: Path, name: str) -> None:
    """(a) a data pack, (b) a snapshot, (c) an index file, (d) a meta pack, each damaged by one byte:
    every operation that needs the object fails with an IntegrityError naming it, every other
    operation still gives exactly the right result, and check reports the object."""
    async with tiervault.open(repo, password=PASSWORD) as vault:
        point_ids = [p.id for p in await vault.points()]
    path = repo / name
    flip_byte(path, _damage_offset(name, path.stat().st_size))

    async with tiervault.open(repo, password=PASSWORD) as vault:  # a damaged index does not stop open
        if name.startswith("snapshots/"):  # left out of the listing (with a warning), the others stay
            assert [p.id for p in await vault.points()] == [p for p in point_ids if p != name.split("/")[1]]
        else:
            assert [p.id for p in await vault.points()] == point_ids

        failed = 0
        for i, pid in enumerate(point_ids):
            target = tmp_path / f"restore-{i}"
            try:
                result = await vault.restore(pid, target, verify=True)
            except tiervault.IntegrityError as exc:
                assert exc.name == name, exc
                failed += 1
            else:
                assert result.ok, result.errors
                assert_matches_manifest(target, SNAPSHOTS[i])
        assert failed >= 1, f"no restore noticed the damage to {name}"

        result = await vault.check(read_data=True)
    assert not result.ok
    assert name in {e["object"] for e in result.errors}, result.errors


async def test_damaged_pack_header_is_found_by_check(repo: Path) -> None:
    name = max(DATA_PACKS, key=lambda n: (repo / n).stat().st_size)
    path = repo / name
    flip_byte(path, path.stat().st_size - 12)  # the last byte of the sealed header's tag
    async with tiervault.open(repo, password=PASSWORD) as vault:
        result = await vault.check(read_data=True)
        quick = await vault.check()  # without read_data, data packs are not read
    assert [e["object"] for e in result.errors] == [name]
    assert quick.ok


async def test_missing_data_pack(repo: Path, tmp_path: Path) -> None:
    name = DATA_PACKS[0]
    (repo / name).unlink()
    async with tiervault.open(repo, password=PASSWORD) as vault:
        result = await vault.check(read_data=True)
        failed = 0
        for i, point in enumerate(await vault.points()):
            try:
                await vault.restore(point, tmp_path / f"r{i}")
            except tiervault.TiervaultError:
                failed += 1
    assert name in {e["object"] for e in result.errors}
    assert failed >= 1
