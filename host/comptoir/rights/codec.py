"""A rights record as compact CBOR (the plaintext that gets encrypted), and back.

Arrays, not maps, to keep a row small: each sourced part is [value, source, obtained_at] or
null. Dates are proleptic ordinals. The identity is inside, so a decrypted row can be checked
against the identity that was asked for.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import cbor2

from comptoir.tokens.model import Affiliation, AmcContract, Exemption, Period

from .model import BeneficiaryId, Css, Names, RightsRecord, Source, Sourced

FORMAT = 1


def _period(p: Period) -> list[int]:
    return [p.start.toordinal(), p.end.toordinal()]


def _unperiod(v: list[int]) -> Period:
    return Period(dt.date.fromordinal(v[0]), dt.date.fromordinal(v[1]))


def _enc_value(part: str, v: Any) -> Any:
    if v is None:
        return None
    match part:
        case "names":
            return [v.family_name, v.given_names]
        case "amo":
            return [_period(p) for p in v]
        case "affiliation":
            return [v.regime, v.caisse, v.centre]
        case "exemptions":
            return [[e.code, *_period(e.period)] for e in v]
        case "css":
            return [*_period(v.period), v.participative]
        case "amc":
            return [v.amc_number, v.contract_type, *_period(v.period), v.tiers_payant]
        case "credential_id":
            return bytes(v)
    raise ValueError(part)


def _dec_value(part: str, v: Any) -> Any:
    if v is None:
        return None
    match part:
        case "names":
            return Names(v[0], v[1])
        case "amo":
            return tuple(_unperiod(p) for p in v)
        case "affiliation":
            return Affiliation(*v)
        case "exemptions":
            return tuple(Exemption(e[0], _unperiod(e[1:3])) for e in v)
        case "css":
            return Css(_unperiod(v[0:2]), bool(v[2]))
        case "amc":
            return AmcContract(v[0], v[1], _unperiod(v[2:4]), v[4])
        case "credential_id":
            return bytes(v)
    raise ValueError(part)


_PARTS = ("names", "amo", "affiliation", "exemptions", "css", "amc", "credential_id")


def encode(record: RightsRecord) -> bytes:
    who = record.who
    out: list[Any] = [FORMAT, [who.nir, who.birth_date, who.birth_rank, who.quality]]
    for part in _PARTS:
        s: Sourced[Any] | None = getattr(record, part)
        out.append(None if s is None else [_enc_value(part, s.value), int(s.source), s.obtained_at])
    return cbor2.dumps(out)


def decode(data: bytes) -> RightsRecord:
    """Raises ValueError on anything that is not a record this version wrote."""
    try:
        obj = cbor2.loads(data)
        if not isinstance(obj, list) or obj[0] != FORMAT or len(obj) != 2 + len(_PARTS):
            raise ValueError("not a rights record")
        who = BeneficiaryId(*obj[1])
        parts: dict[str, Sourced[Any] | None] = {}
        for part, raw in zip(_PARTS, obj[2:], strict=True):
            parts[part] = (
                None if raw is None else Sourced(_dec_value(part, raw[0]), Source(raw[1]), raw[2])
            )
        return RightsRecord(who, **parts)
    except ValueError:
        raise
    except Exception as exc:  # any shape error in our own plaintext is corruption
        raise ValueError(f"rights record undecodable: {type(exc).__name__}") from None
