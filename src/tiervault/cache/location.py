"""Where the disk tier lives: the default cache directory, and one folder per repository in it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

from tiervault.core.crypto import object_hash

#: the environment variable that names the cache directory
ENV_CACHE_DIR: Final = "TIERVAULT_CACHE_DIR"
#: set in Azure Functions: the cache then goes to the temp dir (the home directory is not writable)
ENV_FUNCTIONS: Final = "FUNCTIONS_WORKER_RUNTIME"


def default_cache_dir() -> Path:
    """``$TIERVAULT_CACHE_DIR``; in Azure Functions (``$FUNCTIONS_WORKER_RUNTIME`` set) the temp dir;
    else ``$XDG_CACHE_HOME/tiervault`` or ``~/.cache/tiervault``."""
    if explicit := os.environ.get(ENV_CACHE_DIR):
        return Path(explicit).expanduser()
    if os.environ.get(ENV_FUNCTIONS):
        return Path(tempfile.gettempdir()) / "tiervault-cache"
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "tiervault"
    return Path.home() / ".cache" / "tiervault"


def cache_key(location: str) -> str:
    """The folder of one repository inside a cache directory: a hash of its address."""
    return object_hash(location.encode("utf-8"))[:32]
