"""Exactly-once export of closed lots: per lot a transmission file (.b2), an accounts CSV and
a JSON file, under OUT/<FINESS>/lot-NNNNNN.<ext>.

The bytes of a lot's files are a pure function of the journal (render.py), so redoing a lot
after a crash writes the same bytes over the same names. Lots are exported in batches (up to
`batch_lots` lots or `batch_sheets` sheets) with one durability barrier per batch:
1. for each lot of the batch: read its rows, render the three files, write each to a
   temporary name (.lot-NNNNNN.<ext>.tmp-<pid>) and fsync it (a writer thread does the
   writing, hashing and fsyncs while the next lot is read and rendered);
2. once every temporary of the batch is durable: rename each over its final name (atomic),
   then fsync each directory touched;
3. record every file of the batch (name, sha256, size) in the export journal, one commit.
Killed before 3, the next run redoes the whole batch (same bytes, same names); killed after
3, its lots are skipped. A lot is recorded as exported only once its files are durable under
their final names. Temporary files of dead processes are removed.

The files are the deliverable handed to the transmission software, so they are in clear (the
B2 file and the JSON hold NIRs): each is created mode 0600 and a directory the exporter creates
is 0700 (an existing one keeps its mode: the operator may grant a transmission group access).

Files are written with O_DIRECT where the file system allows it (then fsync'd all the same):
they are written once and not read back, so going through the page cache would only cost
copies and evict the journal's pages. Elsewhere (tmpfs, other systems) ordinary writes.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import logging
import mmap
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import crashpoints
from .errors import StorageFull
from .journal import Journal
from .model import Lot
from .render import lot_files

log = logging.getLogger("comptoir.billing")

KINDS = ("b2", "csv", "json")
_TMP = re.compile(r"^\.lot-\d+\.\w+\.tmp-(\d+)$")
BATCH_LOTS = 64  # lots per durability barrier (one directory fsync, one journal commit)
BATCH_SHEETS = 64_000
IN_FLIGHT = 4  # lots rendered and not yet written: bounds memory (~1.5 MB per 1 000 sheets)
_ALIGN = 4096  # O_DIRECT buffer, offset and length alignment (covers 512-byte devices)
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
# No room: the disk or a quota is full, or the process's file size limit is reached.
_NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
FILE_MODE = 0o600  # they hold NIRs: the service account only
DIR_MODE = 0o700


@dataclass
class ExportReport:
    lots: int = 0  # lots written this run
    sheets: int = 0
    files: int = 0
    bytes: int = 0
    skipped: int = 0  # lots already exported
    restored: int = 0  # files found missing and written again
    batches: int = 0  # durability barriers (directory fsyncs + journal commit) this run
    direct: bool = False  # files written with O_DIRECT
    busy: bool = False  # another counter is exporting this journal now: nothing done here


def file_name(lot: Lot, kind: str) -> str:
    return f"{lot.finess}/lot-{lot.seq:06d}.{kind}"


def _tmp_path(directory: Path, lot: Lot, kind: str, pid: int) -> Path:
    return directory / f".lot-{lot.seq:06d}.{kind}.tmp-{pid}"


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


class DurableWriter:
    """Writes a whole file and fsyncs it. With O_DIRECT when allowed: the bytes are copied
    into an aligned buffer, written padded to the alignment, and the file truncated to its
    size before the fsync. Falls back to ordinary writes, for good, the first time the file
    system refuses O_DIRECT (EINVAL). Not thread-safe: one writer per thread."""

    def __init__(self, direct: bool = True) -> None:
        self.direct = direct and _O_DIRECT != 0
        self._buf: mmap.mmap | None = None

    def write(self, path: Path, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        if self.direct and self._write_direct(path, data, flags):
            return
        fd = os.open(path, flags, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_direct(self, path: Path, data: bytes, flags: int) -> bool:
        size = len(data)
        padded = -(-size // _ALIGN) * _ALIGN
        if self._buf is None or len(self._buf) < padded:
            if self._buf is not None:
                self._buf.close()
            self._buf = mmap.mmap(-1, max(padded, 4 << 20))  # page-aligned, anonymous
        buf = self._buf
        buf[:size] = data
        buf[size:padded] = bytes(padded - size)
        try:
            fd = os.open(path, flags | _O_DIRECT, FILE_MODE)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            self.direct = False
            return False
        try:
            view = memoryview(buf)
            done = 0
            try:
                while done < padded:
                    done += os.write(fd, view[done:padded])
                    if done % _ALIGN:
                        raise OSError(errno.EINVAL, "short unaligned O_DIRECT write")
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self.direct = False
                return False  # the caller rewrites the whole file (O_TRUNC) the ordinary way
            finally:
                view.release()
            if padded != size:
                os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def close(self) -> None:
        if self._buf is not None:
            self._buf.close()
            self._buf = None


class Exporter:
    def __init__(
        self,
        journal: Journal,
        out_dir: str | Path,
        *,
        batch_lots: int = BATCH_LOTS,
        batch_sheets: int = BATCH_SHEETS,
        direct: bool = True,
    ) -> None:
        if batch_lots < 1:
            raise ValueError("batch_lots must be at least 1")
        self.journal = journal
        self.out = Path(out_dir)
        self.batch_lots = batch_lots
        self.batch_sheets = batch_sheets
        self.direct = direct

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
        `progress(lots, sheets)` is called as lots are skipped or committed. On a journal
        shared by several counters (PostgreSQL), one exports at a time: the others get a
        report saying `busy` and do nothing."""
        if self.journal.dialect.name == "postgresql":
            from .journal_pg import export_lock

            with export_lock(self.journal) as mine:
                if not mine:
                    log.info("export left to the counter exporting now")
                    return ExportReport(busy=True)
                return self._export(finess, progress)
        return self._export(finess, progress)

    def _export(
        self,
        finess: str | None,
        progress: Callable[[int, int], None] | None,
    ) -> ExportReport:
        report = ExportReport()
        done = self.exported()
        todo: list[Lot] = []
        cleaned: set[str] = set()
        for lot in self.journal.lots(finess):
            if lot.finess not in cleaned:
                directory = self.out / lot.finess
                self.out.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
                directory.mkdir(exist_ok=True, mode=DIR_MODE)
                remove_stale_temporaries(directory)
                cleaned.add(lot.finess)
            rec = done.get((lot.finess, lot.seq), {})
            present = [(self.out / file_name(lot, k)).exists() for k in KINDS]
            if len(rec) == len(KINDS) and all(present):
                report.skipped += 1
                if progress:
                    progress(1, lot.count)
                continue
            if len(rec) == len(KINDS):
                # Journal says exported but a file is gone: rewrite the same bytes.
                report.restored += present.count(False)
                log.warning("export file missing, written again",
                            extra={"finess": lot.finess, "lot": lot.seq})
            todo.append(lot)
        if not todo:
            return report
        writer = DurableWriter(self.direct)
        # One writer thread: it writes, hashes and fsyncs (all without the GIL) while this
        # thread reads and renders the next lot.
        with (ThreadPoolExecutor(1, thread_name_prefix="billing-export") as pool,
              self.journal.bulk_reads()):
            try:
                for batch in self._batches(todo):
                    self._export_batch(batch, pool, writer, report, progress)
            except OSError as e:
                if e.errno not in _NO_ROOM:
                    raise
                # The failed batch left nothing behind (_export_batch), the batches before
                # it are complete and recorded: say so in one line the operator can act on.
                raise StorageFull(
                    f"export to {self.out}: no room writing {e.filename or 'a lot file'} "
                    f"({e.strerror}); {report.lots} lots exported, the other "
                    f"{len(todo) - report.lots} not recorded as exported and their temporary "
                    "files removed: free space, then run the export again") from e
            finally:
                pool.submit(writer.close)
        report.direct = writer.direct
        return report

    def _batches(self, lots: list[Lot]) -> list[list[Lot]]:
        batches: list[list[Lot]] = []
        batch: list[Lot] = []
        sheets = 0
        for lot in lots:
            if batch and (len(batch) >= self.batch_lots
                          or sheets + lot.count > self.batch_sheets):
                batches.append(batch)
                batch, sheets = [], 0
            batch.append(lot)
            sheets += lot.count
        if batch:
            batches.append(batch)
        return batches

    @staticmethod
    def _write_tmp(writer: DurableWriter, path: Path, data: bytes) -> tuple[str, int]:
        try:
            writer.write(path, data)
        except OSError as e:
            if e.filename is None:  # os.write() errors name no file: say which lot's it was
                e.filename = str(path)
            raise
        return hashlib.sha256(data).hexdigest(), len(data)

    def _export_batch(
        self,
        batch: list[Lot],
        pool: ThreadPoolExecutor,
        writer: DurableWriter,
        report: ExportReport,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        pid = os.getpid()
        jobs: list[tuple[Lot, str, Path, Future[tuple[str, int]]]] = []
        window: collections.deque[Future[tuple[str, int]]] = collections.deque()
        try:
            # 1. every lot rendered, written to its temporaries and fsync'd.
            for lot in batch:
                rows = self.journal.lot_rows(lot.finess, lot.seq)
                if len(rows) != lot.count:
                    raise RuntimeError(f"lot {lot.finess}/{lot.seq}: {len(rows)} sheets, "
                                       f"expected {lot.count}; run verify")
                files = lot_files(lot, rows)
                del rows
                directory = self.out / lot.finess
                for kind in KINDS:
                    tmp = _tmp_path(directory, lot, kind, pid)
                    fut = pool.submit(self._write_tmp, writer, tmp, files[kind])
                    jobs.append((lot, kind, tmp, fut))
                    window.append(fut)
                del files
                while len(window) > IN_FLIGHT * len(KINDS):
                    window.popleft().result()
            written = [(lot, kind, tmp, fut.result()) for lot, kind, tmp, fut in jobs]
        except BaseException:
            # Nothing of this batch is renamed: cancel what is queued, wait for what runs,
            # remove the temporaries. The first error goes on up.
            for _, _, tmp, fut in jobs:
                if not fut.cancel():
                    fut.exception()
                tmp.unlink(missing_ok=True)
            raise
        crashpoints.hit("export.tmp_written")
        # 2. renamed over the final names, then the directories made durable.
        directories: dict[Path, None] = {}
        try:
            for i, (lot, kind, tmp, _) in enumerate(written):
                final = self.out / file_name(lot, kind)
                os.replace(tmp, final)
                directories[final.parent] = None
                if i % len(KINDS) == len(KINDS) - 1:
                    crashpoints.hit("export.lot_renamed")
            for directory in directories:
                _fsync_dir(directory)
        except OSError:
            # A rename or a directory fsync failed: the batch is not recorded (the next run
            # redoes it, same bytes), and no temporary is left behind by a live process.
            for _, _, tmp, _ in written:
                tmp.unlink(missing_ok=True)
            raise
        crashpoints.hit("export.renamed")
        # 3. one commit records the whole batch.
        now = int(time.time())
        with self.journal.write(f"export record of {len(batch)} lots") as db:
            db.executemany(
                "INSERT INTO export VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (finess, lot, kind) "
                "DO UPDATE SET name = excluded.name, sha256 = excluded.sha256, "
                "size = excluded.size, exported_at = excluded.exported_at",
                [(lot.finess, lot.seq, kind, file_name(lot, kind), sha, size, now)
                 for lot, kind, _, (sha, size) in written],
            )
        crashpoints.hit("export.committed")
        report.batches += 1
        report.bytes += sum(size for _, _, _, (_, size) in written)
        report.files += len(written)
        for lot in batch:
            report.lots += 1
            report.sheets += lot.count
            log.info("lot exported", extra={"finess": lot.finess, "lot": lot.seq})
            if progress:
                progress(1, lot.count)
