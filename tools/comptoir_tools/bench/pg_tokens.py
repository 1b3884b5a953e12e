"""Token verification with the shared replay check on PostgreSQL, beside the SQLite-era journal,
in the same run (issue 17).

    from comptoir_tools.bench.pg_tokens import run
    figures = run(url)   # url: a database on a durable server (bench.pg.durable_server)

The same inputs as bench_tokens (40 phones presenting 15 times each, every presentation
distinct, a fresh verifier per repeat, this process pinned to one core): each repeat verifies
the batch once with the journal (`replay.VerifierState`, the one-counter default) and once with
the shared state (`replay_pg.PgVerifierState`: one transaction per presentation, its COMMIT
synchronous), each between two raw ES256 measurements (ratio = verified / (raw / 2), as in
the token section). The server runs outside this process (its work is on the other core).

`us_round_trip_pg` is one `SELECT 1` on the same connection (a commit takes 5: BEGIN, three
statements, COMMIT). `fsync_floor_us` is one 8 kB write + fdatasync on the server's file
system, measured right before and after each PostgreSQL run (`pg_over_ceiling`: that run's
rate over 1e6 / its floor, median): a synchronous COMMIT waits for one such flush of the
write-ahead log, so a single verifying thread cannot exceed 1e6 / fsync_floor_us
presentations per second on this disk.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from comptoir.storage.postgres import open_pool
from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.replay import VerifierState
from comptoir.tokens.replay_pg import PgVerifierState
from comptoir.tokens.status import StatusLists
from comptoir.tokens.verify import Verifier, decode_qr
from comptoir_tools.bench.tokens import (
    SIGNATURES_PER_PRESENTATION,
    _pin_one_core,
    trusted_pki,
)
from comptoir_tools.credentials.identities import family
from comptoir_tools.credentials.wallet import Wallet

PEPPER = b"bench-pepper-0123456789"


def fsync_floor_us(directory: str | Path, count: int = 200) -> float:
    """Median microseconds of one 8 kB write + fdatasync in `directory` (the WAL's flush)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix="fsync-probe-")
    try:
        block = b"\0" * 8192
        times = []
        for _ in range(count):
            os.lseek(fd, 0, os.SEEK_SET)
            t = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e6
    finally:
        os.close(fd)
        os.unlink(name)


def run(url: str, presentations: int = 600, wallets: int = 40, repeats: int = 5,
        probe_dir: str | Path | None = None) -> dict[str, Any]:
    restore = _pin_one_core()
    try:
        return _run(url, presentations, wallets, repeats, probe_dir)
    finally:
        restore()


def _run(url: str, n: int, n_wallets: int, repeats: int,
         probe_dir: str | Path | None) -> dict[str, Any]:
    now = int(time.time())
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    pki, trust = trusted_pki(now)
    issuer = pki.issuers[0]
    phones = []
    for i in range(n_wallets):
        credential, device = issuer.activate(family(1000 + i, beneficiaries=2, today=today),
                                             now=now - 60)
        phones.append(Wallet(credential, device))
    status = StatusLists(trust)
    status.load(issuer.status_list(now=now), now)
    # Presented in the order made: each phone's counter only grows, run after run.
    batches = {kind: [[phones[i % n_wallets].present_qr(now=now) for i in range(n)]
                      for _ in range(repeats)] for kind in ("journal", "pg")}
    registry = ChallengeRegistry(per_board=n + 1, ttl=3600)

    sample = decode_qr(batches["pg"][0][0])
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(sample, ec.ECDSA(hashes.SHA256()))
    pub, algorithm = key.public_key(), ec.ECDSA(hashes.SHA256())

    def raw() -> float:
        t = time.perf_counter()
        for _ in range(n):
            pub.verify(der, sample, algorithm)
        return n / (time.perf_counter() - t)

    pool = open_pool(url, min_size=1, max_size=1, name="bench-verifier")
    pool.wait(10)
    try:
        pg_state = PgVerifierState(pool, pepper=PEPPER)  # creates the tables
        with tempfile.TemporaryDirectory() as tmp:
            def verify(kind: str, r: int) -> float:
                state: Any
                if kind == "pg":
                    with pool.connection() as conn:  # a fresh state, as a fresh journal
                        conn.execute("TRUNCATE verifier_activations, verifier_presentations, "
                                     "verifier_credentials")
                    state = pg_state
                else:
                    state = VerifierState(Path(tmp) / f"{kind}{r}.journal", pepper=PEPPER)
                v = Verifier(trust, status, state, registry)
                t = time.perf_counter()
                for text in batches[kind][r]:
                    if not v.verify_qr(text, now=now).ok:
                        raise RuntimeError("bench presentation refused")
                rate = n / (time.perf_counter() - t)
                if kind != "pg":
                    state.close()
                return rate

            rates: dict[str, list[float]] = {"journal": [], "pg": [], "raw": []}
            ratios: dict[str, list[float]] = {"journal": [], "pg": []}
            probe = probe_dir or tempfile.gettempdir()
            floors: list[float] = []
            ceiling: list[float] = []  # PostgreSQL's rate over the WAL flush's ceiling, then
            before = raw()
            for r in range(repeats):
                for kind in ("journal", "pg"):
                    if kind == "pg":
                        f0 = fsync_floor_us(probe, 50)
                        rate = verify(kind, r)
                        f1 = fsync_floor_us(probe, 50)
                        floors += [f0, f1]
                        ceiling.append(rate * (f0 + f1) / 2 / 1e6)
                    else:
                        rate = verify(kind, r)
                    after = raw()
                    rates[kind].append(rate)
                    rates["raw"].append(after)
                    ratios[kind].append(rate / ((before + after) / 2
                                                / SIGNATURES_PER_PRESENTATION))
                    before = after
            with pool.connection() as conn:  # what one round trip to the server costs now
                trips = []
                for _ in range(300):
                    t = time.perf_counter()
                    conn.execute("SELECT 1").fetchone()
                    trips.append(time.perf_counter() - t)
            commit_us = {"journal": _commit_us(VerifierState(Path(tmp) / "c.journal",
                                                             pepper=PEPPER), now),
                         "pg": _commit_us(pg_state, now, count=300)}
    finally:
        pool.close()
    med = statistics.median
    return {
        "verified_journal_per_s": round(med(rates["journal"])),
        "verified_pg_per_s": round(med(rates["pg"])),
        "raw_es256_verify_per_s": round(med(rates["raw"])),
        "ratio_journal": round(med(ratios["journal"]), 3),
        "ratio_pg": round(med(ratios["pg"]), 3),
        "ratio_pg_range": f"{min(ratios['pg']):.3f}-{max(ratios['pg']):.3f}",
        "pg_over_journal": round(med(rates["pg"]) / med(rates["journal"]), 3),
        "us_replay_commit_journal": round(commit_us["journal"], 1),
        "us_replay_commit_pg": round(commit_us["pg"], 1),
        "us_round_trip_pg": round(statistics.median(trips) * 1e6, 1),
        "fsync_floor_us": round(med(floors), 1),
        "pg_single_thread_ceiling_per_s": round(1e6 / med(floors)),
        "pg_over_ceiling": round(med(ceiling), 2),
        "presentations": n,
        "repeats": repeats,
    }


def _commit_us(state: Any, now: int, count: int = 2000) -> float:
    """Median microseconds of one accepted commit (distinct presentations, one person)."""
    nir = "180017512345645"
    times = []
    for i in range(1, count + 1):
        t = time.perf_counter()
        reason = state.commit(now=now, credential_id=b"C" * 8, credential_expires=now + 86400,
                              counter=i, nir=nir, generation=1,
                              replay=(b"\x08" + b"C" * 8 + i.to_bytes(8, "big"), now + 300))
        times.append(time.perf_counter() - t)
        if reason is not None:
            raise RuntimeError(f"bench commit refused: {reason}")
    if isinstance(state, VerifierState):
        state.close()
    return statistics.median(times) * 1e6


def rows(r: dict[str, Any]) -> str:
    return "\n".join(f"| {k} | {v} |" for k, v in r.items())


