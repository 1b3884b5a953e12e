"""Journal, lots, chain, export and verify: numbering, idempotence, tamper evidence, CLI."""

from __future__ import annotations

import errno
import io
import json
import os
import sqlite3
from pathlib import Path

import pytest
from billing_fixtures import SYNTH, dispensation, line, parse_b2

from comptoir.billing import (
    BillingError,
    Exporter,
    Journal,
    JournalError,
    StorageFull,
    verify,
)
from comptoir.billing import export as export_mod
from comptoir.billing.cli import main as billing_main
from comptoir.billing.crypto import join_texts
from comptoir.billing.progress import ProgressBar
from comptoir.billing.render import GENESIS_HASH

T0 = 1_780_000_000


def filled(tmp_path: Path, n: int = 60, lot_size: int = 10) -> Journal:
    j = Journal(tmp_path / "j.db", lot_size=lot_size, lot_max_age=3600)
    for i in range(n):
        j.record(SYNTH.dispensation(i), now=T0 + i)
    return j


def test_lots_numbered_per_pharmacy_and_chained(tmp_path: Path) -> None:
    j = filled(tmp_path, 60, 10)  # two pharmacies, 30 sheets each -> 3 lots each
    for finess in j.pharmacies():
        lots = j.lots(finess)
        assert [lot.seq for lot in lots] == [1, 2, 3]
        assert lots[0].prev_hash == GENESIS_HASH
        assert [lot.prev_hash for lot in lots[1:]] == [lot.hash for lot in lots[:-1]]
        assert [(lot.first_invoice, lot.last_invoice) for lot in lots] == [
            (1, 10), (11, 20), (21, 30)]
    assert verify(j).ok


def test_lot_closed_by_age(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", lot_size=100, lot_max_age=600)
    j.record(SYNTH.dispensation(0), now=T0)
    j.record(SYNTH.dispensation(2), now=T0 + 300)
    assert j.close_due(now=T0 + 599) == []
    (lot,) = j.close_due(now=T0 + 600)
    assert (lot.count, lot.opened_at, lot.closed_at) == (2, T0, T0 + 600)
    assert j.close_due(now=T0 + 5000) == []  # nothing open any more
    assert j.close_lot(lot.finess) is None


def test_record_is_idempotent_and_refuses_a_different_bill(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    first = j.record(dispensation(tx="same"))
    again = j.record(dispensation(tx="same"))
    assert again == first and j.count_sheets() == 1
    with pytest.raises(JournalError):
        j.record(dispensation(tx="same", lines=(line(quantity=3),)))
    assert j.count_sheets() == 1


def test_refused_sheet_leaves_nothing(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    with pytest.raises(BillingError):
        j.record(dispensation(finess="000000001"))
    assert j.count_sheets() == 0 and j.pharmacies() == []


def test_record_many_is_all_or_nothing(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    with pytest.raises(BillingError):
        j.record_many([dispensation(tx="a"), dispensation(tx="b", lines=(line(rate=1),))])
    assert j.count_sheets() == 0


def test_export_files_and_idempotence(tmp_path: Path) -> None:
    j = filled(tmp_path, 40, 10)
    out = tmp_path / "out"
    ex = Exporter(j, out)
    r1 = ex.export()
    assert (r1.lots, r1.sheets, r1.files) == (4, 40, 12)
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r2 = ex.export()
    assert (r2.lots, r2.skipped) == (0, 4)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot
    # Files of a fresh export elsewhere are byte-identical: export is a function of the journal.
    Exporter(j, tmp_path / "again").export()
    for p, data in snapshot.items():
        assert (tmp_path / "again" / p.relative_to(out)).read_bytes() == data
    lot = j.lots()[0]
    recs = parse_b2(out / lot.finess / "lot-000001.b2")
    assert [r["type"] for r in recs[:2]] == ["000", "100"] and recs[-1]["type"] == "999"
    assert recs[-1]["hash"] == lot.hash and recs[1]["prev_hash"] == GENESIS_HASH
    assert recs[-2]["records"] == len(recs) and recs[-2]["invoices"] == lot.count
    invoices = [r for r in recs if r["type"] == "200"]
    assert [r["invoice"] for r in invoices] == list(range(1, 11))
    assert sum(int(r["total"]) for r in recs if r["type"] == "500") == lot.total
    doc = json.loads((out / lot.finess / "lot-000001.json").read_text())
    assert doc["hash"] == lot.hash and len(doc["sheets"]) == 10
    csv_rows = (out / lot.finess / "lot-000001.csv").read_text().splitlines()
    assert len(csv_rows) == 11 and csv_rows[1].startswith("1,1,")
    assert verify(j, out).ok


def test_export_rewrites_a_missing_file_and_removes_dead_temporaries(tmp_path: Path) -> None:
    j = filled(tmp_path, 20, 10)
    out = tmp_path / "out"
    Exporter(j, out).export()
    lot = j.lots()[0]
    path = out / lot.finess / "lot-000001.csv"
    data = path.read_bytes()
    path.unlink()
    stale = out / lot.finess / ".lot-000002.b2.tmp-999999999"
    stale.write_bytes(b"half a file")
    assert not verify(j, out).ok
    r = Exporter(j, out).export()
    assert r.restored == 1 and path.read_bytes() == data and not stale.exists()
    assert verify(j, out).ok


def test_batched_export_writes_the_same_bytes_as_lot_by_lot(tmp_path: Path) -> None:
    j = filled(tmp_path, 40, 10)  # 4 lots
    out, again = tmp_path / "out", tmp_path / "again"
    r = Exporter(j, out, batch_lots=3).export()
    assert (r.lots, r.batches, r.files) == (4, 2, 12)
    # One lot per barrier, ordinary writes: the files of the batched, O_DIRECT export.
    r1 = Exporter(j, again, batch_lots=1, direct=False).export()
    assert (r1.batches, r1.restored, r1.direct) == (4, 12, False)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((out / p).read_bytes() == (again / p).read_bytes() for p in files)
    assert len(files) == 12 and verify(j, out).ok and verify(j, again).ok


def test_a_failed_batch_records_nothing_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = filled(tmp_path, 40, 10)
    out = tmp_path / "out"
    real = export_mod.DurableWriter.write
    calls = []

    def failing(self: export_mod.DurableWriter, path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 8:  # the 3rd lot's CSV, in the 2nd batch
            raise OSError(28, "No space left on device")
        real(self, path, data)

    monkeypatch.setattr(export_mod.DurableWriter, "write", failing)
    with pytest.raises(StorageFull, match=r"No space left.*2 lots exported, the other 2"):
        Exporter(j, out, batch_lots=2).export()
    # The first batch (2 lots) is committed, the second left no trace.
    assert len(Exporter(j, out).exported()) == 2
    assert not [p for p in out.rglob(".*") if p.is_file()]
    monkeypatch.setattr(export_mod.DurableWriter, "write", real)
    r = Exporter(j, out, batch_lots=2).export()
    assert (r.lots, r.skipped) == (2, 2) and verify(j, out).ok


@pytest.mark.parametrize("refused_at", ["open", "write"])
def test_writer_falls_back_to_ordinary_writes_when_o_direct_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused_at: str
) -> None:
    if not export_mod._O_DIRECT:
        pytest.skip("no O_DIRECT here")
    real_open, real_write = os.open, os.write
    direct_fds: set[int] = set()

    def fake_open(path: object, flags: int, *a: object) -> int:
        if flags & export_mod._O_DIRECT:
            if refused_at == "open":
                raise OSError(errno.EINVAL, "Invalid argument")
            flags &= ~export_mod._O_DIRECT
            fd = real_open(path, flags, *a)
            direct_fds.add(fd)
            return fd
        return real_open(path, flags, *a)

    def fake_write(fd: int, data: object) -> int:
        if fd in direct_fds:
            direct_fds.discard(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(export_mod.os, "open", fake_open)
    monkeypatch.setattr(export_mod.os, "write", fake_write)
    writer = export_mod.DurableWriter()
    data = bytes(range(256)) * 40 + b"tail"  # not a multiple of the alignment
    writer.write(tmp_path / "f", data)
    writer.write(tmp_path / "g", data[:5000])
    writer.close()
    assert not writer.direct
    assert (tmp_path / "f").read_bytes() == data and (tmp_path / "g").read_bytes() == data[:5000]


def test_direct_writes_keep_exact_sizes(tmp_path: Path) -> None:
    writer = export_mod.DurableWriter()
    sizes = [0, 1, 4095, 4096, 4097, 5 << 20]  # the last one grows the aligned buffer
    for n in sizes:
        data = bytes((i * 7) % 251 for i in range(n % 9000)) * (n // 9000 + 1)
        data = data[:n]
        writer.write(tmp_path / f"f{n}", data)
        assert (tmp_path / f"f{n}").read_bytes() == data
    writer.close()


def _tamper(db: Path, sql: str, *args: object) -> None:
    con = sqlite3.connect(db)
    con.execute(sql, args)
    con.commit()
    con.close()


def test_tampered_sheet_names_its_lot(tmp_path: Path) -> None:
    """A forger holding the key re-seals an edited sheet: the seal opens, the chain does not."""
    j = filled(tmp_path, 40, 10)
    finess = j.pharmacies()[0]
    body, b2, _ = j.lot_rows(finess, 2)[3]
    forged = body.decode().replace('"amo":', '"amo":1', 1)
    invoice, tx = j.db.execute("SELECT invoice_no, transaction_id FROM sheet WHERE finess=? "
                               "AND lot=2 ORDER BY seq LIMIT 1 OFFSET 3", (finess,)).fetchone()
    sealed = j.cipher.seal(finess, invoice, tx, join_texts(forged, b2))
    _tamper(j.path, "UPDATE sheet SET sealed=? WHERE finess=? AND invoice_no=?", sealed, finess,
            invoice)
    report = verify(j)
    assert not report.ok
    assert any(p.startswith(f"lot {finess}/2:") for p in report.problems)
    assert not any(f"{finess}/1:" in p for p in report.problems)


def test_tampered_amount_column_and_lot_header_detected(tmp_path: Path) -> None:
    j = filled(tmp_path, 40, 10)
    finess = j.pharmacies()[1]
    _tamper(j.path, "UPDATE lot SET total=total+1 WHERE finess=? AND seq=1", finess)
    assert any(p.startswith(f"lot {finess}/1:") for p in verify(j).problems)


def test_franchise_running_total_checked(tmp_path: Path) -> None:
    j = filled(tmp_path, 20, 10)
    assert verify(j).ok
    _tamper(j.path, "UPDATE franchise_year SET charged=charged+100 WHERE person_key IN "
            "(SELECT person_key FROM franchise_year LIMIT 1)")
    assert any(p.startswith("franchise:") for p in verify(j).problems)


def test_removed_lot_breaks_the_chain(tmp_path: Path) -> None:
    j = filled(tmp_path, 60, 10)
    finess = j.pharmacies()[0]
    _tamper(j.path, "DELETE FROM lot WHERE finess=? AND seq=2", finess)
    problems = verify(j).problems
    assert f"lot {finess}/2: missing" in problems
    assert any(p.startswith(f"lot {finess}/3: prev_hash") for p in problems)
    assert any("point to a lot that is missing" in p for p in problems)


def test_rehashed_lot_still_breaks_the_chain(tmp_path: Path) -> None:
    """A forger who recomputes the edited lot's own hash breaks the next lot's link."""
    j = filled(tmp_path, 60, 10)
    finess = j.pharmacies()[0]
    _tamper(j.path, "UPDATE lot SET hash=? WHERE finess=? AND seq=2", "f" * 64, finess)
    problems = verify(j).problems
    assert any(p.startswith(f"lot {finess}/3: prev_hash") for p in problems)


def test_edited_export_file_names_its_lot(tmp_path: Path) -> None:
    j = filled(tmp_path, 40, 10)
    out = tmp_path / "out"
    Exporter(j, out).export()
    finess = j.pharmacies()[1]
    path = out / finess / "lot-000002.b2"
    text = path.read_text()
    path.write_text(text.replace("400", "401", 1))
    problems = verify(j, out).problems
    assert problems == [f"lot {finess}/2: {finess}/lot-000002.b2 differs from what was exported"]


def _cli_journal(tmp_path: Path) -> list[str]:
    """How the command names the journal `filled` made (the PostgreSQL run of
    test_billing_backends.py names its database)."""
    return ["--db", str(tmp_path / "j.db")]


def test_cli_list_close_export_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    j = filled(tmp_path, 25, 10)
    j.close()
    out = str(tmp_path / "out")
    where = _cli_journal(tmp_path)
    assert billing_main([*where, "list"]) == 0
    listing = capsys.readouterr().out
    assert "open" in listing and listing.count(" no ") == 2  # two closed, not exported
    assert billing_main([*where, "close-lot"]) == 0
    assert "closed lot" in capsys.readouterr().out
    assert billing_main([*where, "verify", "--out", out, "--no-progress"]) == 0
    assert "4 lots not exported yet" in capsys.readouterr().out  # not a failure
    assert billing_main([*where, "export", "--out", out, "--progress"]) == 0
    captured = capsys.readouterr()
    assert "exported 4 lots (25 sheets" in captured.out and "sheets/s" in captured.err
    assert billing_main([*where, "export", "--out", out]) == 0
    assert "exported 0 lots" in capsys.readouterr().out
    assert billing_main([*where, "verify", "--out", out, "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("OK: 4 lots, 25 sheets, 12 files")
    victim = next((tmp_path / "out").rglob("lot-000001.json"))
    victim.write_text("{}")
    assert billing_main([*where, "verify", "--out", out, "--no-progress"]) == 1
    assert "/1: " in capsys.readouterr().out
    assert billing_main(["--db", str(tmp_path / "none.db"), "list"]) == 2
    assert billing_main([*where, "frobnicate"]) == 2


def test_progress_bar_draws_rate() -> None:
    buf = io.StringIO()
    bar = ProgressBar(4, "export", stream=buf)
    for _ in range(4):
        bar(1, 1000)
    bar.close()
    assert "100% 4/4 lots, 4000 sheets" in buf.getvalue() and buf.getvalue().endswith("\n")


def test_logs_never_hold_a_full_nir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="comptoir.billing")
    j = Journal(tmp_path / "j.db", lot_size=1)
    sheet = j.record(dispensation(tx="log"))
    Exporter(j, tmp_path / "out").export()
    text = " ".join(r.getMessage() + str(vars(r)) for r in caplog.records)
    assert caplog.records and sheet.insured_nir not in text
    assert sheet.insured_nir[:13] not in text
