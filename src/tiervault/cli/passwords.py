"""Passwords for the command line: options, password files, environment variables, prompts.

The password: ``--password-file FILE``, else ``TIERVAULT_PASSWORD``, else the file named by
``TIERVAULT_PASSWORD_FILE``, else a prompt when stdin is a terminal (twice for a new repository). A new
password (``key add``, ``key passwd``): ``--new-password-file FILE``, else ``TIERVAULT_NEW_PASSWORD``,
else a prompt (twice). A password file's content is used as bytes, less one trailing newline.

All of this blocks (files, prompts), so it runs before the command's event loop starts.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from tiervault import UsageError

ENV_PASSWORD = "TIERVAULT_PASSWORD"
ENV_PASSWORD_FILE = "TIERVAULT_PASSWORD_FILE"
ENV_NEW_PASSWORD = "TIERVAULT_NEW_PASSWORD"


def stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def read_password_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:  # blocking is fine: this runs before the event loop
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read password file {path!r}: {exc.strerror or exc}") from exc
    for newline in (b"\r\n", b"\n"):
        if data.endswith(newline):
            return data[: -len(newline)]
    return data


def prompt(what: str, *, confirm: bool, hint: str) -> bytes:
    if not stdin_is_tty():
        raise UsageError(f"no {what} given and stdin is not a terminal: {hint}")
    try:
        first = getpass.getpass(f"enter {what}: ")
        if confirm and getpass.getpass(f"enter {what} again: ") != first:
            raise UsageError("the passwords do not match")
    except EOFError:
        raise UsageError(f"no {what} entered") from None
    return first.encode("utf-8")


def password(args: argparse.Namespace, *, confirm: bool = False) -> bytes:
    """The repository's password (``confirm``: a new repository's, asked twice at a prompt)."""
    if args.password_file is not None:
        return read_password_file(args.password_file)
    if env := os.environ.get(ENV_PASSWORD):
        return os.fsencode(env)
    if path := os.environ.get(ENV_PASSWORD_FILE):
        return read_password_file(path)
    what = "password for the new repository" if confirm else "repository password"
    return prompt(what, confirm=confirm, hint=f"set {ENV_PASSWORD} or use --password-file")


def new_password(args: argparse.Namespace) -> bytes:
    """The password a new key slot gets (``--new-password-file``, ``$TIERVAULT_NEW_PASSWORD``, prompt)."""
    if args.new_password_file is not None:
        return read_password_file(args.new_password_file)
    if env := os.environ.get(ENV_NEW_PASSWORD):
        return os.fsencode(env)
    return prompt("new password", confirm=True, hint=f"set {ENV_NEW_PASSWORD} or use --new-password-file")
