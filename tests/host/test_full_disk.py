"""A full disk, for billing: the journal recording a care sheet, the export writing a lot's
files, and the local API dispensing. Each refuses with an error naming what failed, keeps
nothing half done, and does the same request exactly once when there is room again.

The journal's database is made unable to grow with SQLite's page limit (max_page_count: the
SQLITE_FULL path an ENOSPC takes, without root to mount a small file system). The export
runs in a subprocess under a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored): its writes get
real EFBIG errors and short writes from the kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from billing_fixtures import SYNTH

from comptoir.billing import Exporter, Journal, StorageFull, verify
from comptoir.billing.render import lot_files

T0 = 1_780_000_000
NO_LIMIT = 1_073_741_823  # SQLite's largest max_page_count


def _pages(db: object) -> int:
    return int(db.execute("PRAGMA page_count").fetchone()[0])  # type: ignore[attr-defined]


def _consistent(j: Journal) -> None:
    """Every counter agrees with the sheets: no sheet without its number, no number used
    without its sheet, every closed sheet in exactly one lot."""
    for finess, next_invoice, open_count in j.db.execute(
            "SELECT finess, next_invoice, open_count FROM pharmacy"):
        invoices = [r[0] for r in j.db.execute(
            "SELECT invoice_no FROM sheet WHERE finess=? ORDER BY seq", (finess,))]
        assert invoices == list(range(1, next_invoice))
        (still_open,) = j.db.execute(
            "SELECT COUNT(*) FROM sheet WHERE finess=? AND lot IS NULL", (finess,)).fetchone()
        assert still_open == open_count
        assert sum(lot.count for lot in j.lots(finess)) == len(invoices) - open_count
    assert verify(j).ok


def test_a_full_journal_refuses_a_care_sheet_whole_and_records_it_once_with_room(
        tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", lot_size=3, lot_max_age=3600)
    j.db.execute(f"PRAGMA max_page_count={_pages(j.db) + 6}")
    recorded = []
    with pytest.raises(StorageFull) as refused:
        for i in range(500):
            j.record(SYNTH.dispensation(i), now=T0 + i)
            recorded.append(i)
    failed = SYNTH.dispensation(len(recorded))
    tx = failed.transaction.transaction_id
    # Clear: the journal, the transaction, what to do; not "cannot rollback".
    message = str(refused.value)
    assert str(j.path) in message and tx in message and "free space" in message
    assert len(recorded) > 3 and j.lots()  # some lots were closed before it filled up
    assert j.sheet(tx) is None
    _consistent(j)
    with pytest.raises(StorageFull):  # still full: refused again, still nothing kept
        j.record(failed, now=T0 + 999)
    for finess in j.pharmacies():  # closing a lot may still fit, or not: whole either way
        try:
            j.close_lot(finess, now=T0 + 999)
        except StorageFull as e:
            assert f"lot closing of pharmacy {finess} not recorded" in str(e)
    _consistent(j)
    count = j.count_sheets()
    expected = dict(j.db.execute("SELECT finess, next_invoice FROM pharmacy"))
    j.db.execute(f"PRAGMA max_page_count={NO_LIMIT}")  # room again
    sheet = j.record(failed, now=T0 + 1000)
    assert sheet.invoice_no == expected.get(failed.finess, 1)
    assert j.record(failed, now=T0 + 1001) == sheet  # the retry is recognised: once
    assert j.count_sheets() == count + 1
    _consistent(j)
    j.close()


_EXPORT = """
import resource, signal, sys
sys.path[:0] = {paths!r}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
from comptoir.billing import Exporter, Journal, StorageFull
j = Journal({db!r}, lot_size=10**6, lot_max_age=10**9)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))
try:
    Exporter(j, {out!r}, batch_lots=1).export()
    print("exported")
except StorageFull as e:
    print(e)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
j.close()
"""

_CLI = """
import resource, signal, sys
sys.path[:0] = {paths!r}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from comptoir.billing.cli import main
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, hard))
sys.exit(main(["--db", {db!r}, "export", "--out", {out!r}]))
"""


def _lots_journal(tmp_path: Path) -> tuple[Path, int]:
    """Three small lots, then a big one; returns the journal and a file size limit between
    the small lots' files and the big lot's largest."""
    db = tmp_path / "j.db"
    j = Journal(db, lot_size=10**6, lot_max_age=10**9)
    i = 0
    finess = SYNTH.dispensation(0).finess
    for size in (2, 2, 2, 300):
        batch = []
        while len(batch) < size:
            d = SYNTH.dispensation(i)
            i += 1
            if d.finess == finess:
                batch.append(d)
        j.record_many(batch, now=T0 + i)
        j.close_lot(finess, now=T0 + i)
    sizes = {lot.seq: [len(data) for data in lot_files(lot, j.lot_rows(finess, lot.seq)).values()]
             for lot in j.lots()}
    small, big = max(max(sizes[s]) for s in (1, 2, 3)), max(sizes[4])
    limit = big // 2 + 1  # not a multiple of 4096: the O_DIRECT write comes back short
    # Room for the small lots' files and for the journal's write-ahead log (emptied here),
    # where the export's commits go: only the big lot's largest file does not fit.
    assert small < limit // 8
    j.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()
    return db, limit


def _same_files(db: Path, out: Path, ref: Path) -> None:
    """The files are those of an export of the same journal, with room, elsewhere."""
    with Journal(db) as j:
        assert Exporter(j, ref).export().restored == 12  # recorded (for `out`), written again
    files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert all((out / p).read_bytes() == (ref / p).read_bytes() for p in files)


def _script(template: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", template.format(paths=sys.path, **kw)],
                          capture_output=True, text=True, timeout=60)


def test_a_full_export_directory_records_only_complete_lots(tmp_path: Path) -> None:
    db, limit = _lots_journal(tmp_path)
    out = tmp_path / "out"
    run = _script(_EXPORT, db=str(db), out=str(out), limit=limit)
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip()
    assert line.startswith(f"export to {out}: no room writing ") and "lot-000004" in line
    assert "3 lots exported, the other 1 not recorded as exported" in line
    assert "free space, then run the export again" in line
    with Journal(db) as j:
        ex = Exporter(j, out)
        assert sorted(lot for _, lot in ex.exported()) == [1, 2, 3]
        assert [lot.seq for lot in ex.pending()] == [4]
        assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary left
        for seq in (1, 2, 3):  # what is recorded is complete
            for kind, (name, _sha, size) in ex.exported()[(j.lots()[0].finess, seq)].items():
                assert (out / name).stat().st_size == size, kind
        r = ex.export()  # room again: the rest, once
        assert (r.lots, r.skipped, r.restored) == (1, 3, 0)
        assert verify(j, out).ok
    _same_files(db, out, tmp_path / "ref")


def test_the_export_command_on_a_full_disk_says_so_in_one_line(tmp_path: Path) -> None:
    db, limit = _lots_journal(tmp_path)
    out = tmp_path / "out"
    run = _script(_CLI, db=str(db), out=str(out), limit=limit)
    assert run.returncode == 2
    assert run.stdout == ""
    (line,) = run.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"comptoir billing: export to {out}: no room writing ")
    assert "0 lots exported, the other 4 not recorded" in line
    assert not [p for p in out.rglob(".*") if p.is_file()]
    from comptoir.billing.cli import main
    assert main(["--db", str(db), "export", "--out", str(out)]) == 0
    assert main(["--db", str(db), "verify", "--out", str(out)]) == 0
    _same_files(db, out, tmp_path / "ref")

