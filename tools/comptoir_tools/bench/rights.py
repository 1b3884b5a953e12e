"""Rights cache benchmark: look-up latency, sync throughput, size per person, growth.

    from comptoir_tools.bench.rights import run, markdown
    figures = run()                  # sizes 10 000, 100 000, 1 000 000 persons
    print(markdown(figures))
    python -m comptoir_tools.bench.rights [--sizes 10000,100000]

For each size, a cache is built with one bulk insert per 50 000 rows (every row sealed as in
production: HMAC lookup keys, AES-GCM, CBOR) from cheap synthetic persons (two per insured
NIR; NIRs with valid keys in commune codes 990-999, names "BENCH-n": nobody real). Then:
- look-up: `RightsCache.rights_for` on random persons (keyed hash, indexed read, decrypt,
  decode, identity check, policy), p50/p99 in microseconds; goal p99 <= 1 ms;
- raw: a bare SQLite read of the same row by the same primary key, precomputed keys, nothing
  else: what the storage alone costs (ratio = look-up / raw);
- sync: families per second through the real HTTP client and the simulated service (batches
  of 200) and the merge into the cache, on a sample of cached families;
- scan: rows per second decrypted by a full pass (what a full sync or a rebuild costs);
- size: database bytes per person after a checkpoint.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2

from comptoir.rights import RightsCache, RightsClient, StalenessPolicy
from comptoir.rights.model import QUALITY_INSURED, BeneficiaryId, Names, RightsRecord, Sourced
from comptoir.rights.model import Source as Src
from comptoir.tokens.model import Affiliation, AmcContract, Beneficiary, BirthDate, InsuredPerson
from comptoir.tokens.model import Period as P
from comptoir.tokens.nir import with_key
from comptoir_tools.credentials.identities import Family
from comptoir_tools.simulators.rights_service import RightsService

NOW = 1_790_000_000
PER_FAMILY = 2
CHUNK = 50_000
ROUNDS = 5
_DEPTS = [d for d in range(1, 96) if d != 20]
_RIGHTS = (P(dt.date(2025, 1, 1), dt.date(2027, 12, 31)),)
_AFF = Affiliation(1, 751, 1234)
_AMC = AmcContract(99_000_001, 1, _RIGHTS[0], 15)


def bench_nir(i: int) -> str:
    """A distinct valid NIR for family i (up to ~11 million), in unassigned commune codes."""
    order = i % 999 + 1
    r = i // 999
    commune = 990 + r % 10
    r //= 10
    month = r % 12 + 1
    r //= 12
    dept = _DEPTS[r % len(_DEPTS)]
    year = (r // len(_DEPTS)) % 100
    return with_key(f"1{year:02d}{month:02d}{dept:02d}{commune:03d}{order:03d}")


def person(i: int) -> BeneficiaryId:
    fam = i // PER_FAMILY
    if i % PER_FAMILY == 0:
        return BeneficiaryId(bench_nir(fam), 19800101 + fam % 28, 1, QUALITY_INSURED)
    return BeneficiaryId(bench_nir(fam), 20100101 + fam % 28, 1 + i % PER_FAMILY, 6)


def record(i: int, obtained_at: int = NOW) -> RightsRecord:
    def s(v: Any) -> Sourced[Any]:
        return Sourced(v, Src.SERVICE, obtained_at)

    return RightsRecord(
        person(i),
        names=s(Names("BENCH", f"N{i}")),
        amo=s(_RIGHTS),
        affiliation=s(_AFF),
        exemptions=s(()),
        css=s(None),
        amc=s(_AMC),
    )


def bench_family(fam: int) -> Family:
    """The service's view of synthetic family `fam` (same identities as `person`)."""
    ins = person(fam * PER_FAMILY)
    child = person(fam * PER_FAMILY + 1)
    insured = InsuredPerson(
        ins.nir, "BENCH", f"N{fam * PER_FAMILY}", BirthDate.from_int(ins.birth_date), _RIGHTS, ()
    )
    ben = Beneficiary(
        ins.nir,
        1,
        BirthDate.from_int(child.birth_date),
        child.birth_rank,
        child.quality,
        "BENCH",
        f"N{fam * PER_FAMILY + 1}",
        _RIGHTS,
        (),
    )
    return Family(insured, (ben,), _AFF, _AMC, "mainland")


def _chunks(n: int) -> Iterator[range]:
    for start in range(0, n, CHUNK):
        yield range(start, min(n, start + CHUNK))


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _one(size: int, directory: Path, lookups: int, sync_families: int) -> dict[str, float]:
    db = directory / f"rights-{size}.db"
    key = directory / "rights.key"
    cache = RightsCache.open(
        db, key, policy=StalenessPolicy(), clock=lambda: NOW, verify_rows="none"
    )
    store = cache.store
    store._db.execute("PRAGMA cache_size=-262144")  # 256 MiB while building: b-tree in memory
    t = time.perf_counter()
    cipher = cache._cipher
    for rng_ in _chunks(size):
        records = [record(i) for i in rng_]
        store.insert_new(records)
        # One roster row per family, as production writes (the member list of the snapshot).
        rosters = []
        for j in range(0, len(records), PER_FAMILY):
            nir = records[j].who.nir
            keys = sorted(cipher.lookup(r.who.canonical()) for r in records[j : j + PER_FAMILY])
            fam_key = cipher.family(nir)
            blob = cipher.seal(fam_key, cbor2.dumps([NOW, int(Src.SERVICE), keys]))
            rosters.append(("rosters", fam_key, blob))
        store.put_sealed(rosters)
    build_s = time.perf_counter() - t
    store.checkpoint()
    store._db.execute("PRAGMA cache_size=-8192")  # back to a daemon's 8 MiB for the reads
    db_bytes = db.stat().st_size

    rnd = random.Random(size)
    picks = [rnd.randrange(size) for _ in range(lookups)]
    whos = [person(i) for i in picks]
    for who in whos[:1000]:  # warm-up
        cache.rights_for(who, NOW)
    lat: list[float] = []
    round_p99 = []
    for r in range(ROUNDS):  # per-round p99s: one burst of load from other jobs spoils one
        part = []
        for who in whos[r::ROUNDS]:
            t0 = time.perf_counter_ns()
            answer = cache.rights_for(who, NOW)
            part.append((time.perf_counter_ns() - t0) / 1000)
            if answer.record is None or answer.record.who != who:
                raise AssertionError("benchmark look-up returned the wrong person")
        round_p99.append(_pct(part, 0.99))
        lat += part

    keys = [cipher.lookup(w.canonical()) for w in whos]
    raw_db = sqlite3.connect(str(db), isolation_level=None)
    raw_db.execute("PRAGMA cache_size=-8192")
    raw = []
    for k in keys:
        t0 = time.perf_counter_ns()
        raw_db.execute("SELECT row FROM persons WHERE lookup = ?", (k,)).fetchone()
        raw.append((time.perf_counter_ns() - t0) / 1000)
    raw_db.close()

    scan_n = min(size, 100_000)
    t = time.perf_counter()
    for n, _ in enumerate(store.records(), 1):
        if n >= scan_n:
            break
    scan_rate = scan_n / (time.perf_counter() - t)

    families = rnd.sample(range(size // PER_FAMILY), min(sync_families, size // PER_FAMILY))
    svc = RightsService(now=lambda: NOW + 3600)
    for f in families:
        svc.add_family(bench_family(f))
    with svc:
        cache.client = RightsClient(svc.url)
        nirs = [bench_nir(f) for f in families]
        t = time.perf_counter()
        for i in range(0, len(nirs), 200):
            for nir, recs in cache.client.families(nirs[i : i + 200]).items():
                cache.record_service(nir, recs)
        sync_s = time.perf_counter() - t
    cache.close()
    for suffix in ("", "-wal", "-shm"):
        p = db.with_name(db.name + suffix)
        if p.exists():
            p.unlink()
    return {
        "persons": size,
        "build_persons_per_s": size / build_s,
        "lookup_p50_us": statistics.median(lat),
        "lookup_p99_us": _pct(lat, 0.99),
        "lookup_p99_median_round_us": statistics.median(round_p99),
        "raw_p50_us": statistics.median(raw),
        "raw_p99_us": _pct(raw, 0.99),
        "lookup_over_raw_p99": _pct(lat, 0.99) / _pct(raw, 0.99),
        "sync_families_per_s": len(families) / sync_s,
        "sync_persons_per_s": len(families) * PER_FAMILY / sync_s,
        "scan_rows_per_s": scan_rate,
        "db_bytes": db_bytes,
        "bytes_per_person": db_bytes / size,
    }


def run(
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000),
    *,
    lookups: int = 20_000,
    sync_families: int = 2_000,
    directory: str | Path | None = None,
) -> dict[str, Any]:
    """Figures per size, and growth from the smallest size to the largest."""
    with tempfile.TemporaryDirectory(prefix="bench-rights-", dir=directory) as tmp:
        per_size = {}
        for size in sizes:
            per_size[size] = _one(size, Path(tmp), lookups, sync_families)
            print(f"bench_rights: {size} persons: {per_size[size]}", file=sys.stderr, flush=True)
    small, big = per_size[min(sizes)], per_size[max(sizes)]
    growth = {
        f"growth_{k}": big[k] / small[k]
        for k in (
            "lookup_p50_us",
            "lookup_p99_us",
            "raw_p99_us",
            "sync_families_per_s",
            "bytes_per_person",
        )
    }
    return {
        "sizes": per_size,
        **growth,
        "goal_p99_us": 1000.0,
        "goal_met": all(v["lookup_p99_median_round_us"] <= 1000 for v in per_size.values()),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def markdown(figures: dict[str, Any]) -> str:
    sizes = figures["sizes"]
    keys = list(next(iter(sizes.values())))
    head = "| figure | " + " | ".join(f"{s:,}" for s in sizes) + " |\n"
    head += "|---|" + "---|" * len(sizes) + "\n"
    rows = "".join(
        f"| {k} | "
        + " | ".join(
            f"{v[k]:,.1f}" if isinstance(v[k], float) else f"{v[k]:,}" for v in sizes.values()
        )
        + " |\n"
        for k in keys
        if k != "persons"
    )
    growth = "".join(f"- {k}: ×{v:.2f}\n" for k, v in figures.items() if k.startswith("growth_"))
    return (
        "## Offline rights cache (issue 7)\n\n"
        f"Goal: look-up p99 ≤ 1 ms (met: {figures['goal_met']}). `raw` is a bare SQLite read of "
        "the same row by primary key. Load average at the end: "
        + ", ".join(f"{x:.1f}" for x in figures["load_average"])
        + f" on {figures['cpus']} CPUs."
        "\n\n" + head + rows + "\nGrowth, largest size over "
        "smallest:\n\n" + growth
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench_rights",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--lookups", type=int, default=20_000)
    args = ap.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(markdown(run(sizes, lookups=args.lookups)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
