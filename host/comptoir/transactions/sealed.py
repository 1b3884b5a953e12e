"""The sealed plaintext of a transaction: the verified presentation in our own CBOR form.

Our own plaintext, not the issuer's claims: it was checked when verified, and re-parsing it as
a token later would re-apply checks that depend on the day. It is sealed by the store with
`comptoir.storage.Sealer`, bound to the transaction id.
"""

from __future__ import annotations

import datetime as dt

import cbor2

from comptoir.tokens import cose
from comptoir.tokens.model import (
    Affiliation,
    AmcContract,
    Beneficiary,
    BirthDate,
    Channel,
    Credential,
    Exemption,
    InsuredPerson,
    Period,
    Verified,
)


def _period(p: Period) -> list[int]:
    return [p.start.toordinal(), p.end.toordinal()]


def _unperiod(v: list[int]) -> Period:
    return Period(dt.date.fromordinal(v[0]), dt.date.fromordinal(v[1]))


def _exemptions(es: tuple[Exemption, ...]) -> list[list[int]]:
    return [[e.code, *_period(e.period)] for e in es]


def _unexemptions(v: list[list[int]]) -> tuple[Exemption, ...]:
    return tuple(Exemption(e[0], _unperiod(e[1:3])) for e in v)


def encode_verified(v: Verified) -> bytes:
    c, ins = v.credential, v.credential.insured
    return cbor2.dumps([
        1, str(v.channel), v.issuer, v.presentation_id, v.presented_at, v.counter,
        [c.credential_id, c.issued_at, c.not_before, c.expires_at, c.activation_generation,
         c.status_index, cose.encode_key(c.device_key, compressed=True)],
        [c.affiliation.regime, c.affiliation.caisse, c.affiliation.centre],
        None if c.amc is None else [c.amc.amc_number, c.amc.contract_type,
                                    *_period(c.amc.period), c.amc.tiers_payant],
        [ins.nir, ins.family_name, ins.given_names, ins.birth_date.to_int(),
         [_period(p) for p in ins.rights], _exemptions(ins.exemptions)],
        [[b.insured_nir, b.rank, b.birth_date.to_int(), b.birth_rank, b.quality, b.family_name,
          b.given_names, [_period(p) for p in b.rights], _exemptions(b.exemptions)]
         for b in c.beneficiaries],
    ])


def decode_verified(data: bytes) -> Verified:
    try:
        fmt, channel, issuer, pid, presented_at, counter, cred, aff, amc, ins, bens = \
            cbor2.loads(data)
        if fmt != 1:
            raise ValueError("unknown sealed format")
        insured = InsuredPerson(ins[0], ins[1], ins[2], BirthDate.from_int(ins[3]),
                                tuple(_unperiod(p) for p in ins[4]), _unexemptions(ins[5]))
        beneficiaries = tuple(
            Beneficiary(b[0], b[1], BirthDate.from_int(b[2]), b[3], b[4], b[5], b[6],
                        tuple(_unperiod(p) for p in b[7]), _unexemptions(b[8]))
            for b in bens)
        credential = Credential(
            cred[0], cred[1], cred[2], cred[3], insured, beneficiaries, Affiliation(*aff),
            None if amc is None else AmcContract(amc[0], amc[1], _unperiod(amc[2:4]), amc[4]),
            cred[4], cred[5], cose.parse_key(cred[6]))
        return Verified(Channel(channel), credential, issuer, pid, presented_at, counter)
    except ValueError:
        raise
    except Exception as e:  # our own authenticated plaintext: any shape error is corruption
        raise ValueError(f"sealed transaction undecodable: {type(e).__name__}") from None

