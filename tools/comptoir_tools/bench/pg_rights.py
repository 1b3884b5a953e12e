"""Rights cache look-ups at 1 000 000 persons on PostgreSQL beside SQLite, same rows, same run
(issue 17).

    from comptoir_tools.bench.pg_rights import run
    figures = run(url, size=1_000_000)

The rows are the store's own: `RightsStore._seal` (HMAC lookup and family keys, CBOR, AES-GCM
with the lookup key as associated data) over bench_rights' synthetic persons (two per family,
one roster row per family sealed as the store seals it), made by worker processes with one key
file. The first `sample` persons go through the store's real write path on both backends
(`RightsStore.insert_new`: one transaction, timed); the rest are bulk-loaded in the same format
(SQLite: executemany of the sealed rows in one transaction; PostgreSQL: COPY), then PostgreSQL
is VACUUM ANALYZEd (what autovacuum does to a loaded table). Both caches are then read through
`RightsCache.rights_for` (keyed hash, indexed read, decrypt, decode, identity check, policy),
in alternating rounds, and by a bare read of the same row by primary key (`raw`: sqlite3, or
psycopg with a prepared statement). Goal: look-up p99 <= 1 ms.
"""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import statistics
import tempfile
import time
import types
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import cbor2
import psycopg

from comptoir.rights import RightsCache, StalenessPolicy
from comptoir.rights.crypto import RowCipher, load_or_create_key
from comptoir.rights.model import Source
from comptoir.rights.store import RightsStore
from comptoir.rights.store_pg import SCHEMA as PG_SCHEMA
from comptoir_tools.bench.rights import NOW, PER_FAMILY, _pct, person, record

ROUNDS = 5
CHUNK = 20_000


def _seal_worker(pipe: Pipe, key_path: str) -> None:
    cipher = RowCipher(load_or_create_key(key_path))
    sealer = types.SimpleNamespace(_cipher=cipher)  # RightsStore._seal needs only the cipher
    while True:
        job = pipe.recv()
        if job is None:
            return
        lo, hi = job
        persons = [RightsStore._seal(sealer, record(i))  # type: ignore[arg-type]
                   for i in range(lo, hi)]
        rosters = []
        for f in range(lo // PER_FAMILY, hi // PER_FAMILY):
            keys = sorted(cipher.lookup(person(f * PER_FAMILY + k).canonical())
                          for k in range(PER_FAMILY))
            fam = cipher.family(person(f * PER_FAMILY).nir)
            rosters.append((fam, cipher.seal(fam, cbor2.dumps([NOW, int(Source.SERVICE),
                                                               keys]))))
        pipe.send((lo, persons, rosters))


def sealed_rows(key_path: Path, lo: int, hi: int, workers: int = 2):  # type: ignore[no-untyped-def]
    """Yield (lo, persons, rosters): the row lists for persons lo..hi, CHUNK at a time, sealed by
    `workers` processes (two chunks in flight per worker)."""
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for _ in range(workers):
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=_seal_worker, args=(theirs, str(key_path)), daemon=True)
        p.start()
        pipes.append(mine)
        procs.append(p)
    chunks = [(a, min(hi, a + CHUNK)) for a in range(lo, hi, CHUNK)]
    try:
        inflight: list[tuple[Pipe, tuple[int, int]]] = []
        k = 0
        while k < len(chunks) or inflight:
            while k < len(chunks) and len(inflight) < 2 * workers:
                pipe = pipes[k % workers]
                pipe.send(chunks[k])
                inflight.append((pipe, chunks[k]))
                k += 1
            pipe, _ = inflight.pop(0)
            yield pipe.recv()
    finally:
        for pipe in pipes:
            pipe.send(None)
        for p in procs:
            p.join(timeout=10)


def _lookups(cache: RightsCache, whos: list[Any]) -> list[float]:
    out = []
    for who in whos:
        t0 = time.perf_counter_ns()
        answer = cache.rights_for(who, NOW)
        out.append((time.perf_counter_ns() - t0) / 1000)
        if answer.record is None or answer.record.who != who:
            raise AssertionError("benchmark look-up returned the wrong person")
    return out


def _raw(execute: Any, keys: list[bytes]) -> list[float]:
    out = []
    for k in keys:
        t0 = time.perf_counter_ns()
        if execute(k) is None:
            raise AssertionError("raw read found no row")
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def run(url: str, size: int = 1_000_000, *, lookups: int = 20_000, sample: int = CHUNK,
        workers: int = 2, directory: str | Path | None = None) -> dict[str, Any]:
    sample = min(sample, size)
    with tempfile.TemporaryDirectory(prefix="bench-pg-rights-", dir=directory) as tmp:
        key = Path(tmp) / "rights.key"
        load_or_create_key(key)
        db_path = Path(tmp) / "rights.db"
        caches = {
            "sqlite": RightsCache.open(db_path, key, policy=StalenessPolicy(),
                                       clock=lambda: NOW, verify_rows="none"),
            "pg": RightsCache.open(db_path, key, policy=StalenessPolicy(), clock=lambda: NOW,
                                   verify_rows="none", url=url),
        }
        cipher = caches["sqlite"]._cipher
        out: dict[str, Any] = {"persons": size, "sample": sample, "lookups": lookups}
        # 1. The store's real write path on the first `sample` persons, timed on both.
        first = [record(i) for i in range(sample)]
        for name, cache in caches.items():
            t = time.perf_counter()
            cache.store.insert_new(first)
            out[f"{name}_insert_new_per_s"] = round(sample / (time.perf_counter() - t))
        # 2. The rest (and every roster) in the same format, bulk-loaded.
        lite = sqlite3.connect(str(db_path), isolation_level=None)
        lite.execute("PRAGMA cache_size=-262144")
        pg = psycopg.connect(url, autocommit=True, options=f"-c search_path={PG_SCHEMA}")
        t = time.perf_counter()
        lite.execute("BEGIN IMMEDIATE")
        seal_s = copy_s = 0.0
        t_seal = time.perf_counter()
        for lo, persons, rosters in sealed_rows(key, 0, size, workers):
            seal_s += time.perf_counter() - t_seal
            t_copy = time.perf_counter()
            fresh = persons[max(0, sample - lo):]  # the sample's persons are stored already
            lite.executemany("INSERT INTO persons VALUES (?, ?, ?, ?)", fresh)
            lite.executemany("INSERT INTO rosters VALUES (?, ?)", rosters)
            with pg.cursor() as cur:
                with cur.copy("COPY persons (lookup, family, obtained_at, row) FROM STDIN") as cp:
                    for row in fresh:
                        cp.write_row(row)
                with cur.copy("COPY rosters (family, row) FROM STDIN") as cp:
                    for row in rosters:
                        cp.write_row(row)
            copy_s += time.perf_counter() - t_copy
            t_seal = time.perf_counter()
        lite.execute("COMMIT")
        lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pg.execute("VACUUM ANALYZE persons")
        pg.execute("VACUUM ANALYZE rosters")
        out["bulk_load_s"] = round(time.perf_counter() - t, 1)
        out["bulk_seal_wait_s"] = round(seal_s, 1)
        out["bulk_write_s"] = round(copy_s, 1)
        counts = {n: c.store.counts() for n, c in caches.items()}
        for n, c in counts.items():
            if c.persons != size:
                raise AssertionError(f"{n}: {c.persons} persons stored, not {size}")
            out[f"{n}_bytes_per_person"] = round(c.file_bytes / size, 1)
        out["pg_plan"] = " / ".join(r[0].strip() for r in pg.execute(
            "EXPLAIN SELECT row FROM persons WHERE lookup = %s", (b"x" * 16,)).fetchall())

        # 3. Look-ups, alternating rounds.
        rnd = random.Random(size)
        whos = [person(rnd.randrange(size)) for _ in range(lookups)]
        for cache in caches.values():
            _lookups(cache, whos[:1000])  # warm-up
        lat: dict[str, list[float]] = {"sqlite": [], "pg": []}
        round_p99: dict[str, list[float]] = {"sqlite": [], "pg": []}
        for r in range(ROUNDS):
            for name, cache in caches.items():
                part = _lookups(cache, whos[r::ROUNDS])
                lat[name] += part
                round_p99[name].append(_pct(part, 0.99))
        keys = [cipher.lookup(w.canonical()) for w in whos]
        lite.execute("PRAGMA cache_size=-8192")
        raw = {
            "sqlite": _raw(lambda k: lite.execute("SELECT row FROM persons WHERE lookup = ?",
                                                  (k,)).fetchone(), keys),
            "pg": _raw(lambda k: pg.execute("SELECT row FROM persons WHERE lookup = %s", (k,),
                                            prepare=True).fetchone(), keys),
        }
        lite.close()
        pg.close()
        for cache in caches.values():
            cache.close()
    for name in ("sqlite", "pg"):
        out[f"{name}_lookup_p50_us"] = round(statistics.median(lat[name]), 1)
        out[f"{name}_lookup_p99_us"] = round(_pct(lat[name], 0.99), 1)
        out[f"{name}_lookup_p99_median_round_us"] = round(statistics.median(round_p99[name]), 1)
        out[f"{name}_raw_p50_us"] = round(statistics.median(raw[name]), 1)
        out[f"{name}_raw_p99_us"] = round(_pct(raw[name], 0.99), 1)
        out[f"{name}_lookup_over_raw_p99"] = round(_pct(lat[name], 0.99)
                                                   / _pct(raw[name], 0.99), 2)
    out["pg_over_sqlite_p99"] = round(out["pg_lookup_p99_us"] / out["sqlite_lookup_p99_us"], 2)
    out["goal_p99_us"] = 1000
    out["goal_met_pg"] = out["pg_lookup_p99_median_round_us"] <= 1000
    return out

