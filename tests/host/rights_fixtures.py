"""Helpers for the rights-cache tests: a fixed clock, generated families (fake people only),
a running simulated rights service, and a cache opened on a temporary directory."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from comptoir.rights import (
    BeneficiaryId,
    CircuitBreaker,
    ClientPolicy,
    RightsCache,
    RightsClient,
    StalenessPolicy,
    beneficiary_id,
    insured_id,
)
from comptoir.tokens.model import Beneficiary, BirthDate
from comptoir_tools.credentials.identities import Family, family
from comptoir_tools.simulators.rights_service import RightsService

NOW = 1_790_000_000  # 2026-09-21, the clock of the token tests too
TODAY = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
HOUR, DAY = 3600, 86400
FAST = ClientPolicy(timeout=0.5, attempts=3, backoff=0.01, backoff_max=0.02)


def fam(seed: int, beneficiaries: int = 2, **kw: Any) -> Family:
    return family(seed, beneficiaries=beneficiaries, today=TODAY, **kw)


def members(f: Family) -> list[BeneficiaryId]:
    return [insured_id(f.insured), *(beneficiary_id(b) for b in f.beneficiaries)]


def twins_family(seed: int = 99) -> Family:
    """A family whose insured has a spouse born the same day and twin children: identities
    differ only by qualité or birth rank, the hardest case for a mix-up."""
    f = fam(seed, beneficiaries=0)
    ins = f.insured
    child_day = BirthDate(2015, 6, 1)

    def member(rank: int, bd: BirthDate, birth_rank: int, quality: int, given: str) -> Beneficiary:
        return Beneficiary(
            ins.nir, rank, bd, birth_rank, quality, ins.family_name, given, ins.rights, ()
        )

    bens = (
        member(1, ins.birth_date, 1, 2, "ZÊTA-SPOUSE"),
        member(2, child_day, 1, 6, "ALPHA-TWIN"),
        member(3, child_day, 2, 6, "BÊTA-TWIN"),
    )
    return dataclasses.replace(f, beneficiaries=bens)


def secrets_of(families: list[Family]) -> list[bytes]:
    """Every NIR and name of these families, in the encodings a file could hold them."""
    out: set[bytes] = set()
    for f in families:
        texts = {f.insured.nir, f.insured.family_name, f.insured.given_names}
        for b in f.beneficiaries:
            texts |= {b.family_name, b.given_names}
        for t in texts:
            out |= {t.encode("utf-8"), t.encode("utf-16-le")}
            if t == f.insured.nir:
                out.add(t[:13].encode())  # the NIR without its key too
    # Two-letter names (NU, XI) occur by chance in any 100 KB of ciphertext: 4 bytes and up.
    return sorted(s for s in out if len(s) >= 4)


@contextlib.contextmanager
def running_service(families: list[Family], **knobs: Any) -> Iterator[RightsService]:
    svc = RightsService(now=lambda: NOW)
    for f in families:
        svc.add_family(f)
    for k, v in knobs.items():
        setattr(svc, k, v)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def client(
    url: str, *, threshold: int = 3, cool_down: float = 60.0, policy: ClientPolicy = FAST, **kw: Any
) -> RightsClient:
    return RightsClient(
        url, policy=policy, breaker=CircuitBreaker(threshold=threshold, cool_down=cool_down), **kw
    )


def open_cache(
    directory: Path, *, now: int = NOW, policy: StalenessPolicy | None = None, **kw: Any
) -> RightsCache:
    return RightsCache.open(
        directory / "rights.db", directory / "rights.key", policy=policy, clock=lambda: now, **kw
    )


def file_bytes(db: Path) -> bytes:
    """The database file and its WAL, as they are on disk now."""
    data = db.read_bytes()
    wal = db.with_name(db.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")
