"""The journal's keyed digests: the person key (the franchise cap's running total) and the
input digest (a retry told from a different bill); schema 1's unkeyed ones, to migrate and to
recognise a retry of a transaction recorded before the migration."""

from __future__ import annotations

import hashlib

from .crypto import SheetCipher
from .model import Dispensation, PatientRef


def person_key(ref: PatientRef, cipher: SheetCipher) -> str:
    return cipher.person_key(ref)


def _request_parts(d: Dispensation, pkey: str) -> bytes:
    tx = d.transaction
    parts = (
        tx.transaction_id, pkey, tx.presentation.credential_id.hex(),
        d.finess, d.pharmacist_rpps, d.prescriber_rpps, str(d.prescribed_on),
        str(d.dispensed_on), int(d.nature), d.tiers_payant.amo, d.tiers_payant.amc,
        tuple((x.code, x.quantity, x.unit_price, x.base, x.rate, x.amo, x.amc, x.patient)
              for x in d.lines),
    )
    return repr(parts).encode()


def input_digest(d: Dispensation, cipher: SheetCipher) -> str:
    """What identifies the request itself, to tell a retry from a different bill (keyed)."""
    return cipher.digest(_request_parts(d, cipher.person_key(d.transaction.patient)))


def _v1_person_key(ref: PatientRef) -> str:
    """Schema 1's person key (unkeyed): only to migrate, and to recognise a retry of a
    transaction recorded before the migration."""
    raw = f"{ref.insured_nir}|{ref.birth_date}|{ref.birth_rank}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _v1_input_digest(d: Dispensation) -> str:
    return hashlib.sha256(_request_parts(d, _v1_person_key(d.transaction.patient))).hexdigest()
