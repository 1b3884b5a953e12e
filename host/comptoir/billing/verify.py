"""`comptoir billing verify`: is the journal as it was written, and are the exported files
what the journal says? Every problem names the lot (FINESS/seq) it is in.

Checks, per pharmacy: lots numbered 1, 2, 3... with no gap; each lot's prev_hash is the hash
of the lot before (the first one's is all zeros); each lot's hash recomputed from its sheets
equals the stored one, and its count, invoice range and sums agree with its sheets; each sheet
belongs to an existing lot or is still open; invoice numbers run 1..N without a gap; the
franchise running totals (the yearly cap) equal the sheets' franchises; every sheet's sealed
texts open with the key, bound to their row (a blob altered, moved from another row or sealed
with another key is named by its lot, or as an open sheet, and invoice number); with
`deep`, each sheet's B2 records and CSV row are re-derived from its JSON; with an export
directory, each exported file's bytes hash to what the export journal recorded and to what the
journal renders now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .export import KINDS, Exporter, file_name
from .journal import SEAL_PROBLEM, Journal
from .model import Lot
from .render import GENESIS_HASH, lot_files, lot_hash, sheet_from_json, sheet_texts


@dataclass
class VerifyReport:
    lots: int = 0
    sheets: int = 0
    files: int = 0
    unexported: int = 0  # closed lots not exported yet: not a problem, reported
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    journal: Journal,
    out_dir: str | Path | None = None,
    *,
    deep: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    report = VerifyReport()
    exported = Exporter(journal, out_dir).exported() if out_dir is not None else {}
    db = journal.db
    for finess in journal.pharmacies():
        prev_hash = GENESIS_HASH
        for expected_seq, lot in enumerate(journal.lots(finess), 1):
            name = f"lot {finess}/{lot.seq}"
            if lot.seq != expected_seq:
                report.problems.append(f"lot {finess}/{expected_seq}: missing")
            if lot.prev_hash != prev_hash:
                report.problems.append(f"{name}: prev_hash is not the hash of the lot before")
            prev_hash = lot.hash
            bad: list[int] = []
            rows = journal.lot_rows(finess, lot.seq, bad)
            report.problems.extend(f"{name}: invoice {n}: {SEAL_PROBLEM}" for n in bad)
            report.problems.extend(_check_lot(name, lot, rows, deep, len(bad)))
            recorded = exported.get((finess, lot.seq))
            if out_dir is not None and recorded:
                if not bad:  # else the lot cannot be rendered (its sheets are reported)
                    report.problems.extend(_check_files(name, lot, rows, Path(out_dir),
                                                        recorded))
                report.files += len(KINDS)
            elif out_dir is not None:
                report.unexported += 1
            report.lots += 1
            report.sheets += len(rows) + len(bad)
            if progress:
                progress(1, len(rows) + len(bad))
        bad = []
        journal.open_rows(finess, bad)
        report.problems.extend(f"pharmacy {finess}: open invoice {n}: {SEAL_PROBLEM}"
                               for n in bad)
        invoices = [r[0] for r in db.execute(
            "SELECT invoice_no FROM sheet WHERE finess=? ORDER BY invoice_no", (finess,))]
        if invoices != list(range(1, len(invoices) + 1)):
            report.problems.append(f"pharmacy {finess}: invoice numbers are not 1..{len(invoices)}")
    orphans = db.execute(
        "SELECT finess, lot, COUNT(*) FROM sheet s WHERE lot IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM lot l WHERE l.finess=s.finess AND l.seq=s.lot) GROUP BY finess, lot"
    ).fetchall()
    for finess, seq, n in orphans:
        report.problems.append(f"lot {finess}/{seq}: {n} sheets point to a lot that is missing")
    (drift,) = db.execute(
        "SELECT COUNT(*) FROM (SELECT person_key, year, SUM(franchise) AS s FROM sheet "
        "GROUP BY person_key, year HAVING SUM(franchise) > 0) a LEFT JOIN franchise_year f "
        "USING (person_key, year) WHERE f.charged IS NULL OR f.charged <> a.s"
    ).fetchone()
    if drift:
        report.problems.append(f"franchise: {drift} yearly running totals differ from the sheets")
    return report


def _check_lot(
    name: str, lot: Lot, rows: list[tuple[bytes, bytes, bytes]], deep: bool, unopened: int = 0
) -> list[str]:
    problems = []
    if unopened:  # the hash cannot be recomputed without them: already reported by invoice
        return problems
    if lot_hash(lot, rows) != lot.hash:
        problems.append(f"{name}: content does not match its hash (edited?)")
    if len(rows) != lot.count:
        problems.append(f"{name}: holds {len(rows)} sheets, its header says {lot.count}")
    sheets = []
    for raw in rows:
        body, b2, csv = (x.decode("ascii", "replace") for x in raw)
        try:
            sheet = sheet_from_json(body)
        except (ValueError, TypeError, KeyError):
            problems.append(f"{name}: a care sheet is not readable")
            continue
        sheets.append(sheet)
        if deep and sheet_texts(sheet)[1:] != (b2, csv):
            problems.append(f"{name}: invoice {sheet.invoice_no}: B2/CSV differ from the sheet")
        if sheet.amo + sheet.amc + sheet.patient != sheet.total:
            problems.append(f"{name}: invoice {sheet.invoice_no}: parts do not add up")
    if sheets and (
        sheets[0].invoice_no != lot.first_invoice
        or sheets[-1].invoice_no != lot.last_invoice
        or sum(s.total for s in sheets) != lot.total
        or sum(s.amo for s in sheets) != lot.amo
        or sum(s.amc for s in sheets) != lot.amc
        or sum(s.patient for s in sheets) != lot.patient
        or sum(s.franchise for s in sheets) != lot.franchise
    ):
        problems.append(f"{name}: invoice range or totals differ from its sheets")
    return problems


def _check_files(
    name: str,
    lot: Lot,
    rows: list[tuple[bytes, bytes, bytes]],
    out: Path,
    recorded: dict[str, tuple[str, str, int]],
) -> list[str]:
    problems = []
    expected = lot_files(lot, rows)
    for kind in KINDS:
        if kind not in recorded:
            problems.append(f"{name}: {kind} file not in the export journal")
            continue
        rel, sha, size = recorded[kind]
        if rel != file_name(lot, kind):
            problems.append(f"{name}: export journal names {rel}")
        if hashlib.sha256(expected[kind]).hexdigest() != sha:
            problems.append(f"{name}: {kind} file recorded does not match the journal")
        path = out / rel
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            problems.append(f"{name}: {rel} is missing")
            continue
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            problems.append(f"{name}: {rel} differs from what was exported")
    return problems
