"""Comptoir tokens: the credential and presentation format, and their verification.

Entry point for the daemon:
    verifier = Verifier(TrustStore([anchor]), StatusLists(trust), VerifierState(db, pepper=...),
                        ChallengeRegistry())
    result = verifier.verify_qr(text) / verifier.verify_nfc(data, board_id)
    if result.ok: result.credential ... else: result.reason (a Reason)
"""

from .challenges import ChallengeRegistry
from .model import (
    Affiliation,
    AmcContract,
    Beneficiary,
    BirthDate,
    Channel,
    Credential,
    Exemption,
    InsuredPerson,
    Period,
    Refused,
    Result,
    Verified,
)
from .nir import mask_nir, parse_nir
from .reasons import Reason, TokenError
from .replay import VerifierState, load_pepper
from .status import StatusLists
from .trust import TrustStore
from .verify import QR_PREFIX, Policy, Verifier, decode_qr, encode_qr

__all__ = [
    "QR_PREFIX",
    "Affiliation",
    "AmcContract",
    "Beneficiary",
    "BirthDate",
    "ChallengeRegistry",
    "Channel",
    "Credential",
    "Exemption",
    "InsuredPerson",
    "Period",
    "Policy",
    "Reason",
    "Refused",
    "Result",
    "StatusLists",
    "TokenError",
    "TrustStore",
    "Verified",
    "Verifier",
    "VerifierState",
    "decode_qr",
    "encode_qr",
    "load_pepper",
    "mask_nir",
    "parse_nir",
]
