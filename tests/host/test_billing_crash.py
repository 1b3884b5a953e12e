"""Exactly once across crashes: the recording-and-exporting process is killed with SIGKILL
again and again (at every named crash point, then at random moments from outside) while it
records 1 000 dispensations and exports their lots; restarted each time, it must end with every
care sheet in exactly one lot, every lot exported once, files matching the journal, and the
chain verifying."""

from __future__ import annotations

import collections
import csv
import json
import os
import random
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from billing_fixtures import parse_b2
from pg_fixtures import pg_server, pg_url  # noqa: F401 (fixtures)

from comptoir.billing import Exporter, Journal, verify
from comptoir.billing.crashpoints import POINTS

COUNT = 1000
RANDOM_LIVES = 40
SEED = int(os.environ.get("COMPTOIR_CRASH_SEED", "20260615"))


def _run(db: list[str], out: Path, crash: str | None, kill: tuple[int, float] | None) -> str:
    """One life of the driver: killed `delay` seconds after it reports its `lines`-th recorded
    dispensation, for kill = (lines, delay) (None: never), or by its own crash point."""
    env = dict(os.environ)
    env.pop("COMPTOIR_BILLING_CRASH", None)
    if crash:
        env["COMPTOIR_BILLING_CRASH"] = crash
    proc = subprocess.Popen(
        [sys.executable, "-m", "comptoir_tools.testkit.billing_crashdriver", *db, "--out",
         str(out), "--count", str(COUNT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "driver did not start"
        first = proc.stdout.readline().strip()
        seen: list[str] = []
        if first == "READY" and kill is not None:
            lines, delay = kill
            for _ in range(lines):
                seen.append(proc.stdout.readline().strip())
                if not seen[-1].isdigit():
                    break  # DONE or dead: let it end
            else:
                try:
                    proc.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.communicate()
                    return "killed"
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode == -signal.SIGKILL:
        return "crashed"
    assert proc.returncode == 0, stderr
    assert first == "READY" and (seen + stdout.split())[-1:] == ["DONE"]
    return "done"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_anywhere_loses_nothing_and_doubles_nothing(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    out = tmp_path / "out"
    if backend == "sqlite":
        db = ["--db", str(tmp_path / "journal.db")]

        def journal() -> Journal:
            return Journal(tmp_path / "journal.db")
    else:  # the same journal on a real PostgreSQL server (issue 17)
        from comptoir.billing.journal_pg import open_journal

        url, key = request.getfixturevalue("pg_url"), tmp_path / "billing.key"
        db = ["--url", url, "--key", str(key)]

        def journal() -> Journal:
            return open_journal(url, key=key)
    rng = random.Random(SEED)
    outcomes: collections.Counter[str] = collections.Counter()
    # Every named point at least once, at a random passage.
    for point in POINTS:
        outcomes[_run(db, out, f"{point}:{rng.randint(1, 6)}", None)] += 1
    assert outcomes["crashed"] == len(POINTS)
    # Then random kills from outside (a few milliseconds after a random number of recorded
    # dispensations: in a record, a lot closing or an export), mixed with random crash points;
    # the number of lives is capped, then a last life runs to the end.
    result = ""
    for _ in range(RANDOM_LIVES):
        crash = f"{rng.choice(POINTS)}:{rng.randint(1, 40)}" if rng.random() < 0.4 else None
        result = _run(db, out, crash, (rng.randint(1, 25), rng.uniform(0.0, 0.01)))
        outcomes[result] += 1
        if result == "done":
            break
    if result != "done":
        result = _run(db, out, None, None)
        outcomes[result] += 1
    assert result == "done", outcomes
    assert outcomes["killed"] + outcomes["crashed"] >= 20, outcomes

    with journal() as j:
        ids = [r[0] for r in j.db.execute("SELECT transaction_id FROM sheet")]
        assert sorted(ids) == [f"T1-{i:08d}" for i in range(COUNT)]
        assert j.db.execute("SELECT COUNT(*) FROM sheet WHERE lot IS NULL").fetchone()[0] == 0
        lots = j.lots()
        assert sum(lot.count for lot in lots) == COUNT
        report = verify(j, out)
        assert report.ok, report.problems
        assert (report.sheets, report.files) == (COUNT, 3 * len(lots))
        assert Exporter(j, out).export().lots == 0  # nothing left to do: idempotent
        recorded = {name for (name,) in j.db.execute("SELECT name FROM export")}

    # The files on disk are exactly the exported ones, no temporary left behind...
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert on_disk == recorded
    # ...and together they carry each care sheet exactly once, in all three forms.
    in_b2 = collections.Counter(
        str(r["transaction"]) for p in out.rglob("*.b2") for r in parse_b2(p)
        if r["type"] == "200")
    in_csv = collections.Counter(
        row["transaction_id"] for p in out.rglob("*.csv")
        for row in csv.DictReader(p.open(newline="")))
    in_json = collections.Counter(
        s["transaction_id"] for p in out.rglob("*.json")
        for s in json.loads(p.read_text())["sheets"])
    expected = collections.Counter(f"T1-{i:08d}" for i in range(COUNT))
    assert in_b2 == in_csv == in_json == expected
