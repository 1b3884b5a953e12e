"""The billing journal's keys: one 32-byte key file (billing.key, mode 0600), two derived keys.

- AES-256-GCM seals each care sheet's personal texts (canonical JSON + B2 records: the NIR,
  birth date and ranks, and everything rendered from them) with a random 96-bit nonce per
  seal; the associated data is the row's identity (FINESS, invoice number, transaction id),
  so a sealed blob moved to another row (an identity mix-up) fails authentication.
- HMAC-SHA256 makes the person key (the franchise running total's lookup key) and the input
  digest (a retry told from a different bill): without the key file neither can be brute-forced
  over the NIR space, which an unkeyed hash of NIR|birth date|rank could be.

The key file is read (and created on the daemon's first run) by the helper every store uses,
`comptoir.storage.load_or_create_key`; the sealing itself is `comptoir.storage.Sealer`.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from cryptography.exceptions import InvalidTag

from comptoir.storage import KeyFileError, Sealer, derive_key, load_or_create_key

from .model import PatientRef

__all__ = ["InvalidTag", "KeyFileError", "SheetCipher", "default_key_path",
           "load_or_create_key"]

_AAD = b"comptoir-billing-sheet/1|"


def default_key_path(db: str | Path) -> Path:
    """Where the key of a journal is looked for when none is given: `keys/billing.key` beside
    the journal, which is the daemon's layout by default (paths.data_dir/billing.db and
    paths.keys_dir = data_dir/keys)."""
    return Path(db).parent / "keys" / "billing.key"


def aad_prefix(finess: str) -> bytes:
    return _AAD + finess.encode() + b"|"


def row_aad(finess: str, invoice_no: int, transaction_id: str) -> bytes:
    """The associated data of a sheet's blob: the row it belongs to."""
    return b"%s%d|%s" % (aad_prefix(finess), invoice_no, transaction_id.encode())


class SheetCipher:
    def __init__(self, master: bytes) -> None:
        # Own derived keys: a billing blob never opens with the rights or transactions keys.
        self.sealer = Sealer(master, b"comptoir billing aes-256-gcm")
        self._mac = derive_key(master, b"comptoir billing hmac")

    def person_key(self, ref: PatientRef) -> str:
        """Groups one patient's sheets (franchise cap per person and year): 128 bits."""
        raw = f"person:{ref.insured_nir}|{ref.birth_date}|{ref.birth_rank}".encode()
        return hmac.new(self._mac, raw, hashlib.sha256).hexdigest()[:32]

    def digest(self, data: bytes) -> str:
        return hmac.new(self._mac, b"input:" + data, hashlib.sha256).hexdigest()

    def key_check(self) -> bytes:
        """Stored in the journal: tells a wrong key file from a tampered row."""
        return hmac.new(self._mac, b"key-check", hashlib.sha256).digest()[:16]

    def seal(self, finess: str, invoice_no: int, transaction_id: str, plaintext: bytes) -> bytes:
        return self.sealer.seal(row_aad(finess, invoice_no, transaction_id), plaintext)

    def open(self, finess: str, invoice_no: int, transaction_id: str, blob: bytes) -> bytes:
        """Raises InvalidTag when the blob was altered, moved from another row, or sealed with
        another key."""
        return self.sealer.open(row_aad(finess, invoice_no, transaction_id), blob)


def join_texts(body: str | bytes, b2: str | bytes) -> bytes:
    """The plaintext sealed per sheet: canonical JSON, a newline, the B2 records. The JSON is
    compact (a newline inside a string is escaped), so the first newline splits them again."""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(b2, str):
        b2 = b2.encode()
    return body + b"\n" + b2
