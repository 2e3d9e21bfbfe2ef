"""Run one command and report its wall time, CPU and peak RSS from ``os.wait4`` (like ``/usr/bin/time -v``).

    python -I -S bench/measure.py RESULT.json COMMAND [ARG ...]

Why a separate, tiny process: on Linux a child's ``ru_maxrss`` can never be lower than the resident
size of the process that forked it (``execve`` folds the old address space's high-water mark into the
new program's figure). Started from ``bench.py`` (tens to hundreds of MB after hashing a corpus), every
step would report at least that much. Started from this stdlib-only interpreter (a few MB), the figure
is the command's own. The command inherits this process's stdin/stdout/stderr, environment and cwd.

Descendants the command does not wait for: this process is a child subreaper (``PR_SET_CHILD_SUBREAPER``),
so a grandchild orphaned by the command's exit is adopted here instead of by init, waited for (at most
``ADOPTED_TIMEOUT`` s, then killed) and counted. restic 0.14 needs this: it exits without reaping the
``rclone serve restic --stdio`` it started, so ``os.wait4`` on restic alone has none of rclone's CPU or
memory. The kernel only folds *waited-for* children into a process's rusage, and as a maximum for
``ru_maxrss``: processes that run side by side (restic and its rclone) would be under-counted.

RESULT.json gets ``{"exit_code", "wall_s", "user_s", "sys_s", "maxrss_bytes"}`` plus ``"main"`` (the
command alone, as ``os.wait4`` reports it), ``"adopted"`` (one entry per adopted descendant), ``"wall_all_s"``
(until the last adopted descendant exited) and ``"subreaper"`` (whether the prctl worked). The totals:
``user_s``/``sys_s`` add the adopted descendants' CPU to the command's; ``maxrss_bytes`` adds their peaks
to the command's (they ran alongside it: an upper bound of the memory in use at once). Without adopted
descendants the totals are exactly ``os.wait4``'s figures for the command. The exit status of this script
is 0 whenever the measurement itself worked (the command's own status is in the JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
ADOPTED_TIMEOUT = 60.0


def _become_subreaper() -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError, ImportError):
        return False


def _children() -> list[int]:
    """PIDs whose parent is this process (from /proc), for the last-resort kill."""
    me, out = os.getpid(), []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == me:
                    out.append(int(entry))
    return out


def _figures(ru: os.struct_rusage) -> dict[str, float | int]:
    return {"user_s": ru.ru_utime, "sys_s": ru.ru_stime, "maxrss_bytes": ru.ru_maxrss * 1024}  # KiB


def _reap_adopted(deadline: float) -> list[dict[str, float | int]]:
    """Wait for every remaining child (orphans adopted by this subreaper) until none is left."""
    adopted: list[dict[str, float | int]] = []
    killed = False
    while True:
        try:
            pid, _status, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return adopted
        if pid:
            adopted.append({"pid": pid, **_figures(ru)})
            continue
        if not killed and time.perf_counter() > deadline:
            for child in _children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            killed = True
        time.sleep(0.005)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    result_path, command = argv[0], argv[1:]
    subreaper = _become_subreaper()
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    main_figures = _figures(ru)
    adopted = _reap_adopted(time.perf_counter() + ADOPTED_TIMEOUT) if subreaper else []
    wall_all = time.perf_counter() - started
    result = {
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "user_s": main_figures["user_s"] + sum(a["user_s"] for a in adopted),
        "sys_s": main_figures["sys_s"] + sum(a["sys_s"] for a in adopted),
        "maxrss_bytes": main_figures["maxrss_bytes"] + sum(a["maxrss_bytes"] for a in adopted),
        "wall_all_s": wall_all,
        "main": main_figures,
        "adopted": adopted,
        "subreaper": subreaper,
    }
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
