"""Key files: 32 random bytes each, mode 0600, owned by the daemon's user.

Every store that seals rows (rights cache, transactions, billing journal) reads its master key
here and derives its own keys from it (`sealing.derive_key`); the verifier's pepper is read here
too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import KeyFileError

KEY_BYTES = 32


def load_or_create_key(path: str | Path, *, create: bool = True) -> bytes:
    """Read a 32-byte key file, creating it on first run when `create` (mode 0600, never
    overwritten; its directory made 0700 if missing). Refuses a key file others can read, one
    owned by another user, or one of the wrong size; with `create=False` a missing file is
    refused too. The new key is written to a temporary name, fsync'd and then linked into
    place, so a process killed while creating it never leaves a short key behind (and of two
    processes creating it at once, one key wins and both use it)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise KeyFileError(f"key file {path} is missing")
        _create(path)
    check_private(path, "key file")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"key file {path} is not a {KEY_BYTES}-byte key")
    return key


def check_private(path: Path, what: str) -> os.stat_result:
    """A secret file (key, pepper, password) as it must be: there, ours, and readable by us
    only. Raises KeyFileError naming `what` and the file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{what} {path} is missing") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{what} {path} is readable by others (chmod 600 it)")
    if info.st_uid != os.geteuid():
        raise KeyFileError(f"{what} {path} belongs to another user (uid {info.st_uid})")
    return info


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process created it meanwhile
        except FileExistsError:
            pass
        else:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        tmp.unlink(missing_ok=True)
