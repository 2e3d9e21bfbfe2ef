"""tiervault.memory.tune_allocator: glibc's mmap threshold is fixed, so chunk-sized buffers freed by
one thread go back to the system instead of staying in a fragmented heap (docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="tune_allocator sets glibc's mmap threshold (mallopt): this platform has no glibc",
)

# After a 16 MiB block is freed, glibc (untuned) raises its mmap threshold to 16 MiB, and the next
# 1 MiB block comes from the heap; tuned, it still gets its own mapping. mallinfo2().hblks counts
# the blocks that have their own mapping.
PROBE = textwrap.dedent(
    """
    import ctypes, json, sys

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "tune":
        from tiervault.memory import tune_allocator
        applied = tune_allocator()
    else:
        applied = None
    big = bytearray(16 << 20)
    del big
    before = libc.mallinfo2().hblks
    block = bytearray(1 << 20)
    print(json.dumps({"applied": applied, "mapped": libc.mallinfo2().hblks - before}))
    """
)


def _probe(mode: str, **env: str) -> dict[str, object]:
    import json

    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_untuned_glibc_serves_a_chunk_from_the_heap_after_a_large_free() -> None:
    assert _probe("plain") == {"applied": None, "mapped": 0}


def test_tuned_a_chunk_gets_its_own_mapping() -> None:
    assert _probe("tune") == {"applied": True, "mapped": 1}


def test_opt_out_and_an_explicit_malloc_setting_are_respected() -> None:
    assert _probe("tune", TIERVAULT_MALLOC_TUNING="0") == {"applied": False, "mapped": 0}
    # the process owner chose a threshold: tiervault leaves it alone (glibc applies theirs)
    assert _probe("tune", MALLOC_MMAP_THRESHOLD_="65536")["applied"] is False


def test_opening_a_vault_leaves_the_allocator_alone(tmp_path: object) -> None:
    """A library imported into someone's service or Function must not change their process's malloc
    settings: ``init``/``open`` do not tune; ``tiervault.tune_allocator()`` is the explicit opt-in."""
    code = textwrap.dedent(
        f"""
        import asyncio, tiervault, tiervault.memory as m
        async def main():
            async with tiervault.init({str(tmp_path)!r} + "/repo", password="pw",
                                      kdf=tiervault.ScryptParams(log_n=10, r=8, p=1)):
                pass
        asyncio.run(main())
        print(m._decided)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_the_command_line_tunes_the_allocator(tmp_path: object) -> None:
    """The CLI owns its process: it fixes the threshold before any work (opt-out as above)."""
    code = textwrap.dedent(
        f"""
        import os, tiervault.cli, tiervault.memory as m
        os.environ["TIERVAULT_PASSWORD"] = "pw"
        rc = tiervault.cli.main(["-r", {str(tmp_path)!r} + "/repo", "init", "--kdf-log-n", "10"])
        print(rc, m._decided)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 [True]"
