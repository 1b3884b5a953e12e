"""Token verification throughput on one core, against the raw ES256 bound in the same run.

    from comptoir_tools.bench.tokens import run
    figures = run()   # a dict; `make bench` reports it

A presentation of a credential the verifier has not seen needs two ES256 verifications
(issuer over the credential, device over the presentation). Every presentation verified is
distinct (fresh cti, own counter) and goes through the whole pipeline, including the SQLite
commit of the replay cache. The verifier memoises the issuer-side checks of a credential it has
already checked (same bytes, same trust list: see verify.py); each phone presents its
credential many times, so the bench measures both:

- warm (`verified_qr_per_s`): `wallets` phones, each presenting `presentations / wallets` times
  to a fresh verifier per repeat: the first presentation of each credential is a miss (two
  signatures), the others hits (one signature: the device's);
- cold (`verified_qr_cold_per_s`): the same presentations with the cache off, two signatures
  each.

Ratios, all against `raw` = cryptography's ES256 verifications per second in the same run:
- `ratio` = warm / (raw / 2): the issue's figure, against the two-signature bound;
- `ratio_3_per_credential`: the same with each phone presenting 3 times (200 phones), closer
  to a pharmacy, where a patient's phone is seldom presented more than a few times in a day;
- `ratio_cold` = cold / (raw / 2): the pipeline's overhead when both signatures are checked;
- `ratio_fair` = warm / (raw / s), s = signatures actually verified per presentation in the
  warm run (1 + misses / presentations): the overhead against the work really done.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from comptoir.tokens import cbor_safe, claims, cose
from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.replay import VerifierState
from comptoir.tokens.status import StatusLists
from comptoir.tokens.trust import TrustStore
from comptoir.tokens.verify import (
    CREDENTIAL_CACHE_SIZE,
    CREDENTIAL_CLAIMS_LIMITS,
    PRESENTATION_LIMITS,
    Verifier,
    decode_qr,
)
from comptoir_tools.credentials.identities import family
from comptoir_tools.credentials.pki import TestPki
from comptoir_tools.credentials.wallet import Wallet

SIGNATURES_PER_PRESENTATION = 2


def _rate(count: int, fn: Callable[[], None], repeats: int) -> float:
    """Operations per second: the median of `repeats` timed runs of `fn` (count ops each)."""
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - t))
    return statistics.median(rates)


def _pin_one_core() -> Callable[[], None]:
    if not hasattr(os, "sched_setaffinity"):
        return lambda: None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return lambda: os.sched_setaffinity(0, before)


def run(presentations: int = 600, wallets: int = 40, repeats: int = 5) -> dict[str, float | int]:
    restore = _pin_one_core()
    try:
        return _run(presentations, wallets, repeats)
    finally:
        restore()


def trusted_pki(now: int) -> tuple[TestPki, TrustStore]:
    """The token benches' PKI (seed 42) and a trust store holding its current list."""
    pki = TestPki(seed=42, now=now)
    trust = TrustStore([pki.anchor])
    trust.load(pki.trust_list(now=now), now)
    return pki, trust


def _run(n: int, n_wallets: int, repeats: int) -> dict[str, float | int]:
    now = int(time.time())
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    pki, trust = trusted_pki(now)
    issuer = pki.issuers[0]
    wallets = []
    per_credential_3 = n // 3  # phones for the run where each presents 3 times
    for i in range(max(n_wallets, per_credential_3)):
        credential, device = issuer.activate(
            family(1000 + i, beneficiaries=2, today=today), now=now - 60
        )
        wallets.append(Wallet(credential, device))
    status = StatusLists(trust)
    status.load(issuer.status_list(now=now), now)

    with tempfile.TemporaryDirectory() as tmp:
        # Fresh state per repeat, so that every verification is a first sight.
        batches_qr = [
            [wallets[i % n_wallets].present_qr(now=now) for i in range(n)] for _ in range(repeats)
        ]
        batches_qr3 = [
            [wallets[i % per_credential_3].present_qr(now=now) for i in range(n)]
            for _ in range(repeats)
        ]
        registry = ChallengeRegistry(per_board=n + 1, ttl=3600)
        batches_nfc = []
        for r in range(repeats):
            batch = []
            for i in range(n):
                board = f"bench-{r}"
                batch.append(
                    (
                        wallets[i % n_wallets].present_nfc(registry.issue(board, now=now), now=now),
                        board,
                    )
                )
            batches_nfc.append(batch)

        def verifier(tag: str, cache: int = CREDENTIAL_CACHE_SIZE) -> Verifier:
            state = VerifierState(Path(tmp) / f"{tag}.journal", pepper=b"bench-pepper-0123456789")
            return Verifier(trust, status, state, registry, credential_cache=cache)

        misses: list[int] = []

        def verify_qr(r: int) -> None:
            v = verifier(f"qr{r}")
            for text in batches_qr[r]:
                if not v.verify_qr(text, now=now).ok:
                    raise RuntimeError("bench presentation refused")
            misses.append(v.cache_misses)

        def verify_qr3(r: int) -> None:
            v = verifier(f"qr3-{r}")
            for text in batches_qr3[r]:
                if not v.verify_qr(text, now=now).ok:
                    raise RuntimeError("bench presentation refused")

        def verify_qr_cold(r: int) -> None:
            v = verifier(f"cold{r}", cache=0)
            for text in batches_qr[r]:
                if not v.verify_qr(text, now=now).ok:
                    raise RuntimeError("bench presentation refused")

        def verify_nfc(r: int) -> None:
            v = verifier(f"nfc{r}")
            for data, board in batches_nfc[r]:
                if not v.verify_nfc(data, board, now=now).ok:
                    raise RuntimeError("bench presentation refused")

        # The raw bound: cryptography's ES256 verify with a loaded key over a same-sized
        # message, measured right before and after each pipeline run (the machine's speed
        # drifts by tens of percent within seconds; each ratio compares neighbours).
        sample = decode_qr(batches_qr[0][0])
        key = ec.generate_private_key(ec.SECP256R1())
        der = key.sign(sample, ec.ECDSA(hashes.SHA256()))
        pub = key.public_key()
        algorithm = ec.ECDSA(hashes.SHA256())

        def raw() -> float:
            t = time.perf_counter()
            for _ in range(n):
                pub.verify(der, sample, algorithm)
            return n / (time.perf_counter() - t)

        def timed(fn: Callable[[int], None], r: int) -> float:
            t = time.perf_counter()
            fn(r)
            return n / (time.perf_counter() - t)

        rates: dict[str, list[float]] = {"qr": [], "qr3": [], "nfc": [], "cold": [], "raw": []}
        ratios: dict[str, list[float]] = {"qr": [], "qr3": [], "nfc": [], "cold": []}
        for r in range(repeats):
            before = raw()
            rates["raw"].append(before)
            runs = (("qr", verify_qr), ("qr3", verify_qr3), ("nfc", verify_nfc),
                    ("cold", verify_qr_cold))
            for name, fn in runs:
                rate = timed(fn, r)
                after = raw()
                rates[name].append(rate)
                rates["raw"].append(after)
                ratios[name].append(rate / ((before + after) / 2 / SIGNATURES_PER_PRESENTATION))
                before = after

    med = statistics.median
    qr_per_s, raw_per_s = med(rates["qr"]), med(rates["raw"])
    # Signatures the warm run really verified per presentation: the device's, plus the
    # issuer's on each cache miss (identical in every repeat: same inputs, fresh verifier).
    warm_signatures = 1 + max(misses) / n
    return {
        "verified_per_s": round(qr_per_s),
        "verified_qr_per_s": round(qr_per_s),
        "verified_nfc_per_s": round(med(rates["nfc"])),
        "verified_qr_cold_per_s": round(med(rates["cold"])),
        "raw_es256_verify_per_s": round(raw_per_s),
        "signatures_per_presentation": SIGNATURES_PER_PRESENTATION,
        "warm_signatures_per_presentation": round(warm_signatures, 3),
        "ratio": round(med(ratios["qr"]), 3),
        "ratio_range": f"{min(ratios['qr']):.3f}-{max(ratios['qr']):.3f}",
        "ratio_3_per_credential": round(med(ratios["qr3"]), 3),
        "ratio_nfc": round(med(ratios["nfc"]), 3),
        "ratio_cold": round(med(ratios["cold"]), 3),
        "ratio_fair": round(
            med(ratios["qr"]) * warm_signatures / SIGNATURES_PER_PRESENTATION, 3
        ),
        "presentation_bytes": len(sample),
        **_breakdown(sample, repeats),
    }


def _breakdown(presentation: bytes, repeats: int) -> dict[str, float]:
    """Where the time goes, per presentation, in microseconds (for docs/tokens.md)."""
    count = 2000
    sign1 = cose.parse_sign1(presentation, PRESENTATION_LIMITS)
    pres_claims = cbor_safe.decode(sign1.payload, cbor_safe.CborLimits(2048, 2, 16, 8))
    cred_sign1 = cose.parse_sign1(
        pres_claims[claims.PR_CREDENTIAL], PRESENTATION_LIMITS, frozenset((1, 4))
    )
    cred_payload = cred_sign1.payload
    cred_claims = cbor_safe.decode(cred_payload, CREDENTIAL_CLAIMS_LIMITS)
    cose_key = cred_claims[claims.CNF][claims.CNF_COSE_KEY]
    text = "CV1:" + __import__("comptoir.tokens.base45", fromlist=["encode"]).encode(presentation)

    def per_op(fn: Callable[[], object]) -> float:
        def loop() -> None:
            for _ in range(count):
                fn()

        return round(1e6 / _rate(count, loop, repeats), 1)

    with tempfile.TemporaryDirectory() as tmp:
        state = VerifierState(Path(tmp) / "commit.journal", pepper=b"bench-pepper-0123456789")
        counter = iter(range(1, 10**9))
        now = int(time.time())
        nir = claims.parse_credential(cred_claims, now).insured.nir

        def commit() -> None:
            i = next(counter)
            state.commit(
                now=now,
                credential_id=b"C" * 8,
                credential_expires=now + 86400,
                counter=i,
                nir=nir,
                generation=1,
                replay=(b"\x08" + b"C" * 8 + i.to_bytes(8, "big"), now + 300),
            )

        us_commit = per_op(commit)
        state.close()
    return {
        "us_replay_commit": us_commit,
        "us_base45_decode": per_op(lambda: decode_qr(text)),
        "us_cbor_scan_all": per_op(
            lambda: (
                cbor_safe.scan(presentation, PRESENTATION_LIMITS),
                cbor_safe.scan(cred_payload, CREDENTIAL_CLAIMS_LIMITS),
            )
        ),
        "us_cbor2_decode_credential_claims": per_op(
            lambda: __import__("cbor2").loads(cred_payload)
        ),
        "us_load_device_key": per_op(lambda: cose.parse_key(cose_key)),
        "us_parse_credential_claims": per_op(
            lambda: claims.parse_credential(cred_claims, int(time.time()))
        ),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k}: {v}")
