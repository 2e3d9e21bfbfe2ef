"""Run one command and report its wall time, CPU and peak RSS from ``os.wait4`` (like ``/usr/bin/time -v``).

    python -I -S bench/measure.py RESULT.json COMMAND [ARG ...]

Why a separate, tiny process: on Linux a child's ``ru_maxrss`` can never be lower than the resident
size of the process that forked it (``execve`` folds the old address space's high-water mark into the
new program's figure). Started from ``bench.py`` (tens to hundreds of MB after hashing a corpus), every
step would report at least that much. Started from this stdlib-only interpreter (a few MB), the figure
is the command's own. The command inherits this process's stdin/stdout/stderr, environment and cwd.

RESULT.json gets ``{"exit_code", "wall_s", "user_s", "sys_s", "maxrss_bytes"}``; the exit status of this
script is 0 whenever the measurement itself worked (the command's own status is in the JSON).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    result_path, command = argv[0], argv[1:]
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    result = {
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "maxrss_bytes": ru.ru_maxrss * 1024,  # KiB on Linux
    }
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
