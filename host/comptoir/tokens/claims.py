"""The credential and presentation claim maps: integer keys, encoding and strict parsing.

Keys 4-8 keep their CWT meanings (RFC 8392 / RFC 8747); Comptoir's own claims use the negative
keys -1..-24, which encode in one byte. (RFC 8392 leaves keys above -65537 to standards action;
these tokens are only read by Comptoir verifiers, and one byte per key matters in a QR code.)
Each token type has its own key space, told apart by the signed `typ` claim (-1).
Parsing is strict: an unknown key, a missing key or a wrong type is a refusal (the readers of
single values are in claim_fields.py; their names are importable from here too).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import cose
from .claim_fields import (
    EPOCH,
    MAX_NAME,  # noqa: F401 (claims.MAX_NAME, as before)
    MAX_PERIODS,  # noqa: F401 (claims.MAX_PERIODS, as before)
    TYP,
    array,
    birth_date,
    bstr,
    check_typ,
    claims_map,
    exemptions,
    malformed,
    period,
    periods,
    text,
    uint,
)
from .model import (
    Affiliation,
    AmcContract,
    Beneficiary,
    Credential,
    InsuredPerson,
    Period,
)
from .nir import parse_nir
from .reasons import Reason, TokenError

# Shared by every Comptoir token (TYP, -1, is claim_fields'.)
EXP, NBF, IAT, CTI, CNF = 4, 5, 6, 7, 8
CNF_COSE_KEY = 1

TYP_CREDENTIAL = 1
TYP_PRESENTATION = 2
TYP_CERTIFICATE = 3
TYP_TRUST_LIST = 4

# Credential.
C_GENERATION = -2
C_STATUS_INDEX = -3
C_AFFILIATION = -4  # [régime, caisse, centre]
C_INSURED = -5
C_BENEFICIARIES = -6
C_AMC = -7
C_RIGHTS = -8  # rights periods of every person who has no P_RIGHTS of their own

# Person maps (insured and beneficiaries).
P_NIR = 1  # insured only: a beneficiary carrying a NIR is refused
P_FAMILY_NAME = 2
P_GIVEN_NAMES = 3
P_BIRTH_DATE = 4  # YYYYMMDD, 00 for an unknown month or day
P_RIGHTS = 5  # [[first day, last day], ...], days since 1970-01-01; default C_RIGHTS
P_EXEMPTIONS = 6  # [[code, first day, last day], ...]
P_BIRTH_RANK = 7  # beneficiary: rang de naissance (twins), default 1
P_RANK = 8  # beneficiary: its rank in this credential, 1..
P_QUALITY = 9  # beneficiary: qualité

# AMC contract.
A_NUMBER, A_CONTRACT_TYPE, A_PERIOD, A_TIERS_PAYANT = 1, 2, 3, 4

# Presentation.
PR_CREDENTIAL = -2  # the credential, a tagged COSE_Sign1, as a byte string
PR_COUNTER = -3
PR_CHALLENGE = -4  # NFC only

MAX_BENEFICIARIES = 16
TIERS_PAYANT_CODES = frozenset((0, 5, 15, 25))

_CREDENTIAL_KEYS = frozenset(
    (
        TYP,
        EXP,
        NBF,
        IAT,
        CTI,
        CNF,
        C_GENERATION,
        C_STATUS_INDEX,
        C_AFFILIATION,
        C_INSURED,
        C_BENEFICIARIES,
        C_AMC,
        C_RIGHTS,
    )
)
_CREDENTIAL_REQUIRED = _CREDENTIAL_KEYS - {C_BENEFICIARIES, C_AMC, C_RIGHTS}
_INSURED_KEYS = frozenset(
    (P_NIR, P_FAMILY_NAME, P_GIVEN_NAMES, P_BIRTH_DATE, P_RIGHTS, P_EXEMPTIONS)
)
_BENEFICIARY_KEYS = frozenset(
    (
        P_FAMILY_NAME,
        P_GIVEN_NAMES,
        P_BIRTH_DATE,
        P_RIGHTS,
        P_EXEMPTIONS,
        P_BIRTH_RANK,
        P_RANK,
        P_QUALITY,
    )
)
_INSURED_REQUIRED = frozenset((P_NIR, P_FAMILY_NAME, P_GIVEN_NAMES, P_BIRTH_DATE))
_BENEFICIARY_REQUIRED = frozenset((P_GIVEN_NAMES, P_BIRTH_DATE, P_RANK, P_QUALITY))
_CNF_KEYS = frozenset((CNF_COSE_KEY,))
_AMC_KEYS = frozenset((A_NUMBER, A_CONTRACT_TYPE, A_PERIOD, A_TIERS_PAYANT))
_PRESENTATION_KEYS = frozenset((TYP, IAT, CTI, PR_CREDENTIAL, PR_COUNTER, PR_CHALLENGE))
_PRESENTATION_REQUIRED = _PRESENTATION_KEYS - {PR_CHALLENGE}


# --- credential -----------------------------------------------------------------------------


def parse_credential(claims: Any, now: int) -> Credential:
    """Turn a credential's (signature-checked) claims into a Credential, or refuse."""
    check_typ(claims, TYP_CREDENTIAL)
    c = claims_map(claims, "credential", _CREDENTIAL_KEYS, _CREDENTIAL_REQUIRED)
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()

    cnf = claims_map(c[CNF], "cnf", _CNF_KEYS, _CNF_KEYS)
    device_key = cose.parse_key(cnf[CNF_COSE_KEY])

    aff = array(c[C_AFFILIATION], "affiliation", 3)
    if len(aff) != 3:
        raise malformed("affiliation")
    affiliation = Affiliation(
        uint(aff[0], "régime", 99), uint(aff[1], "caisse", 999), uint(aff[2], "centre", 9999)
    )

    ins = claims_map(
        c[C_INSURED],
        "insured",
        _INSURED_KEYS,
        _INSURED_REQUIRED,
    )
    nir = ins[P_NIR]
    info = parse_nir(nir)
    default_rights = periods(c[C_RIGHTS], "rights") if C_RIGHTS in c else ()
    insured_birth = birth_date(ins[P_BIRTH_DATE], today)
    if insured_birth is None:
        raise malformed("insured birth date")
    # The NIR is built from the birth date: a mismatch is the "father's NIR" class of mix-up.
    if info.year2 != insured_birth.year % 100 or (
        not info.pseudo_month and insured_birth.month and info.month != insured_birth.month
    ):
        raise TokenError(Reason.NIR_BIRTH_DATE_MISMATCH)
    insured = InsuredPerson(
        nir=nir,
        family_name=text(ins[P_FAMILY_NAME], "family name"),
        given_names=text(ins[P_GIVEN_NAMES], "given names"),
        birth_date=insured_birth,
        rights=periods(ins[P_RIGHTS], "rights") if P_RIGHTS in ins else default_rights,
        exemptions=exemptions(ins.get(P_EXEMPTIONS, [])),
    )

    if C_BENEFICIARIES in c and c[C_BENEFICIARIES] == []:
        # `? -6: [1*16 beneficiary]`: a credential without beneficiaries omits the key, so
        # that a credential has one encoding.
        raise malformed("beneficiaries: empty array")
    beneficiaries = _beneficiaries(c.get(C_BENEFICIARIES, []), insured, default_rights, today)

    amc = None
    if C_AMC in c:
        a = claims_map(
            c[C_AMC],
            "amc",
            _AMC_KEYS,
            _AMC_KEYS,
        )
        tp = uint(a[A_TIERS_PAYANT], "tiers payant", 99)
        if tp not in TIERS_PAYANT_CODES:
            raise malformed("tiers payant")
        amc = AmcContract(
            uint(a[A_NUMBER], "AMC number", 9_999_999_999),
            uint(a[A_CONTRACT_TYPE], "contract type", 99),
            period(a[A_PERIOD], "AMC period"),
            tp,
        )

    iat, nbf, exp = uint(c[IAT], "iat"), uint(c[NBF], "nbf"), uint(c[EXP], "exp")
    if not iat <= exp or not nbf <= exp:
        raise malformed("validity dates")
    return Credential(
        credential_id=bstr(c[CTI], "cti", 8, 16),
        issued_at=iat,
        not_before=nbf,
        expires_at=exp,
        insured=insured,
        beneficiaries=beneficiaries,
        affiliation=affiliation,
        amc=amc,
        activation_generation=uint(c[C_GENERATION], "activation generation", 2**32),
        status_index=uint(c[C_STATUS_INDEX], "status index", 2**32),
        device_key=device_key,
    )


def _beneficiaries(
    value: Any, insured: InsuredPerson, default_rights: tuple[Period, ...], today: dt.date
) -> tuple[Beneficiary, ...]:
    items = value if isinstance(value, list) else None
    if items is None:
        raise malformed("beneficiaries")
    if len(items) > MAX_BENEFICIARIES:
        raise TokenError(Reason.BENEFICIARIES_INCONSISTENT, "too many")
    out: list[Beneficiary] = []
    ranks: set[int] = set()
    identities: set[tuple[int, int]] = set()
    for item in items:
        if isinstance(item, dict) and P_NIR in item:
            # A beneficiary is identified through the insured's NIR, never one of its own:
            # two NIRs in one credential is how a wrong person gets billed.
            raise TokenError(Reason.BENEFICIARIES_INCONSISTENT, "beneficiary carries a NIR")
        b = claims_map(
            item,
            "beneficiary",
            _BENEFICIARY_KEYS,
            _BENEFICIARY_REQUIRED,
        )
        bd = birth_date(b[P_BIRTH_DATE], today)
        if bd is None:
            raise TokenError(Reason.BENEFICIARIES_INCONSISTENT, "birth date")
        rank = uint(b[P_RANK], "rank", 99)
        birth_rank = uint(b.get(P_BIRTH_RANK, 1), "birth rank", 9)
        if rank == 0 or birth_rank == 0:
            raise TokenError(Reason.BENEFICIARIES_INCONSISTENT, "rank 0")
        if rank in ranks:
            raise TokenError(Reason.BENEFICIARIES_INCONSISTENT, "duplicate rank")
        if (bd.to_int(), birth_rank) in identities:
            # Same insured NIR, birth date and birth rank: billing could not tell them apart.
            raise TokenError(Reason.BENEFICIARIES_INCONSISTENT, "duplicate identity")
        ranks.add(rank)
        identities.add((bd.to_int(), birth_rank))
        family = b.get(P_FAMILY_NAME)
        out.append(
            Beneficiary(
                insured_nir=insured.nir,
                rank=rank,
                birth_date=bd,
                birth_rank=birth_rank,
                quality=uint(b[P_QUALITY], "quality", 99),
                family_name=insured.family_name if family is None else text(family, "family name"),
                given_names=text(b[P_GIVEN_NAMES], "given names"),
                rights=periods(b[P_RIGHTS], "rights") if P_RIGHTS in b else default_rights,
                exemptions=exemptions(b.get(P_EXEMPTIONS, [])),
            )
        )
    return tuple(out)


def _days(day: dt.date) -> int:
    return (day - EPOCH).days


def _encode_periods(periods: tuple[Period, ...]) -> list[list[int]]:
    return [[_days(p.start), _days(p.end)] for p in periods]


def _encode_person(
    p: InsuredPerson | Beneficiary, insured: InsuredPerson, default_rights: tuple[Period, ...]
) -> dict[int, Any]:
    out: dict[int, Any] = {}
    if isinstance(p, InsuredPerson):
        out[P_NIR] = p.nir
    if isinstance(p, InsuredPerson) or p.family_name != insured.family_name:
        out[P_FAMILY_NAME] = p.family_name
    out[P_GIVEN_NAMES] = p.given_names
    out[P_BIRTH_DATE] = p.birth_date.to_int()
    if p.rights != default_rights:
        out[P_RIGHTS] = _encode_periods(p.rights)
    if p.exemptions:
        out[P_EXEMPTIONS] = [
            [e.code, _days(e.period.start), _days(e.period.end)] for e in p.exemptions
        ]
    if isinstance(p, Beneficiary):
        out[P_RANK] = p.rank
        if p.birth_rank != 1:
            out[P_BIRTH_RANK] = p.birth_rank
        out[P_QUALITY] = p.quality
    return out


def encode_credential(cred: Credential, *, compressed_key: bool = True) -> dict[int, Any]:
    """The claims map for a credential (the issuer signs its CBOR encoding)."""
    # Rights shared by the whole family are written once, at the credential level.
    default_rights = cred.insured.rights
    out: dict[int, Any] = {
        TYP: TYP_CREDENTIAL,
        CTI: cred.credential_id,
        IAT: cred.issued_at,
        NBF: cred.not_before,
        EXP: cred.expires_at,
        CNF: {CNF_COSE_KEY: cose.encode_key(cred.device_key, compressed=compressed_key)},
        C_GENERATION: cred.activation_generation,
        C_STATUS_INDEX: cred.status_index,
        C_AFFILIATION: [cred.affiliation.regime, cred.affiliation.caisse, cred.affiliation.centre],
        C_INSURED: _encode_person(cred.insured, cred.insured, default_rights),
    }
    if default_rights:
        out[C_RIGHTS] = _encode_periods(default_rights)
    if cred.beneficiaries:
        out[C_BENEFICIARIES] = [
            _encode_person(b, cred.insured, default_rights) for b in cred.beneficiaries
        ]
    if cred.amc is not None:
        a = cred.amc
        out[C_AMC] = {
            A_NUMBER: a.amc_number,
            A_CONTRACT_TYPE: a.contract_type,
            A_PERIOD: [_days(a.period.start), _days(a.period.end)],
            A_TIERS_PAYANT: a.tiers_payant,
        }
    return out


# --- presentation ---------------------------------------------------------------------------


def encode_presentation(
    credential: bytes, iat: int, cti: bytes, counter: int, challenge: bytes | None
) -> dict[int, Any]:
    out: dict[int, Any] = {
        TYP: TYP_PRESENTATION,
        IAT: iat,
        CTI: cti,
        PR_COUNTER: counter,
        PR_CREDENTIAL: credential,
    }
    if challenge is not None:
        out[PR_CHALLENGE] = challenge
    return out


def parse_presentation(claims: Any) -> tuple[int, bytes, int, bytes, bytes | None]:
    """-> (iat, cti, counter, credential bytes, challenge or None)."""
    check_typ(claims, TYP_PRESENTATION)
    p = claims_map(
        claims,
        "presentation",
        _PRESENTATION_KEYS,
        _PRESENTATION_REQUIRED,
    )
    challenge = p.get(PR_CHALLENGE)
    if challenge is not None:
        challenge = bstr(challenge, "challenge", 8, 64)
    return (
        uint(p[IAT], "iat"),
        bstr(p[CTI], "cti", 8, 16),
        uint(p[PR_COUNTER], "counter"),
        bstr(p[PR_CREDENTIAL], "credential", 1, 4096),
        challenge,
    )
