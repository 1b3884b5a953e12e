"""Synthetic dispensations for tests, the crash driver and the benchmark (tools side: host
code never imports tools).

Identities come from comptoir_tools.credentials.identities (keys valid, code ranges unassigned).
FINESS numbers start with 00 (no département) and RPPS numbers with 99, and product codes use CIP7
or ACL bodies starting with 99, so no generated number can be a real establishment, professional
or product [inference from the public numbering]. Same seed, same index -> same dispensation.
"""

from __future__ import annotations

import datetime as dt
import random
from functools import cache

from cryptography.hazmat.primitives.asymmetric import ec

from comptoir.billing.identifiers import ean13_complete, luhn_complete
from comptoir.billing.model import Dispensation, LineInput, Nature, TiersPayant, Transaction
from comptoir.billing.pricing import persons
from comptoir.tokens.model import Channel, Credential, Verified
from comptoir_tools.credentials.identities import Family, family

TODAY = dt.date(2026, 6, 15)


def fake_finess(rng: random.Random) -> str:
    return luhn_complete(f"00{rng.randrange(10**6):06d}")


def fake_rpps(rng: random.Random) -> str:
    return luhn_complete(f"99{rng.randrange(10**8):08d}")


def fake_cip13(rng: random.Random) -> str:
    return ean13_complete(f"3400999{rng.randrange(10**5):05d}")


def fake_acl13(rng: random.Random) -> str:
    return ean13_complete(f"340199{rng.randrange(10**6):06d}")


@cache
def _device_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def presentation(fam: Family, serial: int) -> Verified:
    """A Verified as the token verifier would return it for this family."""
    credential = Credential(
        credential_id=serial.to_bytes(16, "big"),
        issued_at=0, not_before=0, expires_at=2**31 - 1,
        insured=fam.insured, beneficiaries=fam.beneficiaries, affiliation=fam.affiliation,
        amc=fam.amc, activation_generation=1, status_index=serial, device_key=_device_key(),
    )
    return Verified(Channel.QR, credential, "CN=synthetic issuer", serial.to_bytes(16, "big"),
                    0, 0)


class Synth:
    def __init__(
        self, seed: int = 1, *, pharmacies: int = 1, families: int = 64, today: dt.date = TODAY
    ) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.today = today
        self.pharmacies = [(fake_finess(rng), fake_rpps(rng)) for _ in range(pharmacies)]
        self.prescribers = [fake_rpps(rng) for _ in range(20)]
        self.products = [fake_cip13(rng) for _ in range(40)] + [fake_acl13(rng) for _ in range(4)]
        self.presentations = [
            presentation(family(seed * 10_000 + k, today=today), seed * 10_000 + k)
            for k in range(families)
        ]

    def dispensation(self, i: int, *, transaction_id: str | None = None) -> Dispensation:
        rng = random.Random(self.seed * 1_000_003 + i)
        p = self.presentations[i % len(self.presentations)]
        patient = rng.choice(persons(p.credential)).ref
        finess, pharmacist = self.pharmacies[i % len(self.pharmacies)]
        roll = rng.random()
        nature = Nature.MATERNITY if roll < 0.04 else Nature.WORK_ACCIDENT if roll < 0.08 else (
            Nature.ILLNESS)
        lines = []
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            price = rng.randint(150, 5000)
            base = price if rng.random() < 0.75 else int(price * rng.uniform(0.6, 1.0)) or 1
            rate = 100 if nature != Nature.ILLNESS else rng.choice((65, 65, 65, 30, 15, 100))
            lines.append(LineInput(rng.choice(self.products), rng.randint(1, 3), price, base,
                                   rate))
        dispensed = self.today - dt.timedelta(days=rng.randint(0, 150))
        amc = p.credential.amc
        return Dispensation(
            transaction=Transaction(transaction_id or f"T{self.seed}-{i:08d}", p, patient),
            finess=finess,
            pharmacist_rpps=pharmacist,
            prescriber_rpps=rng.choice(self.prescribers),
            prescribed_on=dispensed - dt.timedelta(days=rng.randint(0, 60)),
            dispensed_on=dispensed,
            lines=tuple(lines),
            tiers_payant=TiersPayant(amo=rng.random() < 0.95,
                                     amc=amc is not None and amc.tiers_payant in (15, 25)),
            nature=nature,
        )
