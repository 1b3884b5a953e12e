"""Three counters billing one pharmacy (one FINESS) on one PostgreSQL journal (issue 17), each
its own process (comptoir_tools.testkit.billing_crashdriver: records dispensations, closes lots by
size and age, exports them to the pharmacy's shared folder, as the daemon does), while one of them
at a time is SIGKILLed, 100 times in all, at random moments (seeded, printed: while it starts,
opens the journal, records, closes a lot or exports; and after it finished its share, while it
exports again), and started again at once; the other two go on billing meanwhile. At the end:
every care sheet there once, none lost, none doubled; invoices 1..n without a gap for the
FINESS; every sheet in exactly one lot; every lot exported once (one export record, one file,
each transaction in exactly one file); the chain verifying.

COMPTOIR_COUNTERS_KILL_SEED picks another sequence of kills."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from billing_fixtures import parse_b2
from pg_fixtures import pg_server, pg_url  # noqa: F401 (fixtures)

from comptoir.billing import Exporter, verify
from comptoir.billing.journal_pg import open_journal

COUNTERS = 3
COUNT = 3000  # dispensations, 1 000 per counter
KILLS = 100
PACE = 0.01  # seconds between a counter's dispensations: it is still billing when killed
SEED = int(os.environ.get("COMPTOIR_COUNTERS_KILL_SEED", "1717"))


class CounterProcess:
    """One counter's billing, run again after each kill (each life resumes from the journal)."""

    def __init__(self, offset: int, args: list[str]) -> None:
        self.offset = offset
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.lines = 0  # dispensations reported by the current life
        self.started = 0.0
        self.last = -1  # the last dispensation it reported
        self.ready = False
        self.done = threading.Event()
        self.lives = 0
        self.errors: list[str] = []

    def start(self) -> None:
        self.lines, self.ready = 0, False
        self.started = time.monotonic()
        self.done.clear()
        self.lives += 1
        env = dict(os.environ)
        env.pop("COMPTOIR_BILLING_CRASH", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "comptoir_tools.testkit.billing_crashdriver", *self.args,
             "--stride", str(COUNTERS), "--offset", str(self.offset), "--resume",
             "--pace", str(PACE)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line == "READY":
                self.ready = True
            elif line.isdigit():
                self.lines += 1
                self.last = int(line)
        assert proc.stderr is not None
        err = proc.stderr.read()
        rc = proc.wait()
        if rc == 0:
            self.done.set()
        elif rc != -signal.SIGKILL:
            self.errors.append(f"counter {self.offset} exited {rc}: {err[-2000:]}")
            self.done.set()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> bool:
        """SIGKILL now; False if it had already ended by itself."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return self.proc.returncode == -signal.SIGKILL


def _wait(pred: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_one_counter_killed_100_times_while_the_others_bill_loses_and_doubles_nothing(
        pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    key = tmp_path / "keys" / "billing.key"  # the installer copied it to every counter PC
    out = tmp_path / "out"  # the pharmacy's export folder, shared by the counters
    open_journal(pg_url, key=key).close()
    args = ["--url", pg_url, "--key", str(key), "--out", str(out), "--count", str(COUNT),
            "--pharmacies", "1"]
    counters = [CounterProcess(i, args) for i in range(COUNTERS)]
    for c in counters:
        c.start()
    rng = random.Random(SEED)
    print(f"kill seed {SEED} (COMPTOIR_COUNTERS_KILL_SEED)")
    kills: list[str] = []
    started = time.monotonic()
    tries = 0
    while len(kills) < KILLS:
        tries += 1
        assert tries < 5 * KILLS, f"only {len(kills)} kills landed"
        fresh = [c for c in counters if c.running and not c.ready]
        if fresh and rng.random() < 0.15:
            # While it starts: imports, opens the journal, finds where it was, re-submits.
            victim = rng.choice(fresh)
            delay = rng.uniform(0.0, 0.6)
            moment = f"{delay:.3f} s after its start"
            time.sleep(max(0.0, victim.started + delay - time.monotonic()))
        else:  # while billing: at a random moment
            # One of those billing now (not the one just started again), if any.
            victim = rng.choice([c for c in counters if c.running and c.ready] or counters)
            if not victim.running:  # it finished its share: a new life exports again
                victim.start()
            _wait(lambda v=victim: v.ready or not v.running, 30)
            delay = rng.uniform(0.0, 0.2)
            moment = f"{delay * 1000:.1f} ms later, while billing (dispensation {victim.last})"
            time.sleep(delay)
        if victim.kill():
            kills.append(f"counter {victim.offset} {moment}")
            victim.start()
    campaign = time.monotonic() - started
    for c in counters:  # the last lives finish their shares
        if not c.running and not c.done.is_set():
            c.start()
    for c in counters:
        assert c.done.wait(120), f"counter {c.offset} never finished"
    assert not [e for c in counters for e in c.errors], [e for c in counters for e in c.errors]
    per_counter = collections.Counter(k.split()[1] for k in kills)
    starting = sum("after its start" in k for k in kills)
    print(f"{len(kills)} kills in {campaign:.1f} s ({dict(per_counter)}; {starting} while "
          f"starting, {len(kills) - starting} while billing); first ones: "
          + "; ".join(kills[:5]))
    assert len(per_counter) == COUNTERS and min(per_counter.values()) >= KILLS // 6
    assert 5 <= starting <= 30, starting  # most while billing, some while starting

    with open_journal(pg_url, key=key) as j:
        Exporter(j, out).export()  # what a last life left unexported, the next round does
        ids = [r[0] for r in j.db.execute("SELECT transaction_id FROM sheet")]
        expected = sorted(f"T1-{i:08d}" for i in range(COUNT))
        assert sorted(ids) == expected  # none lost, none doubled
        (finess,) = j.pharmacies()
        invoices = [r[0] for r in j.db.execute(
            "SELECT invoice_no FROM sheet WHERE finess=? ORDER BY invoice_no", (finess,))]
        assert invoices == list(range(1, COUNT + 1))
        assert j.db.execute("SELECT COUNT(*) FROM sheet WHERE lot IS NULL").fetchone()[0] == 0
        lots = j.lots(finess)
        assert [lot.seq for lot in lots] == list(range(1, len(lots) + 1))
        exported = collections.Counter(r[0] for r in j.db.execute(
            "SELECT lot FROM export WHERE finess=? AND kind='b2'", (finess,)))
        assert exported == collections.Counter(lot.seq for lot in lots)  # each once
        report = verify(j, out)
        assert report.ok, report.problems
        assert report.sheets == COUNT and report.unexported == 0
    files = sorted(out.rglob("*.b2"))
    assert len(files) == len(lots)
    in_b2 = collections.Counter(str(r["transaction"]) for p in files for r in parse_b2(p)
                                if r["type"] == "200")
    assert in_b2 == collections.Counter(expected)
    print(f"{COUNT} care sheets in {len(lots)} lots, {sum(c.lives for c in counters)} lives")
