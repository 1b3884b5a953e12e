"""The credential and presentation claim maps: integer keys, encoding and strict parsing.

Keys 4-8 keep their CWT meanings (RFC 8392 / RFC 8747); Comptoir's own claims use the negative
keys -1..-24, which encode in one byte. (RFC 8392 leaves keys above -65537 to standards action;
these tokens are only read by Comptoir verifiers, and one byte per key matters in a QR code.)
Each token type has its own key space, told apart by the signed `typ` claim (-1).
Parsing is strict: an unknown key, a missing key or a wrong type is a refusal.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import cose
from .model import (
    Affiliation,
    AmcContract,
    Beneficiary,
    BirthDate,
    Credential,
    Exemption,
    InsuredPerson,
    Period,
)
from .nir import parse_nir
from .reasons import Reason, TokenError

# Shared by every Comptoir token.
TYP = -1
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
MAX_PERIODS = 8
MAX_NAME = 64
TIERS_PAYANT_CODES = frozenset((0, 5, 15, 25))
EPOCH = dt.date(1970, 1, 1)

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


# --- strict readers -------------------------------------------------------------------------


def _malformed(what: str) -> TokenError:
    return TokenError(Reason.CLAIMS_MALFORMED, what)


def uint(value: Any, what: str, maximum: int = 2**63 - 1) -> int:
    # bool is an int subclass in Python; CBOR true must not pass as 1.
    if type(value) is not int or not 0 <= value <= maximum:
        raise _malformed(what)
    return value


def bstr(value: Any, what: str, minimum: int, maximum: int) -> bytes:
    if not isinstance(value, bytes) or not minimum <= len(value) <= maximum:
        raise _malformed(what)
    return value


def text(value: Any, what: str) -> str:
    """A name: 1..MAX_NAME bytes of UTF-8 (CDDL `tstr .size` counts bytes, not characters),
    every character printable in Python's sense (`str.isprintable`): no character of Unicode
    general category Cc, Cf, Cs, Co, Cn (control, format, surrogate, private use, unassigned),
    Zl, Zp, and no separator Zs other than U+0020 SPACE. Names end up on screens and in
    billing files, where they must not be able to inject or hide anything."""
    if not isinstance(value, str) or not value.isprintable():
        raise _malformed(what)
    # After isprintable: no surrogate is left, so the encoding cannot fail.
    if not 0 < len(value.encode("utf-8")) <= MAX_NAME:
        raise _malformed(what)
    return value


def array(value: Any, what: str, maximum: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > maximum:
        raise _malformed(what)
    return value


def claims_map(value: Any, what: str, allowed: frozenset[int], required: frozenset[int]) -> dict:
    if not isinstance(value, dict):
        raise _malformed(what)
    keys = value.keys()
    if not keys <= allowed:
        raise _malformed(f"{what}: unknown key")
    if not required <= keys:
        raise _malformed(f"{what}: missing key")
    return value


def check_typ(claims: Any, expected: int) -> None:
    if not isinstance(claims, dict) or claims.get(TYP) != expected or type(claims[TYP]) is not int:
        raise TokenError(Reason.TOKEN_TYPE_MISMATCH, f"expected typ {expected}")


def _day(value: Any, what: str) -> dt.date:
    return EPOCH + dt.timedelta(days=uint(value, what, 200_000))


def _period(value: Any, what: str) -> Period:
    pair = array(value, what, 2)
    if len(pair) != 2:
        raise _malformed(what)
    period = Period(_day(pair[0], what), _day(pair[1], what))
    if period.start > period.end:
        raise _malformed(what)
    return period


def _periods(value: Any, what: str) -> tuple[Period, ...]:
    return tuple(_period(p, what) for p in array(value, what, MAX_PERIODS))


def _exemptions(value: Any) -> tuple[Exemption, ...]:
    out = []
    for item in array(value, "exemptions", MAX_PERIODS):
        triple = array(item, "exemption", 3)
        if len(triple) != 3:
            raise _malformed("exemption")
        code = uint(triple[0], "exemption code", 99)
        out.append(Exemption(code, _period(triple[1:], "exemption")))
    return tuple(out)


def birth_date(value: Any, today: dt.date) -> BirthDate | None:
    """A plausible civil birth date, or None. Unknown month means unknown day."""
    if type(value) is not int or not 18_700_000 <= value <= 99_991_231:
        return None
    bd = BirthDate.from_int(value)
    if bd.month > 12 or bd.day > 31 or (bd.month == 0 and bd.day != 0):
        return None
    if bd.month and bd.day:
        try:
            if dt.date(bd.year, bd.month, bd.day) > today:
                return None
        except ValueError:
            return None
    elif (bd.year, bd.month) > (today.year, today.month):
        return None
    return bd


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
        raise _malformed("affiliation")
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
    default_rights = _periods(c[C_RIGHTS], "rights") if C_RIGHTS in c else ()
    insured_birth = birth_date(ins[P_BIRTH_DATE], today)
    if insured_birth is None:
        raise _malformed("insured birth date")
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
        rights=_periods(ins[P_RIGHTS], "rights") if P_RIGHTS in ins else default_rights,
        exemptions=_exemptions(ins.get(P_EXEMPTIONS, [])),
    )

    if C_BENEFICIARIES in c and c[C_BENEFICIARIES] == []:
        # `? -6: [1*16 beneficiary]`: a credential without beneficiaries omits the key, so
        # that a credential has one encoding.
        raise _malformed("beneficiaries: empty array")
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
            raise _malformed("tiers payant")
        amc = AmcContract(
            uint(a[A_NUMBER], "AMC number", 9_999_999_999),
            uint(a[A_CONTRACT_TYPE], "contract type", 99),
            _period(a[A_PERIOD], "AMC period"),
            tp,
        )

    iat, nbf, exp = uint(c[IAT], "iat"), uint(c[NBF], "nbf"), uint(c[EXP], "exp")
    if not iat <= exp or not nbf <= exp:
        raise _malformed("validity dates")
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
        raise _malformed("beneficiaries")
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
                rights=_periods(b[P_RIGHTS], "rights") if P_RIGHTS in b else default_rights,
                exemptions=_exemptions(b.get(P_EXEMPTIONS, [])),
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
