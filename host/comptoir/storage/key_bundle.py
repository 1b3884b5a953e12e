"""A passphrase-wrapped bundle of key files: how the installer carries the keys a counter needs
(billing, transactions, rights keys, the verifier's pepper) from the first counter PC to the
others (`comptoir keys export/import`, docs/operations.md §8).

    MAGIC (8) | version (1) | log2 n (1) | r (1) | p (1) | salt (16) | nonce (12) | sealed

The key is scrypt(passphrase, salt, n, r, p), 32 bytes; `sealed` is AES-256-GCM over a JSON
object {name: base64 of the file}, the header (everything before it) as associated data: a
changed parameter or a cut file does not open, and neither does a wrong passphrase.
"""

from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import StorageError

MAGIC = b"CPTRKEYS"
VERSION = 1
LOG2_N, R, P = 15, 8, 1  # scrypt: 32 MiB, about 0.1 s per try
SALT_BYTES, NONCE_BYTES = 16, 12
_HEADER = len(MAGIC) + 4 + SALT_BYTES + NONCE_BYTES
MIN_PASSPHRASE = 12


class BundleError(StorageError):
    """Not a key bundle, a damaged one, or the wrong passphrase."""


def _key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    if not 10 <= log2_n <= 22 or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise BundleError("key bundle: unreasonable scrypt parameters (not a bundle of ours?)")
    return Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(passphrase.encode())


def seal_bundle(files: dict[str, bytes], passphrase: str, *, log2_n: int = LOG2_N) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise BundleError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    header = MAGIC + bytes((VERSION, log2_n, R, P)) + salt + nonce
    plain = json.dumps({name: base64.b64encode(data).decode()
                        for name, data in sorted(files.items())}).encode()
    return header + AESGCM(_key(passphrase, salt, log2_n, R, P)).encrypt(nonce, plain, header)


def open_bundle(blob: bytes, passphrase: str) -> dict[str, bytes]:
    """The bundle's files; BundleError for anything else than the bundle sealed with this
    passphrase (which of wrong passphrase and damage cannot be told apart: both are said)."""
    if len(blob) < _HEADER + 16 or not blob.startswith(MAGIC):
        raise BundleError("not a Comptoir key bundle")
    if blob[len(MAGIC)] != VERSION:
        raise BundleError(f"key bundle version {blob[len(MAGIC)]}, this Comptoir reads "
                          f"{VERSION}")
    log2_n, r, p = blob[len(MAGIC) + 1: len(MAGIC) + 4]
    salt = blob[len(MAGIC) + 4: len(MAGIC) + 4 + SALT_BYTES]
    nonce = blob[_HEADER - NONCE_BYTES: _HEADER]
    try:
        plain = AESGCM(_key(passphrase, salt, log2_n, r, p)).decrypt(
            nonce, blob[_HEADER:], blob[:_HEADER])
    except InvalidTag:
        raise BundleError("wrong passphrase, or a damaged key bundle: nothing imported") \
            from None
    return {name: base64.b64decode(data) for name, data in json.loads(plain).items()}
