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


def load_or_create_key(path: str | Path) -> bytes:
    """Read the master key, creating it (mode 0600, never overwritten) on first run.
    Refuses a key file others can read, or one of the wrong size."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"key file {path} is readable by others (chmod 600 it)") from None
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"key file {path} is not a {KEY_BYTES}-byte key") from None
        return key
    key = os.urandom(KEY_BYTES)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
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
