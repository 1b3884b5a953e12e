"""Exactly-once export of closed lots: per lot a transmission file (.b2), an accounts CSV and
a JSON file, under OUT/<FINESS>/lot-NNNNNN.<ext>.

Protocol, per lot (a crash anywhere is safe because the bytes are a pure function of the
journal, see render.py):
1. render the three files from the journal;
2. write each to a temporary name (.lot-NNNNNN.<ext>.tmp-<pid>), fsync it;
3. rename each over its final name (atomic), fsync the directory;
4. record the three files (name, sha256, size) in the export journal, one commit.
Killed before 4, the next run redoes the lot and writes the same bytes over the same names.
Killed after 4, the lot is skipped. Temporary files of dead processes are removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import crashpoints
from .journal import Journal
from .model import Lot
from .render import lot_files

log = logging.getLogger("comptoir.billing")

KINDS = ("b2", "csv", "json")
_TMP = re.compile(r"^\.lot-\d+\.\w+\.tmp-(\d+)$")


@dataclass
class ExportReport:
    lots: int = 0  # lots written this run
    sheets: int = 0
    files: int = 0
    bytes: int = 0
    skipped: int = 0  # lots already exported
    restored: int = 0  # files found missing and written again


def file_name(lot: Lot, kind: str) -> str:
    return f"{lot.finess}/lot-{lot.seq:06d}.{kind}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temp files left by exporters that died (their pid is gone)."""
    removed = 0
    if not directory.is_dir():
        return 0
    for entry in os.scandir(directory):
        m = _TMP.match(entry.name)
        if m and not _pid_alive(int(m.group(1))):
            os.unlink(entry.path)
            removed += 1
    return removed


class Exporter:
    def __init__(self, journal: Journal, out_dir: str | Path) -> None:
        self.journal = journal
        self.out = Path(out_dir)

    def exported(self) -> dict[tuple[str, int], dict[str, tuple[str, str, int]]]:
        """(finess, lot) -> kind -> (name, sha256, size), as the export journal says."""
        out: dict[tuple[str, int], dict[str, tuple[str, str, int]]] = {}
        for finess, lot, kind, name, sha, size in self.journal.db.execute(
            "SELECT finess, lot, kind, name, sha256, size FROM export"
        ):
            out.setdefault((finess, lot), {})[kind] = (name, sha, size)
        return out

    def pending(self, finess: str | None = None) -> list[Lot]:
        done = self.exported()
        return [
            lot for lot in self.journal.lots(finess)
            if len(done.get((lot.finess, lot.seq), {})) < len(KINDS)
            or not all((self.out / file_name(lot, k)).exists() for k in KINDS)
        ]

    def export(
        self,
        finess: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExportReport:
        """Export every closed lot not yet exported (or whose files went missing).
        `progress(lots_done, sheets_done)` is called after each lot."""
        report = ExportReport()
        done = self.exported()
        lots = self.journal.lots(finess)
        cleaned: set[str] = set()
        for lot in lots:
            directory = self.out / lot.finess
            if lot.finess not in cleaned:
                directory.mkdir(parents=True, exist_ok=True)
                remove_stale_temporaries(directory)
                cleaned.add(lot.finess)
            rec = done.get((lot.finess, lot.seq), {})
            present = [(self.out / file_name(lot, k)).exists() for k in KINDS]
            if len(rec) == len(KINDS) and all(present):
                report.skipped += 1
            else:
                if len(rec) == len(KINDS):
                    # Journal says exported but a file is gone: rewrite the same bytes.
                    report.restored += present.count(False)
                    log.warning("export file missing, written again",
                                extra={"finess": lot.finess, "lot": lot.seq})
                self._export_lot(lot, report)
            if progress:
                progress(1, lot.count)
        return report

    def _export_lot(self, lot: Lot, report: ExportReport) -> None:
        rows = self.journal.lot_rows(lot.finess, lot.seq)
        if len(rows) != lot.count:
            raise RuntimeError(f"lot {lot.finess}/{lot.seq}: {len(rows)} sheets, expected "
                               f"{lot.count}; run verify")
        files = lot_files(lot, rows)
        directory = self.out / lot.finess
        pid = os.getpid()
        written: list[tuple[str, str, str, int]] = []
        for kind in KINDS:
            data = files[kind]
            name = file_name(lot, kind)
            final = self.out / name
            tmp = directory / f".{final.name}.tmp-{pid}"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            written.append((kind, name, hashlib.sha256(data).hexdigest(), len(data)))
            report.bytes += len(data)
        crashpoints.hit("export.tmp_written")
        for kind in KINDS:
            final = self.out / file_name(lot, kind)
            os.replace(directory / f".{final.name}.tmp-{pid}", final)
        _fsync_dir(directory)
        crashpoints.hit("export.renamed")
        now = int(time.time())
        with self.journal.write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO export VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(lot.finess, lot.seq, kind, name, sha, size, now)
                 for kind, name, sha, size in written],
            )
        crashpoints.hit("export.committed")
        report.lots += 1
        report.sheets += lot.count
        report.files += len(KINDS)
        log.info("lot exported", extra={"finess": lot.finess, "lot": lot.seq})
