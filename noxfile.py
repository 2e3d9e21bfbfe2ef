"""Sessions: tests, lint, typecheck, demo, bench. ``python3 -m nox -s tests`` is what CI runs."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = "3.11"


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The whole test suite in a fresh virtualenv under .nox/ (installs everything it needs)."""
    venv = _venv(session, "tests", ".[test]")
    # Azurite 3.37.0 on Node 22, from the npm registry into .cache/azurite (git-ignored; skipped when
    # already there). Needs npm; TIERVAULT_TEST_AZURITE=0 skips the Azure tests and this step.
    if os.environ.get("TIERVAULT_TEST_AZURITE", "").strip() != "0":
        session.run(f"{venv}/bin/python", "tests/support/azurite.py", "install", external=True)
    # pytest exits 5 when it collected no test: nox fails on any non-zero exit, so that cannot pass.
    session.run(f"{venv}/bin/python", "-m", "pytest", *(session.posargs or ["-q"]), external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    venv = _venv(session, "lint", ".[lint]")
    session.run(f"{venv}/bin/ruff", "check", "src", "tests", "samples", "bench", "noxfile.py", external=True)
    session.run(f"{venv}/bin/ruff", "format", "--check", "src", "tests", "samples", "bench", external=True)
    session.run(f"{venv}/bin/lint-imports", external=True)


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    venv = _venv(session, "typecheck", ".[typecheck]")
    session.run(f"{venv}/bin/mypy", "--strict", "src/tiervault", external=True)


@nox.session(python=False)
def demo(session: nox.Session) -> None:
    """The main job on the embedded default: a local repository in a temp dir (samples/demo.py)."""
    venv = _venv(session, "demo", ".")
    session.run(f"{venv}/bin/python", "samples/demo.py", *session.posargs, external=True)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against restic, rclone and borg (bench/README.md); options after --."""
    venv = _venv(session, "bench", ".[bench]")
    session.run(f"{venv}/bin/python", "bench/bench.py", *session.posargs, external=True)


def _venv(session: nox.Session, name: str, spec: str) -> str:
    """A virtualenv made with the running interpreter (no uv, no other Python needed)."""
    import sys

    path = os.path.join(".nox", name)
    if not os.path.exists(os.path.join(path, "bin", "python")):
        session.run(sys.executable, "-m", "venv", path, external=True)
        session.run(f"{path}/bin/python", "-m", "pip", "install", "-q", "--upgrade", "pip", external=True)
    session.run(f"{path}/bin/python", "-m", "pip", "install", "-q", "-e", spec, external=True)
    return path
