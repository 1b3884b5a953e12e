"""What the verifier must remember across daemon restarts, in one append-only journal file:

- per credential: the last counter accepted (it must increase) and the key of the QR
  presentation that carried it, until the credential expires;
- the highest activation generation seen per insured person, so that an old phone is refused
  even offline once a newer one was seen here. Persons are keyed by HMAC(pepper, NIR): the file
  holds no NIR in clear, and without the pepper a key cannot be brute-forced over the NIR space.

The checks run on an in-memory copy of that state, loaded at start; an accepted presentation is
appended to the journal (one write of one fixed-size record) before `commit` returns. Why not
SQLite, like the other stores: inside the verification loop an SQLite commit cost 45-55 us
(its code and pages are cold after each ECDSA verification), an append 5-10 us, measured
(docs/tokens.md §9); the guarantee is the same as SQLite's WAL with synchronous=NORMAL: a
daemon crash loses nothing written, a power cut may lose the last records (`durable=True`
fsyncs each record).

One record per credential is enough to refuse every replay: a presentation already accepted
has a counter at most the last one accepted for its credential, so after a restart an old one
is refused (as `counter_not_increasing`; the last one as `replayed`). While the daemon runs,
every QR presentation seen in the last minutes is also kept in memory by its key, so a replay
is refused with its own reason, `replayed`. Replay keys are (credential id, presentation id =
the cti nonce), never signature bytes: (r, n-s) verifies too.

The journal (format in docs/tokens.md §8): a header record, then records of 80 bytes, each with
its CRC-32. Loading takes the maximum of every readable record (counters and generations only
grow, replay keys only accumulate), so records can be applied in any order and a damaged one
costs only itself: it is skipped and reported, the others still count; a partial record at the
end (a write cut short) is dropped. A file that does not start with a valid header is refused
(StateCorrupt): it is not this journal. When dead records (superseded or expired) outnumber the
live ones, the journal is rewritten with the live state only (temporary file, fsync, rename).

The checks and the write for one presentation happen under one lock, so two boards verifying
the same token at once cannot both succeed. Because the checks use memory, one process only may
use the journal: `<file>.lock` is flocked when it is opened, and a second daemon on the same
state directory is refused with StateInUse.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import logging
import os
import sqlite3
import struct
import threading
import zlib
from pathlib import Path

from comptoir.clock import now as clock_now
from comptoir.storage import load_or_create_key

from .reasons import Reason

log = logging.getLogger("comptoir.tokens")

# type, id length, id, counter (or generation), expires, key length, key, key expires, CRC-32
RECORD = struct.Struct(">cB16sQqB33sqI")
RECORD_SIZE = RECORD.size  # 80
_CRC_OFFSET = RECORD_SIZE - 4
MAGIC = b"COMPTOIR-REPLAY1"  # the header record's id
VERSION = 1
_HEADER, _CREDENTIAL, _ACTIVATION = b"H", b"C", b"A"
_PURGE_SEEN_EVERY = 256  # commits between purges of the in-memory replay keys
_PURGE_CREDENTIALS_EVERY = 3600  # seconds between purges of expired credentials
_COMPACT_MIN_RECORDS = 4096  # never rewrite a journal smaller than this
_PERSONS_MEMO = 4096  # NIR -> HMAC memo, in memory only (credentials in memory hold NIRs too)


class StateInUse(RuntimeError):
    """Another process has the verifier state open."""


class StateCorrupt(RuntimeError):
    """The file is not a verifier journal, or its header is damaged."""


def load_pepper(path: str | Path) -> bytes:
    """Read the installation's pepper, creating it (32 random bytes, mode 0600) if missing:
    a key file like the stores' keys, read with the same checks."""
    return load_or_create_key(path)


def replay_key(credential_id: bytes, presentation_id: bytes) -> bytes:
    # Length-prefixed so that two different (id, id) pairs never concatenate to the same key.
    return bytes((len(credential_id),)) + credential_id + presentation_id


def pack_record(
    kind: bytes, ident: bytes, counter: int, expires: int, key: bytes = b"", key_expires: int = 0
) -> bytes:
    if len(ident) > 16 or len(key) > 33:
        raise ValueError("journal record: id or key too long")
    body = RECORD.pack(kind, len(ident), ident, counter, expires, len(key), key, key_expires, 0)
    return body[:_CRC_OFFSET] + zlib.crc32(body[:_CRC_OFFSET]).to_bytes(4, "big")


def _unpack(record: bytes) -> tuple[bytes, bytes, int, int, bytes, int] | None:
    """A record's fields, or None if it is damaged (CRC, lengths or type)."""
    if zlib.crc32(record[:_CRC_OFFSET]) != int.from_bytes(record[_CRC_OFFSET:], "big"):
        return None
    kind, id_len, ident, counter, expires, key_len, key, key_expires, _ = RECORD.unpack(record)
    if id_len > 16 or key_len > 33 or kind not in (_HEADER, _CREDENTIAL, _ACTIVATION):
        return None
    return kind, ident[:id_len], counter, expires, key[:key_len], key_expires


class VerifierState:
    def __init__(self, path: str | Path, *, pepper: bytes, durable: bool = False) -> None:
        """`durable=False` survives a daemon crash; True also survives a power cut, at the
        cost of an fsync per accepted presentation."""
        if len(pepper) < 16:
            raise ValueError("pepper too short")
        self._pepper = pepper
        self._durable = durable
        self._path = Path(path)
        self._lock = threading.Lock()
        # credential -> (last counter, credential expiry, its replay key or b"", key expiry)
        self._counters: dict[bytes, tuple[int, int, bytes, int]] = {}
        self._seen: dict[bytes, int] = {}  # QR replay key -> expiry (every one seen lately)
        self._generations: dict[bytes, int] = {}
        self._persons: dict[str, bytes] = {}  # NIR -> person key (a pure function, memoised)
        self._commits = 0
        self._credentials_purged_at = int(clock_now())
        self.skipped_records = 0  # damaged records found when the journal was loaded
        self._broken: str | None = None  # set when the journal can no longer be appended to
        self._fd = -1
        self._lockfile = _lock_exclusively(Path(f"{path}.lock"))
        try:
            # A rewrite killed half-way leaves its temporary file; the lock says no one else
            # is writing one now.
            for stale in self._path.parent.glob(f".{self._path.name}.tmp-*"):
                if stale.is_file():
                    stale.unlink()
            self._records = self._load(int(clock_now()))
            if self._fd < 0:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        except BaseException:
            if self._fd >= 0:
                os.close(self._fd)
            os.close(self._lockfile)
            raise

    # --- the journal ----------------------------------------------------------------------

    def _load(self, now: int) -> int:
        """Read the journal into memory (creating it if missing); -> records in the file."""
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            self._rewrite(now)  # a new journal: its header
            return self._records
        if data.startswith(b"SQLite format 3\0"):
            raise StateCorrupt(f"{self._path}: an SQLite file, not a verifier journal (state "
                               "of an older daemon: see import_sqlite_state)")
        header = _unpack(data[:RECORD_SIZE]) if len(data) >= RECORD_SIZE else None
        if header is None or header[0] != _HEADER or header[1] != MAGIC:
            raise StateCorrupt(f"{self._path}: not a Comptoir verifier journal, or its header "
                               "is damaged; move it away to start with an empty state")
        if header[2] != VERSION:
            raise StateCorrupt(f"{self._path}: journal version {header[2]}, this daemon "
                               f"reads {VERSION}")
        whole = len(data) - len(data) % RECORD_SIZE
        for offset in range(RECORD_SIZE, whole, RECORD_SIZE):
            fields = _unpack(data[offset : offset + RECORD_SIZE])
            if fields is None or fields[0] == _HEADER:
                self.skipped_records += 1
                continue
            kind, ident, counter, expires, key, key_expires = fields
            if kind == _ACTIVATION:
                if counter > self._generations.get(ident, -1):
                    self._generations[ident] = counter
                continue
            if key and key_expires > self._seen.get(key, -1):
                self._seen[key] = key_expires
            last = self._counters.get(ident)
            if last is None or counter > last[0]:
                self._counters[ident] = (counter, expires, key, key_expires)
        if self.skipped_records:
            log.error("verifier journal %s: %d damaged records skipped (the others are "
                      "applied)", self._path, self.skipped_records)
        if whole != len(data):
            # A record cut short (a write interrupted by a full disk or a power cut).
            log.warning("verifier journal %s: partial record at the end dropped", self._path)
            os.truncate(self._path, whole)
        # Expired entries are dropped by the first purge, on the clock of the commits.
        return whole // RECORD_SIZE

    def _live_records(self) -> list[bytes]:
        out = [pack_record(_ACTIVATION, p, g, 0) for p, g in self._generations.items()]
        out += [pack_record(_CREDENTIAL, c, counter, expires, key, key_expires)
                for c, (counter, expires, key, key_expires) in self._counters.items()]
        return out

    def _rewrite(self, now: int) -> None:
        """Replace the journal by one holding the live state only, atomically, and append to
        the new one from now on. Fails with the old journal still in use, or not at all."""
        records = [pack_record(_HEADER, MAGIC, VERSION, now), *self._live_records()]
        tmp = self._path.with_name(f".{self._path.name}.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join(records))
                f.flush()
                os.fsync(f.fileno())
            new_fd = os.open(tmp, os.O_WRONLY | os.O_APPEND)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            os.replace(tmp, self._path)
        except BaseException:
            os.close(new_fd)
            tmp.unlink(missing_ok=True)
            raise
        # Renamed: appends must go to the new file now (the old one is unlinked).
        old, self._fd = self._fd, new_fd
        if old >= 0:
            os.close(old)
        self._records = len(records)
        try:
            dir_fd = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:  # the rename may not survive a power cut; a crash, yes
            log.warning("verifier journal %s: directory not synced: %s", self._path, exc)

    def _append(self, data: bytes) -> None:
        size = self._records * RECORD_SIZE
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"verifier journal: short write ({written} of "
                              f"{len(data)} bytes)")
            if self._durable:
                os.fsync(self._fd)
        except BaseException:
            # Leave whole records only (the next load would drop a partial one anyway). If
            # even that fails, later records would not be aligned: refuse until a restart.
            try:
                os.truncate(self._path, size)
            except OSError as exc:
                self._broken = f"a failed write could not be undone ({exc})"
            raise
        self._records += len(data) // RECORD_SIZE

    def _compact_if_worth_it(self, now: int) -> None:
        live = len(self._counters) + len(self._generations) + 1
        if self._records >= max(_COMPACT_MIN_RECORDS, 4 * live):
            try:
                self._rewrite(now)
            except OSError as exc:  # only an optimisation: the old journal stays in use
                log.warning("verifier journal %s not rewritten: %s", self._path, exc)

    # --- the state ------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._lockfile >= 0:
                os.close(self._fd)
                os.close(self._lockfile)  # releases the flock
                self._lockfile = -1

    def person_key(self, nir: str) -> bytes:
        person = self._persons.get(nir)
        if person is None:
            person = hmac.new(self._pepper, nir.encode(), hashlib.sha256).digest()[:16]
            if len(self._persons) >= _PERSONS_MEMO:
                self._persons.clear()
            self._persons[nir] = person
        return person

    def highest_generation(self, nir: str) -> int:
        """Highest activation generation seen for this person (-1 if none)."""
        with self._lock:
            return self._generations.get(self.person_key(nir), -1)

    def commit(
        self,
        *,
        now: int,
        credential_id: bytes,
        credential_expires: int,
        counter: int,
        nir: str,
        generation: int,
        replay: tuple[bytes, int] | None,
    ) -> Reason | None:
        """Check and record one presentation atomically. `replay` is (key, expires) for QR.
        Returns the refusal reason, or None when recorded (written to the journal)."""
        person = self.person_key(nir)
        with self._lock:
            if self._broken:
                raise OSError(f"verifier journal {self._path}: {self._broken}; restart the daemon")
            known = self._generations.get(person, -1)
            if generation < known:
                return Reason.ACTIVATION_SUPERSEDED
            key, key_expires = replay if replay is not None else (b"", 0)
            if key and self._seen.get(key, -1) >= now:
                return Reason.REPLAYED
            last = self._counters.get(credential_id)
            if last is not None and last[0] >= counter:
                return Reason.COUNTER_NOT_INCREASING
            record = pack_record(
                _CREDENTIAL, credential_id, counter, credential_expires, key, key_expires
            )
            if generation > known:
                # Both records in one write: a crash keeps both or neither.
                record += pack_record(_ACTIVATION, person, generation, 0)
            self._append(record)
            # Recorded: now the memory follows (a failed write above changed nothing).
            if generation > known:
                self._generations[person] = generation
            self._counters[credential_id] = (counter, credential_expires, key, key_expires)
            if key:
                self._seen[key] = key_expires
            self._commits += 1
            if self._commits % _PURGE_SEEN_EVERY == 0:
                self._purge(now, force=False)
                self._compact_if_worth_it(now)
        return None

    def _purge(self, now: int, *, force: bool) -> None:
        self._seen = {k: e for k, e in self._seen.items() if e >= now}
        if force or now - self._credentials_purged_at >= _PURGE_CREDENTIALS_EVERY:
            # A credential past its expiry (+ skew) is refused before its counter is looked at.
            self._counters = {c: v for c, v in self._counters.items() if v[1] >= now}
            self._credentials_purged_at = now

    def purge(self, now: int) -> None:
        """Forget what can no longer matter, and rewrite the journal with what is left."""
        with self._lock:
            self._purge(now, force=True)
            self._rewrite(now)


def import_sqlite_state(sqlite_path: str | Path, state: VerifierState, now: int) -> int:
    """Carry the counters and activation generations of an older daemon's SQLite state file
    (tables `counters` and `activations`) into `state`; -> rows imported."""
    db = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        counters = db.execute(
            "SELECT credential, counter, expires FROM counters WHERE expires >= ?", (now,)
        ).fetchall()
        activations = db.execute("SELECT person, generation FROM activations").fetchall()
    finally:
        db.close()
    with state._lock:
        records = [pack_record(_ACTIVATION, p, g, 0) for p, g in activations]
        records += [pack_record(_CREDENTIAL, c, n, e) for c, n, e in counters]
        state._append(b"".join(records))
        for person, generation in activations:
            state._generations[person] = max(generation, state._generations.get(person, -1))
        for credential, counter, expires in counters:
            last = state._counters.get(credential)
            if last is None or counter > last[0]:
                state._counters[credential] = (counter, expires, b"", 0)
    return len(records)


def _lock_exclusively(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateInUse(f"{path}: the verifier state is in use by another process "
                         "(is another comptoir daemon running on this data directory?)") from None
    return fd
