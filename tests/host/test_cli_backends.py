"""`comptoir billing` and `comptoir cache` on the configured PostgreSQL database (issue 17): run
as an operator runs them (the real command, a subprocess) with the daemon's comptoir.toml,
against the worker's real server; the same commands on a configuration without storage.url
use this PC's files. The server down: one clear line, a non-zero exit, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from billing_fixtures import SYNTH
from pg_fixtures import PgServer, pg_server, pg_url  # noqa: F401 (fixtures)
from rights_fixtures import NOW, fam, members, running_service
from test_rights_store import FAMILIES, all_people, fill

from comptoir import config
from comptoir.billing import verify
from comptoir.billing.journal_pg import export_lock, open_journal
from comptoir.rights import Status
from comptoir.stores import open_rights_cache

T0 = 1_780_000_000


def comptoir(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comptoir.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def _config(tmp: Path, url: str = "") -> Path:
    """A counter's comptoir.toml: its data and keys folders, and the shared database."""
    path = tmp / "comptoir.toml"
    text = f'[paths]\ndata_dir = "{tmp / "data"}"\nkeys_dir = "{tmp / "keys"}"\n'
    if url:
        text += f'[storage]\nurl = "{url}"\n'
    path.write_text(text)
    return path


@pytest.fixture
def counter(pg_url: str, tmp_path: Path) -> Path:  # noqa: F811
    """The daemon's configuration, after it billed 20 care sheets and cached 16 families on
    the shared database."""
    cfg_path = _config(tmp_path, pg_url)
    cfg = config.load(cfg_path)
    with open_journal(pg_url, key=cfg.billing_key, lot_size=7) as j:
        for i in range(20):
            j.record(SYNTH.dispensation(2 * i), now=T0 + i)
    cache = open_rights_cache(cfg)
    fill(cache)
    cache.close()
    return cfg_path


def test_billing_list_export_verify_on_the_shared_database(counter: Path, pg_url: str,  # noqa: F811
                                                          tmp_path: Path) -> None:
    cfg = str(counter)
    listed = comptoir("billing", "--config", cfg, "list")
    assert listed.returncode == 0, listed.stderr
    assert len([line for line in listed.stdout.splitlines()[1:] if " no " in line]) == 2
    out = tmp_path / "out"
    done = comptoir("billing", "--config", cfg, "export", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("exported 2 lots (14 sheets, ")
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) != []
    again = comptoir("billing", "--config", cfg, "export", "--out", str(out))
    assert again.stdout.startswith("exported 0 lots") and "2 already exported" in again.stdout
    checked = comptoir("billing", "--config", cfg, "verify", "--out", str(out))
    assert checked.returncode == 0 and checked.stdout.startswith("OK: 2 lots, 14 sheets")
    assert not (tmp_path / "data").exists()  # nothing on this PC: all on the server
    # Another counter exporting now: this one says so and writes nothing.
    key = config.load(counter).billing_key
    with open_journal(pg_url, key=key) as other, export_lock(other) as got:
        assert got
        busy = comptoir("billing", "--config", cfg, "export", "--out", str(tmp_path / "o2"))
    assert busy.returncode == 3 and busy.stdout == ""
    assert "another counter is exporting" in busy.stderr and not (tmp_path / "o2").exists()
    with open_journal(pg_url, key=key) as j:
        assert verify(j, out).ok


def test_cache_status_counts_and_purge_on_the_shared_database(counter: Path,
                                                             tmp_path: Path) -> None:
    cfg = str(counter)
    status = comptoir("cache", "--config", cfg, "status", "--check")
    assert status.returncode == 0, status.stderr
    lines = dict(line.split(None, 1) for line in status.stdout.splitlines())
    assert lines["database"].startswith("postgresql://")
    assert lines["persons"] == str(all_people()) and lines["rebuilt"] == "no"
    counts = comptoir("cache", "--config", cfg, "export-counts")
    assert json.loads(counts.stdout)["persons"] == all_people()
    victim = FAMILIES[1]
    purged = comptoir("cache", "--config", cfg, "purge", "--nir", "-", "--family",
                      stdin=victim.insured.nir + "\n")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith(f"removed {len(members(victim))} row(s)")
    cache = open_rights_cache(config.load(counter))  # as the daemon sees it
    assert cache.rights_for(members(victim)[0]).status is Status.UNKNOWN
    assert cache.counts()["persons"] == all_people() - len(members(victim))
    cache.close()
    assert not (tmp_path / "data").exists()


def test_cache_status_check_removes_a_damaged_shared_row_and_says_so(
        counter: Path, pg_url: str) -> None:  # noqa: F811
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("SET search_path TO comptoir_rights")
        (lookup,) = db.execute("SELECT lookup FROM persons ORDER BY lookup LIMIT 1").fetchone()
        db.execute("UPDATE persons SET row = overlay(row placing '\\x5a5a'::bytea from 20) "
                   "WHERE lookup = %s", (lookup,))
    status = comptoir("cache", "--config", str(counter), "status", "--check")
    assert status.returncode == 1  # as for a rebuilt file
    # The cache's own error records first (Python's last-resort log handler), then the line.
    *logged, warning = status.stderr.splitlines()
    assert logged == ["rights cache: a shared row is unusable, removing the damaged rows",
                      "rights cache: damaged rows removed from the shared database"]
    assert warning.startswith("warning: the rights cache was unusable (")
    assert warning.endswith("1 damaged rows removed from the shared database")
    assert f"persons       {all_people() - 1}" in status.stdout
    again = comptoir("cache", "--config", str(counter), "status", "--check")
    assert again.returncode == 0 and again.stderr == ""


def test_cache_sync_refreshes_the_shared_database(counter: Path) -> None:
    with running_service(FAMILIES[:4]) as svc:
        synced = comptoir("cache", "--config", str(counter), "sync", "--service", svc.url)
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert report["families"] == len(FAMILIES) and report["answered"] == len(FAMILIES)
    assert report["failed"] == ""
    cache = open_rights_cache(config.load(counter))  # what every counter now sees
    for f in FAMILIES[:4]:
        answer = cache.rights_for(members(f)[0], NOW)  # the service's answers are as of NOW
        assert answer.status is Status.FRESH and answer.record is not None
    assert cache.rights_for(members(FAMILIES[5])[0]).reason == "no_amo_rights"  # unknown now
    cache.close()


def test_without_storage_url_the_same_commands_use_this_pcs_files(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    cfg = config.load(cfg_path)
    cfg.paths.data_dir.mkdir(parents=True)
    cache = open_rights_cache(cfg)
    fill(cache, [fam(3)])
    cache.close()
    status = comptoir("cache", "--config", str(cfg_path), "status")
    assert status.returncode == 0, status.stderr
    assert f"database      {cfg.rights_db}" in status.stdout and "persons       3" in status.stdout
    listed = comptoir("billing", "--config", str(cfg_path), "list")
    assert listed.returncode == 2 and listed.stderr == f"no billing journal at {cfg.billing_db}\n"


@pytest.mark.parametrize("command", [("billing", "list"), ("billing", "export", "--out", "x"),
                                     ("cache", "status"), ("cache", "export-counts")])
def test_with_the_server_down_one_clear_line_and_a_failure(
        pg_server: PgServer, counter: Path, command: tuple[str, ...]) -> None:  # noqa: F811
    pg_server.stop()
    try:
        run = comptoir(command[0], "--config", str(counter), *command[1:])
    finally:
        pg_server.start()
    assert run.returncode != 0 and run.stdout == ""
    (line,) = run.stderr.splitlines()  # one line, no traceback
    assert "shared database unreachable" in line and line.endswith("nothing done")
    assert line.startswith("comptoir billing: " if command[0] == "billing" else "error: ")
    assert comptoir(command[0], "--config", str(counter), "--help").returncode == 0
