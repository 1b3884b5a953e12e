"""JSON of the insurer's rights service (our own format; the real ADRi protocol is not public).

    GET  /v1/rights/<nir>         -> 200 answer | 404 {"error": "unknown"}
    POST /v1/rights:batch {"nirs": [...]} -> 200 {"answers": [answer | null, ...]} (same order)
    GET  /v1/opposition?since=<seq> -> 200 {"seq": n, "entries": [{"credential_id": hex,
                                             "opposed_at": t}, ...]}
    answer = {"nir": str, "as_of": int, "affiliation": [regime, caisse, centre],
              "members": [{"birth_date": YYYYMMDD, "birth_rank": int, "quality": int,
                           "family_name": str, "given_names": str,
                           "amo": [[start, end], ...], "exemptions": [[code, start, end], ...]}],
              "amc": null | [number, contract_type, start, end, tiers_payant]}
Dates are ISO strings. Decoding is strict: anything else is a ServiceError.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from comptoir.tokens.model import (
    Affiliation,
    AmcContract,
    Beneficiary,
    BirthDate,
    Exemption,
    InsuredPerson,
    Period,
)

from .errors import ServiceError
from .model import QUALITY_INSURED, RightsRecord, Source
from .sources import snapshot


def _p(p: Period) -> list[str]:
    return [p.start.isoformat(), p.end.isoformat()]


def encode_answer(
    insured: InsuredPerson,
    beneficiaries: Sequence[Beneficiary],
    affiliation: Affiliation,
    amc: AmcContract | None,
    as_of: int,
) -> dict[str, Any]:
    def member(bd: int, rank: int, quality: int, fam: str, given: str, rights: Any, ex: Any):
        return {
            "birth_date": bd,
            "birth_rank": rank,
            "quality": quality,
            "family_name": fam,
            "given_names": given,
            "amo": [_p(r) for r in rights],
            "exemptions": [[e.code, *_p(e.period)] for e in ex],
        }

    members = [
        member(
            insured.birth_date.to_int(),
            1,
            QUALITY_INSURED,
            insured.family_name,
            insured.given_names,
            insured.rights,
            insured.exemptions,
        )
    ]
    members += [
        member(
            b.birth_date.to_int(),
            b.birth_rank,
            b.quality,
            b.family_name,
            b.given_names,
            b.rights,
            b.exemptions,
        )
        for b in beneficiaries
    ]
    return {
        "nir": insured.nir,
        "as_of": as_of,
        "affiliation": [affiliation.regime, affiliation.caisse, affiliation.centre],
        "members": members,
        "amc": None
        if amc is None
        else [amc.amc_number, amc.contract_type, *_p(amc.period), amc.tiers_payant],
    }


def _int(v: Any, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ServiceError(f"bad {what}")
    return v


def _str(v: Any, what: str, maxlen: int = 200) -> str:
    if not isinstance(v, str) or len(v) > maxlen:
        raise ServiceError(f"bad {what}")
    return v


def _period(v: Any) -> Period:
    try:
        start, end = (dt.date.fromisoformat(_str(x, "date", 10)) for x in v)
    except (TypeError, ValueError):
        raise ServiceError("bad period") from None
    if end < start:
        raise ServiceError("period ends before it starts")
    return Period(start, end)


def decode_answer(obj: Any, nir: str, *, obtained_at: int) -> list[RightsRecord]:
    """Records from one answer, which must be about `nir` (an answer about anyone else is the
    identity mix-up this cache must never store)."""
    if not isinstance(obj, dict):
        raise ServiceError("answer is not an object")
    if obj.get("nir") != nir:
        raise ServiceError("answer is about another insured person")
    members = obj.get("members")
    if not isinstance(members, list) or not 1 <= len(members) <= 32:
        raise ServiceError("bad members")
    aff = obj.get("affiliation")
    if not isinstance(aff, list) or len(aff) != 3:
        raise ServiceError("bad affiliation")
    affiliation = Affiliation(*(_int(x, "affiliation") for x in aff))
    raw_amc = obj.get("amc")
    amc = None
    if raw_amc is not None:
        if not isinstance(raw_amc, list) or len(raw_amc) != 5:
            raise ServiceError("bad amc")
        amc = AmcContract(
            _int(raw_amc[0], "amc"),
            _int(raw_amc[1], "amc"),
            _period(raw_amc[2:4]),
            _int(raw_amc[4], "amc"),
        )
    insured: InsuredPerson | None = None
    beneficiaries: list[Beneficiary] = []
    for i, m in enumerate(members):
        if not isinstance(m, dict):
            raise ServiceError("bad member")
        bd = BirthDate.from_int(_int(m.get("birth_date"), "birth date"))
        rank = _int(m.get("birth_rank"), "birth rank")
        quality = _int(m.get("quality"), "quality")
        fam, given = _str(m.get("family_name"), "name"), _str(m.get("given_names"), "name")
        amo = m.get("amo")
        ex = m.get("exemptions")
        if not isinstance(amo, list) or not isinstance(ex, list) or len(amo) > 16 or len(ex) > 16:
            raise ServiceError("bad rights")
        rights = tuple(_period(p) for p in amo)
        exemptions = tuple(
            Exemption(_int(e[0], "exemption"), _period(e[1:3]))
            for e in ex
            if isinstance(e, list) and len(e) == 3
        )
        if len(exemptions) != len(ex):
            raise ServiceError("bad exemption")
        if (quality == QUALITY_INSURED) != (i == 0):
            raise ServiceError("the insured person must come first, and only once")
        if i == 0:
            insured = InsuredPerson(nir, fam, given, bd, rights, exemptions)
        else:
            beneficiaries.append(
                Beneficiary(nir, i, bd, rank, quality, fam, given, rights, exemptions)
            )
    assert insured is not None
    try:
        return snapshot(
            insured,
            beneficiaries,
            affiliation,
            amc,
            source=Source.SERVICE,
            obtained_at=obtained_at,
        )
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
