"""Turning what a source says about a family into rights records, one per beneficiary.

A source speaks for a whole family at once (the credential lists the insured person and the
beneficiaries; the service answers per insured NIR). Such a snapshot is also a fact about
who is *not* in the family any more: `RightsStore.apply_snapshot` turns that into "no AMO
rights under this NIR" as of the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

from comptoir.tokens.model import (
    Affiliation,
    AmcContract,
    Beneficiary,
    Credential,
    InsuredPerson,
)

from .model import (
    QUALITY_INSURED,
    BeneficiaryId,
    Css,
    Names,
    RightsRecord,
    Source,
    Sourced,
)

CSS_CONTRACT_TYPE = 89


def insured_id(insured: InsuredPerson) -> BeneficiaryId:
    # The credential gives the insured person no birth rank: 1, and the qualité keeps them
    # apart from a spouse born the same day.
    return BeneficiaryId(insured.nir, insured.birth_date.to_int(), 1, QUALITY_INSURED)


def beneficiary_id(b: Beneficiary) -> BeneficiaryId:
    return BeneficiaryId(b.insured_nir, b.birth_date.to_int(), b.birth_rank, b.quality)


def snapshot(
    insured: InsuredPerson,
    beneficiaries: Sequence[Beneficiary],
    affiliation: Affiliation,
    amc: AmcContract | None,
    *,
    source: Source,
    obtained_at: int,
    credential_id: bytes | None = None,
) -> list[RightsRecord]:
    def s(value: object) -> Sourced:  # type: ignore[type-arg]
        return Sourced(value, source, obtained_at)

    css = Css(amc.period) if amc is not None and amc.contract_type == CSS_CONTRACT_TYPE else None
    people: list[tuple[BeneficiaryId, Names, tuple, tuple]] = [  # type: ignore[type-arg]
        (
            insured_id(insured),
            Names(insured.family_name, insured.given_names),
            insured.rights,
            insured.exemptions,
        )
    ]
    for b in beneficiaries:
        if b.insured_nir != insured.nir:
            raise ValueError("a beneficiary under another insured NIR")
        people.append(
            (beneficiary_id(b), Names(b.family_name, b.given_names), b.rights, b.exemptions)
        )
    ids = [p[0] for p in people]
    if len(set(ids)) != len(ids):
        raise ValueError("two members of one family share an identity")
    return [
        RightsRecord(
            who,
            names=s(names),
            amo=s(tuple(rights)),
            affiliation=s(affiliation),
            exemptions=s(tuple(exemptions)),
            css=s(css),
            amc=s(amc),
            credential_id=None if credential_id is None else s(credential_id),
        )
        for who, names, rights, exemptions in people
    ]


def from_credential(cred: Credential) -> list[RightsRecord]:
    """Rights the insurer signed into a credential, obtained when it signed them (`iat`)."""
    return snapshot(
        cred.insured,
        cred.beneficiaries,
        cred.affiliation,
        cred.amc,
        source=Source.CREDENTIAL,
        obtained_at=cred.issued_at,
        credential_id=cred.credential_id,
    )
