"""`make bench`'s PostgreSQL sections (issue 17): each figure beside SQLite's, same run.

Each section starts its own server (`pg_local.start_server(durable=True)`: initdb in a
temporary folder, unix socket, run as `nobody` under root) with fsync, full page writes and
synchronous commits on, so that a COMMIT waits for the write-ahead log on disk as on a
pharmacy's server; the daemons' connections ask for synchronous commits anyway
(storage/postgres.py, DURABLE). The server runs on the same machine as the bench.

    python -m comptoir_tools.bench.pg tokens_pg     # one section, printed
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import psycopg

from comptoir_tools.testkit import pg_local

SIZE = int(os.environ.get("COMPTOIR_BENCH_PG_SIZE", "1000000"))
# Each section's run() arguments beyond the defaults (tests/tools/test_bench_pg.py shrinks them).
ARGS: dict[str, dict[str, Any]] = {"tokens": {}, "rights": {}, "billing": {}, "counters": {}}


@contextlib.contextmanager
def durable_server() -> Iterator[tuple[pg_local.PgServer, str]]:
    with pg_local.local_server(durable=True) as server:
        yield server, server.url(server.new_database())


def settings(url: str) -> str:
    """The server's version and the settings that matter for the figures, as it reports them."""
    with psycopg.connect(url) as db:
        def show(name: str) -> str:
            row = db.execute(f"SHOW {name}").fetchone()
            return str(row[0]) if row else "?"

        version = show("server_version")
        names = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
                 "shared_buffers")
        values = {n: show(n) for n in names}
    return (f"PostgreSQL {version} on this machine (unix socket), "
            + ", ".join(f"{k}={v}" for k, v in values.items())
            + " (the daemons' sessions set synchronous_commit=on themselves)")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5 min: {five:.1f})"


def _inputs(start: str, url: str) -> str:
    return (f"Inputs: {os.cpu_count()} cores shared with other engineers' test runs (load "
            f"average {start} at start, {_load()} at the end): absolute figures carry that "
            "load; the ratios against a baseline measured in the same run are the figures that "
            f"count. Server: {settings(url)}.")


def _table(rows: list[tuple[str, Any, Any]]) -> str:
    return ("| figure | SQLite | PostgreSQL |\n|---|---|---|\n"
            + "\n".join(f"| {k} | {a} | {b} |" for k, a, b in rows) + "\n")


def section_tokens() -> str:
    from comptoir_tools.bench import pg_tokens as bench_pg_tokens

    start = _load()
    with durable_server() as (server, url):
        r = bench_pg_tokens.run(url, probe_dir=server.folder, **ARGS["tokens"])
        inputs = _inputs(start, url)
    return (
        "## Token verification with the shared replay check, PostgreSQL (issue 17)\n\n"
        "The token section's warm run (40 phones presenting 15 times each, "
        f"{r['presentations']} distinct presentations, a fresh state per repeat, this "
        "process pinned to one core, medians "
        f"of {r['repeats']} repeats), once with the one-counter journal "
        "(`replay.VerifierState`) and once with the state every counter shares "
        "(`replay_pg.PgVerifierState`: one transaction per presentation, upsert of the "
        "activation, insert of the replay key, counter update, COMMIT synchronous), each "
        "between two raw ES256 measurements: ratio = verified / (raw / 2), the issue 4 "
        "figure. Fsync floor: one 8 kB write + fdatasync on the server's disk, measured right "
        "before and after each PostgreSQL run; "
        "every accepted presentation waits for one such flush of the server's WAL, so one "
        "verifying thread cannot pass 1e6 / floor presentations/s, whatever the "
        "code. " + inputs + "\n\n"
        + _table([
            ("verified/s", r["verified_journal_per_s"], r["verified_pg_per_s"]),
            ("ratio (goal ≥ 0.85 on SQLite)", f"**{r['ratio_journal']}**",
             f"**{r['ratio_pg']}** ({r['ratio_pg_range']})"),
            ("µs per replay commit", r["us_replay_commit_journal"], r["us_replay_commit_pg"]),
            ("µs per round trip to the server (SELECT 1)", "-", r["us_round_trip_pg"]),
        ])
        + f"\nraw ES256 verifications/s: {r['raw_es256_verify_per_s']}; PostgreSQL / journal: "
        f"{r['pg_over_journal']}; fsync floor {r['fsync_floor_us']} µs, i.e. at most "
        f"{r['pg_single_thread_ceiling_per_s']} commits/s for one thread: PostgreSQL's "
        "verified/s over that ceiling, each run against the fsync measured right before and "
        f"after it = **{r['pg_over_ceiling']}**.\n"
    )


def section_rights() -> str:
    from comptoir_tools.bench import pg_rights as bench_pg_rights

    start = _load()
    with durable_server() as (_server, url):
        r = bench_pg_rights.run(url, SIZE, **ARGS["rights"])
        inputs = _inputs(start, url)
    n = f"{r['persons']:,}".replace(",", " ")
    return (
        f"## Rights look-up at {n} persons, PostgreSQL (issue 17)\n\n"
        "The same sealed rows in both caches (`RightsStore._seal`: HMAC keys, CBOR, AES-GCM "
        "bound to the lookup key; one roster row per family), made by 2 worker processes; the "
        f"first {r['sample']} persons written through `RightsStore.insert_new` on each backend "
        "(timed), the rest bulk-loaded in the same format (SQLite: executemany; PostgreSQL: "
        "COPY, then VACUUM ANALYZE). Look-ups through `RightsCache.rights_for` (keyed hash, "
        "indexed read, decrypt, decode, identity check, policy) on "
        f"{r['lookups']} random persons in 5 alternating rounds; `raw` is a bare read of the "
        "same row by primary key (sqlite3; "
        "psycopg, prepared). Goal: p99 ≤ 1 ms, judged on the median of the rounds' p99 as "
        f"in the rights section (met on PostgreSQL: {r['goal_met_pg']}). "
        f"PostgreSQL's plan: `{r['pg_plan']}`. " + inputs + "\n\n"
        + _table([(k.replace("sqlite_", ""), r[k], r[k.replace("sqlite_", "pg_")])
                  for k in r if k.startswith("sqlite_")])
        + f"\nPostgreSQL p99 / SQLite p99: {r['pg_over_sqlite_p99']}. Bulk load "
        f"{r['bulk_load_s']} s (waiting for the sealing workers {r['bulk_seal_wait_s']} s, "
        f"writing both databases {r['bulk_write_s']} s).\n"
    )


def section_billing() -> str:
    from comptoir_tools.bench import pg_billing as bench_pg_billing

    start = _load()
    with durable_server() as (_server, url):
        r = bench_pg_billing.run(url, SIZE, **ARGS["billing"])
        inputs = _inputs(start, url)
    n = f"{r['sheets']:,}".replace(",", " ")
    rows = [(k.replace("sqlite_", ""), r[k], r[k.replace("sqlite_", "pg_")])
            for k in r if k.startswith("sqlite_") and k.replace("sqlite_", "pg_") in r]
    rows = [(k, f"**{a}**" if k == "export_per_s" else a, f"**{b}**" if k == "export_per_s"
             else b) for k, a, b in rows]
    return (
        f"## Billing export at {n} sheets, PostgreSQL (issue 17)\n\n"
        f"One billing key for both journals. The first {r['sample']} dispensations recorded "
        "through "
        "`Journal.record_many` on each (5 000 per transaction; on PostgreSQL under the "
        "journal's advisory lock, synchronous COMMIT): `record_many_per_s`. The SQLite journal "
        "is then grown by the billing section's bulk recorder and every table copied into the "
        "PostgreSQL journal with COPY (the same sealed rows, lots and hash chain), then VACUUM "
        "ANALYZE. Each journal is exported whole by the real `Exporter` (every lot, empty "
        "export journal, empty directory, files durable, batches of up to 64 lots; on "
        "PostgreSQL under the export advisory lock, lot rows fetched in the binary format), "
        "beside a raw read of the same rows through the same query with the sealed texts "
        "opened (`ratio` = read s / export s). Goal ≥ 50 000 sheets/s (met on PostgreSQL: "
        f"{r['goal_met_pg']}). " + inputs + "\n\n" + _table(rows)
        + f"\nPostgreSQL / SQLite export rate: {r['pg_over_sqlite']}; {r['lots']} lots, "
        f"{r['batches']} export batches, copy into PostgreSQL {r['copy_to_pg_s']} s"
        + ("; the PostgreSQL journal copied passes `billing.verify`" if r.get("pg_verify_ok")
           else "") + ".\n"
    )


def section_counters() -> str:
    from comptoir_tools.bench import pg_counters as bench_pg_counters

    start = _load()
    with durable_server() as (_server, url):
        r = bench_pg_counters.run(url, **ARGS["counters"])
        inputs = _inputs(start, url)
    lite, pg = r["sqlite"], r["pg"]
    return (
        f"## Transactions per second, {r['counters']} counters on one PostgreSQL (issue 17)\n\n"
        f"{r['counters']} processes, each a counter with its own stores and connections opened "
        "as `comptoir run` opens them (`stores.open_biller`, `stores.open_transactions`, the "
        "verifier's state as `presentations.load_verifier` makes it), without boards, link "
        "or API: each runs the transaction path itself, one after the other, as fast as it "
        "can: QR verified (shared replay check committed), transaction opened, care sheet "
        "recorded (numbered per FINESS under the journal's advisory lock: the counters take "
        f"turns), transaction marked dispensed; {r['per_counter']} transactions each, 20 "
        "phones per counter. Baseline, same run: the same processes each on its own SQLite "
        "files (today's islands: nothing shared). After the PostgreSQL round the shared "
        "journal holds every care sheet once, numbered 1..n. " + inputs + "\n\n"
        + _table([
            ("transactions", lite["transactions"], pg["transactions"]),
            ("transactions/s, all counters", f"**{lite['per_s']}**", f"**{pg['per_s']}**"),
            ("per counter /s", lite["per_counter_per_s"], pg["per_counter_per_s"]),
            ("wall s", lite["wall_s"], pg["wall_s"]),
        ])
        + f"\nPostgreSQL / SQLite: {r['pg_over_sqlite']}.\n"
    )


SECTIONS = {"tokens_pg": section_tokens, "rights_pg": section_rights,
            "billing_pg": section_billing, "counters_pg": section_counters}


if __name__ == "__main__":
    for name in sys.argv[1:] or list(SECTIONS):
        print(SECTIONS[name]())
