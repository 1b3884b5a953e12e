"""Transactions per second across 3 counters' daemons sharing one PostgreSQL, beside the same 3
processes each on its own SQLite files, same run (issue 17).

    from comptoir_tools.bench.pg_counters import run
    figures = run(url)

Each counter is a separate process with its own stores and connections, opened as `comptoir
run` opens them (`stores.open_biller` and `stores.open_transactions` from a `Config`, the
verifier's state as `presentations.load_verifier` makes it: `replay_pg.open_shared_state` with
the shared pepper, or the journal in the counter's state directory). Not the boards, link, API
or event thread: each process runs the transaction path itself, one presentation after the
other, as fast as it can. A transaction is: the QR presentation verified (two ES256
signatures on the first sight of a phone, then the device's one; the shared replay and
activation check committed), the transaction opened (sealed, inserted), the care sheet
recorded by the billing journal (priced, numbered per FINESS: on PostgreSQL under the
journal's advisory lock, so the 3 counters take turns) and the transaction marked dispensed.
Each counter has its own 20 phones (one insured person each), presented `per_counter` times in
turn; all 3 start together and the figure is transactions / wall time of the slowest.

Afterwards the shared journal must hold every care sheet once, numbered 1..n for the FINESS.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import queue
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from comptoir.billing.identifiers import ean13_complete, luhn_complete
from comptoir.billing.model import LineInput, TiersPayant
from comptoir.config import Config, PathsConfig, StorageConfig
from comptoir.storage import load_or_create_key
from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.model import Verified
from comptoir.tokens.replay import VerifierState, load_pepper
from comptoir.tokens.status import StatusLists
from comptoir.tokens.trust import TrustStore
from comptoir.tokens.verify import Verifier
from comptoir.transactions.model import DispenseRequest

COUNTERS = 3
PHONES = 20
# Numbers no real establishment, professional or product has (billing_synth's ranges).
FINESS = luhn_complete("00123456")
PHARMACIST, PRESCRIBER = luhn_complete("9912345678"), luhn_complete("9900000000")
CIP = ean13_complete("340099900001")


def _counter(index: int, root: str, url: str, n: int, start: Any, done: Any) -> None:
    from comptoir import stores
    from comptoir_tools.credentials.identities import family
    from comptoir_tools.credentials.pki import TestPki
    from comptoir_tools.credentials.wallet import Wallet

    now = int(time.time())
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    pki = TestPki(seed=17, now=now)
    trust = TrustStore([pki.anchor])
    trust.load(pki.trust_list(now=now), now)
    issuer = pki.issuers[0]
    phones = []
    for k in range(PHONES):
        credential, device = issuer.activate(
            family(17_000 + index * 100 + k, beneficiaries=0, today=today), now=now - 60)
        phones.append(Wallet(credential, device))
    status = StatusLists(trust)
    status.load(issuer.status_list(now=now), now)
    texts = [phones[i % PHONES].present_qr(now=now) for i in range(n)]

    base = Path(root)
    here = base / f"counter{index}"
    cfg = Config(paths=PathsConfig(data_dir=here / "data", keys_dir=base / "keys"),
                 storage=StorageConfig(url=url))
    (here / "data").mkdir(parents=True, exist_ok=True)
    pepper = load_pepper(base / "keys" / "pepper")  # copied by the installer: one file here
    state: Any
    if url:
        from comptoir.tokens.replay_pg import open_shared_state

        state = open_shared_state(url, None, pepper=pepper)
    else:
        state = VerifierState(here / "verifier.journal", pepper=pepper)
    verifier = Verifier(trust, status, state, ChallengeRegistry())
    biller = stores.open_biller(cfg)
    store = stores.open_transactions(cfg, biller, None)
    req = DispenseRequest(person=0, finess=FINESS, pharmacist_rpps=PHARMACIST,
                          prescriber_rpps=PRESCRIBER, prescribed_on=today - dt.timedelta(days=2),
                          dispensed_on=today, lines=(LineInput(CIP, 1, 1000, 1000, 65),),
                          tiers_payant=TiersPayant(amo=True, amc=False))
    try:
        start.wait()
        t0 = time.perf_counter()
        for text in texts:
            v = verifier.verify_qr(text, now=now)
            if not isinstance(v, Verified):
                raise RuntimeError(f"counter {index}: presentation refused: {v}")
            tx = store.create(v, board_id=f"bench-{index}", port="bench")
            store.dispense(tx.id, req)
        done.put((index, time.perf_counter() - t0, n))
    finally:
        store.close()
        biller.close()
        state.close()


def _round(url: str, per_counter: int, counters: int) -> dict[str, Any]:
    root = tempfile.mkdtemp(prefix="bench-counters-")
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    try:
        keys = Path(root) / "keys"
        keys.mkdir(mode=0o700)
        for name in ("transactions.key", "billing.key", "rights.key"):
            load_or_create_key(keys / name)
        load_pepper(keys / "pepper")
        procs = [ctx.Process(target=_counter, args=(i, root, url, per_counter, start, done),
                             daemon=True) for i in range(counters)]
        for p in procs:
            p.start()
        time.sleep(0.5)
        start.set()
        t0 = time.perf_counter()
        results: list[tuple[int, float, int]] = []
        while len(results) < len(procs):
            try:
                results.append(done.get(timeout=1.0))
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a counter process failed (its error is above)") from None
        wall = time.perf_counter() - t0
        for p in procs:
            p.join(timeout=30)
            if p.exitcode != 0:
                raise RuntimeError(f"a counter process failed (exit {p.exitcode})")
        total = sum(r[2] for r in results)
        out = {"transactions": total, "wall_s": round(wall, 2),
               "per_s": round(total / wall, 1),
               "per_counter_per_s": [round(r[2] / r[1], 1) for r in sorted(results)]}
        if url:
            out.update(_check(url, total))
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check(url: str, total: int) -> dict[str, Any]:
    """Every care sheet once, numbered 1..n for the FINESS, across the counters."""
    import psycopg

    with psycopg.connect(url) as db:
        numbers = [r[0] for r in db.execute(
            "SELECT invoice_no FROM sheet WHERE finess = %s ORDER BY invoice_no", (FINESS,))]
        row = db.execute("SELECT count(*) FROM tx WHERE state = 'dispensed'").fetchone()
        tx = row[0] if row else 0
    if numbers != list(range(1, total + 1)) or tx != total:
        raise AssertionError(f"shared journal: {len(numbers)} sheets for {total} transactions"
                             f" ({tx} dispensed), numbering gapless: "
                             f"{numbers == list(range(1, len(numbers) + 1))}")
    return {"sheets_numbered_1_to_n": True}


def run(url: str, per_counter: int = 600, counters: int = COUNTERS) -> dict[str, Any]:
    """The SQLite round (each counter its own files), then the PostgreSQL round (one server)."""
    lite = _round("", per_counter, counters)
    pg = _round(url, per_counter, counters)
    return {"counters": counters, "per_counter": per_counter, "sqlite": lite, "pg": pg,
            "pg_over_sqlite": round(pg["per_s"] / lite["per_s"], 3),
            "cpus": os.cpu_count()}
