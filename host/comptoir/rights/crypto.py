"""Keys of the rights cache: one 32-byte master key in a 0600 file, two derived keys.

- AES-256-GCM seals each row; the associated data is the row's lookup key, so a row's
  ciphertext moved under another key (two people swapped) fails authentication.
- HMAC-SHA256 makes the lookup keys: without the key file, a lookup key cannot be brute-forced
  over the NIR space (about 10^13 values is a small space for an unkeyed hash).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyFileError

KEY_BYTES = 32
NONCE_BYTES = 12
LOOKUP_BYTES = 16  # 128 bits: collisions are out of reach, and a decrypted row is checked too
_AAD_PREFIX = b"comptoir-rights-row-v1:"


def load_or_create_key(path: str | Path, *, create: bool = True) -> bytes:
    """Read a 32-byte key file, creating it on first run when `create` (mode 0600, never
    overwritten; its directory made 0700 if missing). Shared by every store that seals rows
    (rights cache, transactions, billing journal), each deriving its own keys from it.
    Refuses a key file others can read, or one of the wrong size; with `create=False` a missing
    file is refused too. The new key is written to a temporary name, fsync'd and then linked
    into place, so a process killed while creating it never leaves a short key behind (and of
    two processes creating it at once, one key wins and both use it)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise KeyFileError(f"key file {path} is missing")
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
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} is missing") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is readable by others (chmod 600 it)")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"key file {path} is not a {KEY_BYTES}-byte key")
    return key


def _derive(master: bytes, label: bytes) -> bytes:
    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=label).derive(master)


class RowCipher:
    def __init__(self, master: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise KeyFileError("master key must be 32 bytes")
        self._aead = AESGCM(_derive(master, b"comptoir rights aes-256-gcm"))
        self._mac = _derive(master, b"comptoir rights lookup hmac")

    def lookup(self, canonical_identity: bytes) -> bytes:
        return hmac.new(self._mac, b"ben:" + canonical_identity, hashlib.sha256).digest()[
            :LOOKUP_BYTES
        ]

    def family(self, nir: str) -> bytes:
        """Groups the rows of one insured NIR (for sync and erasure of a family)."""
        return hmac.new(self._mac, b"fam:" + nir.encode(), hashlib.sha256).digest()[:LOOKUP_BYTES]

    def credential(self, credential_id: bytes) -> bytes:
        return hmac.new(self._mac, b"cred:" + credential_id, hashlib.sha256).digest()[:LOOKUP_BYTES]

    def key_check(self) -> bytes:
        """Stored in the database: tells a wrong key file from a corrupt row."""
        return hmac.new(self._mac, b"key-check", hashlib.sha256).digest()[:LOOKUP_BYTES]

    def seal(self, lookup: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, _AAD_PREFIX + lookup)

    def open(self, lookup: bytes, blob: bytes) -> bytes:
        """Raises InvalidTag when the row was altered, moved, or sealed with another key."""
        if len(blob) < NONCE_BYTES + 16:
            raise InvalidTag()
        return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _AAD_PREFIX + lookup)
