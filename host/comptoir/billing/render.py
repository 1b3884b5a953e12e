"""The text forms of a care sheet and of a lot: canonical JSON (the source of truth, hashed into
the lot chain), our B2-shaped fixed-width records, and the accounts CSV row.

A sheet's three texts are made once, when it is recorded, and stored with it; a lot's files are
those texts framed by a header and a trailer computed from the lot row. So an export is a pure
function of the journal: redoing it after a crash writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import fields

from .fixedwidth import RecordSpec
from .model import CareSheet, Lot, SheetLine

FORMAT_ID = "COMPTOIR-B2"
FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64

# Record layouts (docs/billing.md has the column positions).
FILE_HEAD = RecordSpec("000", [
    ("format", 12, "a"), ("version", 2, "n"), ("finess", 9, "n"), ("lot_seq", 9, "n"),
    ("closed", 14, "n"),
])
LOT_HEAD = RecordSpec("100", [
    ("finess", 9, "n"), ("lot", 3, "n"), ("lot_seq", 9, "n"), ("invoices", 5, "n"),
    ("opened", 14, "n"), ("closed", 14, "n"), ("prev_hash", 64, "a"),
])
INVOICE = RecordSpec("200", [
    ("invoice", 9, "n"), ("transaction", 36, "a"), ("nir", 13, "a"), ("nir_key", 2, "n"),
    ("regime", 2, "n"), ("caisse", 3, "n"), ("centre", 4, "n"), ("birth_date", 8, "n"),
    ("birth_rank", 1, "n"), ("beneficiary_rank", 2, "n"), ("quality", 1, "n"),
    ("nature", 2, "n"), ("tiers_payant", 2, "n"),
])
PRESCRIPTION = RecordSpec("210", [
    ("invoice", 9, "n"), ("prescriber", 11, "n"), ("prescribed", 8, "n"),
    ("pharmacist", 11, "n"), ("dispensed", 8, "n"), ("amc_number", 10, "n"),
    ("amc_contract", 2, "n"),
])
LINE = RecordSpec("400", [
    ("invoice", 9, "n"), ("line", 2, "n"), ("code", 13, "n"), ("quantity", 3, "n"),
    ("unit_price", 8, "n"), ("base", 8, "n"), ("rate", 3, "n"), ("total", 8, "n"),
    ("amo", 8, "n"), ("amc", 8, "n"), ("patient", 8, "n"), ("franchise", 5, "n"),
])
TOTALS = RecordSpec("500", [
    ("invoice", 9, "n"), ("lines", 2, "n"), ("total", 8, "n"), ("amo", 8, "n"),
    ("amc", 8, "n"), ("patient", 8, "n"), ("franchise", 5, "n"), ("counter", 8, "n"),
])
LOT_TRAIL = RecordSpec("600", [
    ("finess", 9, "n"), ("lot", 3, "n"), ("lot_seq", 9, "n"), ("invoices", 5, "n"),
    ("records", 7, "n"), ("total", 12, "n"), ("amo", 12, "n"), ("amc", 12, "n"),
    ("patient", 12, "n"), ("franchise", 10, "n"),
])
FILE_TRAIL = RecordSpec("999", [
    ("finess", 9, "n"), ("lot_seq", 9, "n"), ("records", 7, "n"), ("hash", 64, "a"),
])
SPECS = {s.code: s for s in (FILE_HEAD, LOT_HEAD, INVOICE, PRESCRIPTION, LINE, TOTALS,
                              LOT_TRAIL, FILE_TRAIL)}

CSV_COLUMNS = (
    "lot", "invoice_no", "transaction_id", "dispensed_on", "prescribed_on", "nature",
    "tiers_payant", "lines", "total_cents", "amo_cents", "amc_cents", "patient_cents",
    "franchise_cents", "counter_cents", "due_from_amo_cents", "due_from_amc_cents",
)
CSV_HEADER = ",".join(CSV_COLUMNS) + "\n"

_SHEET_FIELDS = tuple(f.name for f in fields(CareSheet) if f.name != "lines")
_LINE_FIELDS = tuple(f.name for f in fields(SheetLine))


def _date8(iso: str) -> int:
    return int(iso.replace("-", ""))


def stamp(unix: int) -> int:
    """Unix seconds as YYYYMMDDhhmmss (UTC)."""
    return int(time.strftime("%Y%m%d%H%M%S", time.gmtime(unix)))


def sheet_json(sheet: CareSheet) -> str:
    d: dict[str, object] = {k: getattr(sheet, k) for k in _SHEET_FIELDS}
    d["lines"] = [{k: getattr(x, k) for k in _LINE_FIELDS} for x in sheet.lines]
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sheet_from_json(text: str) -> CareSheet:
    d = json.loads(text)
    lines = tuple(SheetLine(**x) for x in d.pop("lines"))
    return CareSheet(**d, lines=lines)


def sheet_b2(s: CareSheet) -> str:
    out = [
        INVOICE.format(
            s.invoice_no, s.transaction_id, s.insured_nir[:13], int(s.insured_nir[13:]),
            s.regime, s.caisse, s.centre, s.birth_date, s.birth_rank, s.beneficiary_rank,
            s.quality, s.nature, s.tiers_payant,
        ),
        PRESCRIPTION.format(
            s.invoice_no, int(s.prescriber_rpps), _date8(s.prescribed_on),
            int(s.pharmacist_rpps), _date8(s.dispensed_on), s.amc_number, s.amc_contract_type,
        ),
    ]
    for n, x in enumerate(s.lines, 1):
        out.append(LINE.format(
            s.invoice_no, n, int(x.code), x.quantity, x.unit_price, x.base, x.rate, x.total,
            x.amo, x.amc, x.patient, x.franchise,
        ))
    out.append(TOTALS.format(
        s.invoice_no, len(s.lines), s.total, s.amo, s.amc, s.patient, s.franchise, s.counter,
    ))
    return "".join(out)


def sheet_csv(s: CareSheet) -> str:
    """The accounts row without its lot column (prefixed at export). No personal data."""
    due_amo = s.amo if s.tiers_payant in (5, 15) else 0
    due_amc = s.amc if s.tiers_payant in (15, 25) else 0
    return (
        f"{s.invoice_no},{s.transaction_id},{s.dispensed_on},{s.prescribed_on},{s.nature},"
        f"{s.tiers_payant:02d},{len(s.lines)},{s.total},{s.amo},{s.amc},{s.patient},"
        f"{s.franchise},{s.counter},{due_amo},{due_amc}\n"
    )


def sheet_texts(sheet: CareSheet) -> tuple[str, str, str]:
    """(json, b2, csv), what the journal stores."""
    return sheet_json(sheet), sheet_b2(sheet), sheet_csv(sheet)


def lot_header(lot: Lot) -> str:
    return (
        f"{lot.finess}|{lot.seq}|{lot.count}|{lot.first_invoice}|{lot.last_invoice}|"
        f"{lot.opened_at}|{lot.closed_at}|{lot.total}|{lot.amo}|{lot.amc}|{lot.patient}|"
        f"{lot.franchise}"
    )


def lot_hash(lot: Lot, rows: Iterable[Sequence[str | bytes]]) -> str:
    """sha256 over the lot's header, the previous lot's hash and every text of every sheet, in
    invoice order: editing anything in a closed lot, or the chain, changes it."""
    h = hashlib.sha256(f"comptoir-lot/1\n{lot_header(lot)}\n{lot.prev_hash}\n".encode())
    for row in rows:
        body, b2, csv = (x if isinstance(x, bytes) else x.encode() for x in row)
        h.update(body)
        h.update(b"\n")
        h.update(b2)
        h.update(csv)
    return h.hexdigest()


def lot_files(lot: Lot, rows: Sequence[Sequence[bytes]]) -> dict[str, bytes]:
    """The three export files of a closed lot, {"b2", "csv", "json"} -> bytes, from its rows
    (body, b2, csv) as bytes. Joins only: this is the export's inner loop."""
    blocks = b"".join([r[1] for r in rows])
    records = blocks.count(b"\n") + 4
    b2 = b"".join((
        FILE_HEAD.format(FORMAT_ID, FORMAT_VERSION, int(lot.finess), lot.seq,
                         stamp(lot.closed_at)).encode(),
        LOT_HEAD.format(int(lot.finess), lot.seq % 1000, lot.seq, lot.count,
                        stamp(lot.opened_at), stamp(lot.closed_at), lot.prev_hash).encode(),
        blocks,
        LOT_TRAIL.format(int(lot.finess), lot.seq % 1000, lot.seq, lot.count, records,
                         lot.total, lot.amo, lot.amc, lot.patient, lot.franchise).encode(),
        FILE_TRAIL.format(int(lot.finess), lot.seq, records, lot.hash).encode(),
    ))
    prefix = f"{lot.seq},".encode()
    # Each stored row ends with a newline, so joining on the prefix prefixes every row.
    csv = CSV_HEADER.encode() + (prefix + prefix.join([r[2] for r in rows]) if rows else b"")
    head = json.dumps({
        "format": "comptoir-billing-lot", "version": FORMAT_VERSION, "finess": lot.finess,
        "lot": lot.seq, "count": lot.count, "opened_at": lot.opened_at,
        "closed_at": lot.closed_at, "totals": {"total": lot.total, "amo": lot.amo,
        "amc": lot.amc, "patient": lot.patient, "franchise": lot.franchise},
        "prev_hash": lot.prev_hash, "hash": lot.hash,
    }, sort_keys=True, separators=(",", ":"))
    js = b"".join((head[:-1].encode(), b',"sheets":[', b",".join([r[0] for r in rows]),
                   b"]}\n"))
    return {"b2": b2, "csv": csv, "json": js}
