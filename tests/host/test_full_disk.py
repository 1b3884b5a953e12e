"""A full disk, for billing: the journal recording a care sheet, the export writing a lot's
files, and the local API dispensing. Each refuses with an error naming what failed, keeps
nothing half done, and does the same request exactly once when there is room again.

The journal's database is made unable to grow with SQLite's page limit (max_page_count: the
SQLITE_FULL path an ENOSPC takes, without root to mount a small file system); on PostgreSQL
(the database the counters share, issue 17) the same test runs with the journal's tables in
a tablespace on a small tmpfs: the server's own writes fail with ENOSPC (pg_full_disk.py).
The export runs in a subprocess under a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored): its
writes get real EFBIG errors and short writes from the kernel; the export directory is this
PC's on both backends, and those tests run with the journal on each."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from billing_fixtures import SYNTH
from pg_fixtures import PgServer, pg_server, pg_url  # noqa: F401 (fixtures)
from pg_full_disk import small_tablespace

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


@pytest.fixture(params=["sqlite", "postgresql"])
def filling(request: pytest.FixtureRequest, tmp_path: Path
            ) -> Iterator[tuple[Journal, Callable[[], None]]]:
    """A journal with room for a few lots only, and what gives it room again."""
    if request.param == "sqlite":
        j = Journal(tmp_path / "j.db", lot_size=3, lot_max_age=3600)
        j.db.execute(f"PRAGMA max_page_count={_pages(j.db) + 6}")
        yield j, lambda: j.db.execute(f"PRAGMA max_page_count={NO_LIMIT}")
        j.close()
        return
    from comptoir.billing.journal_pg import open_journal

    server: PgServer = request.getfixturevalue("pg_server")
    with small_tablespace(server, "320k") as (url, make_room):
        j = open_journal(url, key=tmp_path / "billing.key", lot_size=3, lot_max_age=3600)
        try:
            yield j, make_room
        finally:
            j.close()


def test_a_full_journal_refuses_a_care_sheet_whole_and_records_it_once_with_room(
        filling: tuple[Journal, Callable[[], None]]) -> None:
    j, make_room = filling
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
    try:  # still full: refused again, still nothing kept...
        early = j.record(failed, now=T0 + 999)
    except StorageFull:
        early = None
    # ...where SQLite's page limit is exact; a server may find a little room in pages the
    # refused statement extended: then the care sheet is recorded, whole, once.
    assert early is None or j.dialect.name != "sqlite"
    for finess in j.pharmacies():  # closing a lot may still fit, or not: whole either way
        try:
            j.close_lot(finess, now=T0 + 999)
        except StorageFull as e:
            assert f"lot closing of pharmacy {finess} not recorded" in str(e)
    _consistent(j)
    count = j.count_sheets()
    expected = dict(j.db.execute("SELECT finess, next_invoice FROM pharmacy"))
    make_room()
    sheet = j.record(failed, now=T0 + 1000)
    if early is None:
        assert sheet.invoice_no == expected.get(failed.finess, 1)
    else:
        assert sheet == early
    assert j.record(failed, now=T0 + 1001) == sheet  # the retry is recognised: once
    assert j.count_sheets() == count + (early is None)
    _consistent(j)


_EXPORT = """
import resource, signal, sys
sys.path[:0] = {paths!r}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
from comptoir.billing import Exporter, Journal, StorageFull
{opening}
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
sys.exit(main([*{where!r}, "export", "--out", {out!r}]))
"""


class Place:
    """Where the journal is: a file, or the shared database (the key a file beside)."""

    def __init__(self, tmp_path: Path, url: str | None) -> None:
        self.db, self.url, self.key = tmp_path / "j.db", url, tmp_path / "billing.key"

    def open(self, **options: object) -> Journal:
        if self.url is None:
            return Journal(self.db, **options)  # type: ignore[arg-type]
        from comptoir.billing.journal_pg import open_journal

        return open_journal(self.url, key=self.key, **options)

    def opening(self) -> str:
        """The statement opening it in the export's subprocess."""
        if self.url is None:
            return f"j = Journal({str(self.db)!r}, lot_size=10**6, lot_max_age=10**9)"
        return ("from comptoir.billing.journal_pg import open_journal\n"
                f"j = open_journal({self.url!r}, key={str(self.key)!r}, lot_size=10**6, "
                "lot_max_age=10**9)")

    def cli(self) -> list[str]:
        return ["--db", str(self.db)] if self.url is None else [
            "--url", self.url, "--key", str(self.key)]


@pytest.fixture(params=["sqlite", "postgresql"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    return Place(tmp_path, None if request.param == "sqlite"
                 else request.getfixturevalue("pg_url"))


def _lots_journal(place: Place) -> int:
    """Three small lots, then a big one; returns a file size limit between the small lots'
    files and the big lot's largest."""
    j = place.open(lot_size=10**6, lot_max_age=10**9)
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
    if place.url is None:
        j.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()
    return limit


def _same_files(place: Place, out: Path, ref: Path) -> None:
    """The files are those of an export of the same journal, with room, elsewhere."""
    with place.open() as j:
        assert Exporter(j, ref).export().restored == 12  # recorded (for `out`), written again
    files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert all((out / p).read_bytes() == (ref / p).read_bytes() for p in files)


def _script(template: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", template.format(paths=sys.path, **kw)],
                          capture_output=True, text=True, timeout=60)


def test_a_full_export_directory_records_only_complete_lots(place: Place,
                                                            tmp_path: Path) -> None:
    limit = _lots_journal(place)
    out = tmp_path / "out"
    run = _script(_EXPORT, opening=place.opening(), out=str(out), limit=limit)
    assert run.returncode == 0, run.stderr
    line = run.stdout.strip()
    assert line.startswith(f"export to {out}: no room writing ") and "lot-000004" in line
    assert "3 lots exported, the other 1 not recorded as exported" in line
    assert "free space, then run the export again" in line
    with place.open() as j:
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
    _same_files(place, out, tmp_path / "ref")


def test_the_export_command_on_a_full_disk_says_so_in_one_line(place: Place,
                                                               tmp_path: Path) -> None:
    limit = _lots_journal(place)
    out = tmp_path / "out"
    run = _script(_CLI, where=place.cli(), out=str(out), limit=limit)
    assert run.returncode == 2
    assert run.stdout == ""
    (line,) = run.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"comptoir billing: export to {out}: no room writing ")
    assert "0 lots exported, the other 4 not recorded" in line
    assert not [p for p in out.rglob(".*") if p.is_file()]
    from comptoir.billing.cli import main
    assert main([*place.cli(), "export", "--out", str(out)]) == 0
    assert main([*place.cli(), "verify", "--out", str(out)]) == 0
    _same_files(place, out, tmp_path / "ref")

