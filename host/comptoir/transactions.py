"""Transactions: one accepted presentation, the one person it serves, and its care sheet.

A transaction is created for each verified presentation. Its people are the credential's
insured person (person 0) and beneficiaries (1..n, in credential order); exactly one of them is
chosen, once. Every later step is built from the transaction's own chosen person: a care sheet
request only carries the person index as a check, and the patient the journal bills is taken
from the transaction, never from the request. So no request can bill one transaction's patient
under another's, or another family member under this one.

At rest (SQLite): the presentation's references, the state and the choice in clear; the
credential (names, NIR, rights) sealed with AES-256-GCM whose associated data is the
transaction id, so a sealed blob moved to another row does not open. The sealed blob is dropped
when the retention period of a finished transaction ends; open transactions expire after a TTL.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import secrets
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cbor2
from cryptography.exceptions import InvalidTag

from comptoir.billing import (
    BillingError,
    CareSheet,
    Dispensation,
    JournalError,
    LineInput,
    Lot,
    Nature,
    PatientRef,
    StorageFull,
    TiersPayant,
    Transaction,
    persons,
)
from comptoir.clock import now as clock_now
from comptoir.storage import (
    Schema,
    Sealer,
    checkpoint,
    load_or_create_key,
    migrate,
    open_sqlite,
    write_failed,
)
from comptoir.tokens import cose
from comptoir.tokens.model import (
    Affiliation,
    AmcContract,
    Beneficiary,
    BirthDate,
    Channel,
    Credential,
    Exemption,
    InsuredPerson,
    Period,
    Verified,
)
from comptoir.tokens.nir import mask_nir

if TYPE_CHECKING:
    from comptoir.patient_rights import PersonRights, RightsDesk

log = logging.getLogger("comptoir.transactions")

ID_BYTES = 16  # 128 random bits: not guessable, not enumerable
_AAD = b"comptoir-transaction-v1:"
# Step 1 was released without a version number (files at version 0 may already have it, hence
# IF NOT EXISTS); step 2 adds the rights basis, which such files may have got at open.
SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS tx (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,          -- unix seconds
    updated_at REAL NOT NULL,
    presentation_id TEXT NOT NULL,     -- hex, as the verifier saw it
    board_id TEXT NOT NULL,
    port TEXT NOT NULL,
    channel TEXT NOT NULL,
    people INTEGER NOT NULL,
    chosen INTEGER,                    -- person index, NULL until chosen
    invoice_no INTEGER,
    finess TEXT,
    sealed BLOB                        -- AES-GCM(credential); NULL once purged
);
CREATE INDEX IF NOT EXISTS tx_state ON tx (state, updated_at);
"""
# The rights basis of a dispensed transaction's care sheet (added after the first schema:
# an older file gets the columns at open). No personal data: a status, a reason, a source, a time.
RIGHTS_COLUMNS = (("rights_status", "TEXT"), ("rights_reason", "TEXT"),
                  ("rights_source", "TEXT"), ("rights_as_of", "INTEGER"))


def _add_rights_columns(db: Any) -> None:
    have = {r[1] for r in db.execute("PRAGMA table_info(tx)")}
    for name, kind in RIGHTS_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE tx ADD COLUMN {name} {kind}")


SCHEMA = Schema((SCHEMA_1, _add_rights_columns))


class SchemaTooNew(RuntimeError):
    """The transactions database was migrated by a newer Comptoir."""


class State(StrEnum):
    AWAITING_BENEFICIARY = "awaiting_beneficiary"
    READY = "ready"
    DISPENSED = "dispensed"
    CANCELLED = "cancelled"


# --- errors: each carries the API's error code ------------------------------------------------


class TransactionError(Exception):
    code = "transaction_error"
    status = 400


class NotFound(TransactionError):
    code, status = "unknown_transaction", 404


class WrongState(TransactionError):
    code, status = "wrong_state", 409


class PersonMismatch(TransactionError):
    code, status = "person_mismatch", 409


class InvalidPerson(TransactionError):
    code, status = "invalid_person", 422


class InvalidDispensation(TransactionError):
    code, status = "invalid_dispensation", 422

    def __init__(self, detail: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.fields = fields


class RightsRefused(TransactionError):
    """The chosen person's rights forbid this care sheet (docs/rights-cache.md)."""

    status = 409


class RightsClosed(RightsRefused):
    code = "rights_closed"


class MeansBlocked(RightsRefused):
    code = "means_blocked"


class RightsUnconfirmed(RightsRefused):
    code = "rights_unconfirmed"


class Unavailable(TransactionError):
    """The transaction's personal data is gone (retention) or does not open (wrong key)."""

    code, status = "data_unavailable", 410


class NoRoom(TransactionError):
    """A database could not be written (disk full, or the write failed): nothing of the
    request was kept, or (dispense) the care sheet was and the same request finishes it."""

    code, status = "storage_full", 507


# --- what readers get ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """Someone the credential covers. `index` is stable for the transaction's life."""

    index: int
    rank: int  # 0 = the insured person, else the beneficiary's rank in the credential
    quality: int  # 0 insured, 2 spouse, 6 child, 9 other
    family_name: str = field(repr=False)
    given_names: str = field(repr=False)
    birth_date: BirthDate = field(repr=False)
    ref: PatientRef = field(repr=False)

    @property
    def masked_nir(self) -> str:
        return mask_nir(self.ref.insured_nir)


@dataclass(frozen=True, slots=True)
class SheetRef:
    invoice_no: int
    finess: str
    lot: int | None  # None while the lot is open
    total: int
    amo: int
    amc: int
    patient: int
    counter: int
    rights: PersonRights | None = None  # the rights basis it was billed on (None: not checked)


@dataclass(frozen=True, slots=True)
class TransactionView:
    id: str
    state: State
    created_at: float
    updated_at: float
    presentation_id: str
    board_id: str
    port: str
    channel: str
    people: tuple[Person, ...]  # empty once the personal data was purged
    chosen: int | None
    sheet: SheetRef | None = None
    # Per person (aligned with `people`) while the transaction is open and a rights cache is
    # attached; empty otherwise. `rights_service`: what the rights service said (None: not
    # asked by this process).
    rights: tuple[PersonRights, ...] = ()
    rights_service: str | None = None
    # The credential's paying fund (AMO) and complementary contract (AMC), while its personal
    # data is kept (None once purged).
    affiliation: Affiliation | None = None
    amc: AmcContract | None = None

    @property
    def chosen_person(self) -> Person | None:
        return None if self.chosen is None or not self.people else self.people[self.chosen]


@dataclass(frozen=True, slots=True)
class DispenseRequest:
    """What the dispensing software sends; the patient comes from the transaction."""

    person: int
    finess: str
    pharmacist_rpps: str
    prescriber_rpps: str
    prescribed_on: dt.date
    dispensed_on: dt.date
    lines: tuple[LineInput, ...]
    tiers_payant: TiersPayant = field(default_factory=TiersPayant)
    nature: int = Nature.ILLNESS


# --- billing runs on its own thread -----------------------------------------------------------


class Biller(Protocol):
    def record(self, d: Dispensation) -> CareSheet: ...
    def sheet(self, transaction_id: str) -> CareSheet | None: ...
    def lot_of(self, transaction_id: str) -> int | None: ...


class JournalBiller:
    """The billing journal on one dedicated thread: sqlite3 connections belong to the thread
    that opened them, and API requests each run on a thread of their own. `key`: the billing
    key file (the daemon passes paths.keys_dir/billing.key; default: keys/billing.key beside
    the journal) or the key bytes; a bad key file fails here, naming the file."""

    def __init__(self, path: str | Path, *, key: bytes | str | Path | None = None,
                 **journal_options: Any) -> None:
        journal_options["key"] = key
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(path, journal_options, ready),
                                        name="billing journal", daemon=True)
        self._thread.start()
        ready.result()

    def _run(self, path: str | Path, options: dict[str, Any], ready: Future[None]) -> None:
        from comptoir.billing import Journal

        try:
            journal = Journal(path, **options)
        except BaseException as e:
            ready.set_exception(e)
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            try:
                fut.set_result(fn(journal))
            except BaseException as e:
                fut.set_exception(e)
        journal.close()

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def record(self, d: Dispensation) -> CareSheet:
        sheet: CareSheet = self._call(lambda j: j.record(d))
        return sheet

    def sheet(self, transaction_id: str) -> CareSheet | None:
        found: CareSheet | None = self._call(lambda j: j.sheet(transaction_id))
        return found

    def lot_of(self, transaction_id: str) -> int | None:
        # The journal has no reader for this yet: a sheet's `lot` column, NULL while open.
        row = self._call(lambda j: j.db.execute(
            "SELECT lot FROM sheet WHERE transaction_id=?", (transaction_id,)).fetchone())
        return None if row is None or row[0] is None else int(row[0])

    def lots(self) -> list[Lot]:
        """Every closed lot, oldest first."""
        lots: list[Lot] = self._call(lambda j: j.lots())
        return lots

    def open_sheets(self) -> dict[str, tuple[int, int | None]]:
        """finess -> (care sheets not in a lot yet, when the oldest was recorded)."""
        found: dict[str, tuple[int, int | None]] = self._call(lambda j: j.open_sheets())
        return found

    def exports(self) -> list[tuple[str, int, str, str, int]]:
        """(finess, lot, kind, file name, exported_at) of every export file written."""
        rows = self._call(lambda j: j.db.execute(
            "SELECT finess, lot, kind, name, exported_at FROM export "
            "ORDER BY exported_at").fetchall())
        return [(str(f), int(n), str(k), str(name), int(at)) for f, n, k, name, at in rows]

    def close_due(self) -> list[Lot]:
        """Close every pharmacy's open lot older than the journal's lot_max_age."""
        lots: list[Lot] = self._call(lambda j: j.close_due())
        return lots

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)


# --- sealing ---------------------------------------------------------------------------------


def _period(p: Period) -> list[int]:
    return [p.start.toordinal(), p.end.toordinal()]


def _unperiod(v: list[int]) -> Period:
    return Period(dt.date.fromordinal(v[0]), dt.date.fromordinal(v[1]))


def _exemptions(es: tuple[Exemption, ...]) -> list[list[int]]:
    return [[e.code, *_period(e.period)] for e in es]


def _unexemptions(v: list[list[int]]) -> tuple[Exemption, ...]:
    return tuple(Exemption(e[0], _unperiod(e[1:3])) for e in v)


def _encode_verified(v: Verified) -> bytes:
    """Our own plaintext, not the issuer's claims: it was checked when verified, and re-parsing
    it as a token later would re-apply checks that depend on the day."""
    c, ins = v.credential, v.credential.insured
    return cbor2.dumps([
        1, str(v.channel), v.issuer, v.presentation_id, v.presented_at, v.counter,
        [c.credential_id, c.issued_at, c.not_before, c.expires_at, c.activation_generation,
         c.status_index, cose.encode_key(c.device_key, compressed=True)],
        [c.affiliation.regime, c.affiliation.caisse, c.affiliation.centre],
        None if c.amc is None else [c.amc.amc_number, c.amc.contract_type,
                                    *_period(c.amc.period), c.amc.tiers_payant],
        [ins.nir, ins.family_name, ins.given_names, ins.birth_date.to_int(),
         [_period(p) for p in ins.rights], _exemptions(ins.exemptions)],
        [[b.insured_nir, b.rank, b.birth_date.to_int(), b.birth_rank, b.quality, b.family_name,
          b.given_names, [_period(p) for p in b.rights], _exemptions(b.exemptions)]
         for b in c.beneficiaries],
    ])


def _decode_verified(data: bytes) -> Verified:
    try:
        fmt, channel, issuer, pid, presented_at, counter, cred, aff, amc, ins, bens = \
            cbor2.loads(data)
        if fmt != 1:
            raise ValueError("unknown sealed format")
        insured = InsuredPerson(ins[0], ins[1], ins[2], BirthDate.from_int(ins[3]),
                                tuple(_unperiod(p) for p in ins[4]), _unexemptions(ins[5]))
        beneficiaries = tuple(
            Beneficiary(b[0], b[1], BirthDate.from_int(b[2]), b[3], b[4], b[5], b[6],
                        tuple(_unperiod(p) for p in b[7]), _unexemptions(b[8]))
            for b in bens)
        credential = Credential(
            cred[0], cred[1], cred[2], cred[3], insured, beneficiaries, Affiliation(*aff),
            None if amc is None else AmcContract(amc[0], amc[1], _unperiod(amc[2:4]), amc[4]),
            cred[4], cred[5], cose.parse_key(cred[6]))
        return Verified(Channel(channel), credential, issuer, pid, presented_at, counter)
    except ValueError:
        raise
    except Exception as e:  # our own authenticated plaintext: any shape error is corruption
        raise ValueError(f"sealed transaction undecodable: {type(e).__name__}") from None


def people_of(v: Verified) -> tuple[Person, ...]:
    """The credential's people in a fixed order: the insured person, then beneficiaries."""
    names = [(v.insured.family_name, v.insured.given_names)]
    names += [(b.family_name, b.given_names) for b in v.beneficiaries]
    return tuple(
        Person(i, p.rank, p.quality, fam, given, p.birth, p.ref)
        for i, (p, (fam, given)) in enumerate(zip(persons(v.credential), names, strict=True))
    )


# --- the store -------------------------------------------------------------------------------


class TransactionStore:
    def __init__(
        self,
        path: str | Path,
        key: bytes | str | Path,
        biller: Biller | None = None,
        *,
        open_ttl_s: float = 30 * 60,
        retention_s: float = 24 * 3600,
        clock: Callable[[], float] = clock_now,
        rights: RightsDesk | None = None,
    ) -> None:
        master = key if isinstance(key, bytes) else load_or_create_key(key)
        # Own derived key: a transaction blob never opens with the rights cache's key.
        self._sealer = Sealer(master, b"comptoir transactions aes-256-gcm")
        self.biller = biller
        self.rights = rights
        self.open_ttl_s = open_ttl_s
        self.retention_s = retention_s
        self.clock = clock
        self._lock = threading.RLock()
        self._live: dict[str, Verified] = {}  # decrypted credentials of open transactions
        self._wal_pending = False  # a purge's erasure of the WAL could not complete yet
        # Told of a transaction finished from the journal (the event stream: EventFeed).
        self.on_recovered: Callable[[TransactionView], None] | None = None
        # secure_delete: purged personal data is overwritten with zeros in the database's
        # pages (freed overflow pages included), not just unlinked from the b-tree.
        self.db = open_sqlite(path, check_same_thread=False)
        try:
            migrate(self.db, SCHEMA, too_new=lambda found, ours: SchemaTooNew(
                f"transactions database {path} has schema {found}, newer than this "
                f"program's {ours}"))
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # --- writing ---------------------------------------------------------------------------

    def create(self, v: Verified, *, board_id: str = "", port: str = "",
               channel: str | None = None,
               on_rights: Callable[[str], None] | None = None) -> TransactionView:
        """A new transaction for an accepted presentation. With nobody but the insured person
        on the credential, that person is chosen at once (there is nothing to choose).
        With a rights desk: the credential's rights are recorded and the rights service is
        asked in the background; `on_rights(tx_id)` runs once it answered or failed."""
        if not isinstance(v, Verified):
            raise TypeError("only a verified presentation opens a transaction")
        tx_id = secrets.token_hex(ID_BYTES)
        people = people_of(v)
        single = len(people) == 1
        now = self.clock()
        state = State.READY if single else State.AWAITING_BENEFICIARY
        sealed = self._sealer.seal(_AAD + tx_id.encode(), _encode_verified(v))
        if self.rights is not None:
            # Before the row is visible: whoever sees the transaction sees its rights state.
            self.rights.opened(tx_id, v)
        with self._lock:
            try:
                self.db.execute(
                    "INSERT INTO tx (id, state, created_at, updated_at, presentation_id, "
                    "board_id, port, channel, people, chosen, sealed) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (tx_id, state, now, now, v.presentation_id.hex(), board_id, port,
                     channel or str(v.channel), len(people), 0 if single else None, sealed))
            except sqlite3.Error as e:
                if self.rights is not None:
                    self.rights.forget(tx_id)
                if write_failed(e):
                    raise NoRoom(f"transactions database: no transaction opened ({e}): free "
                                 "space, then present the card again") from e
                raise
            self._live[tx_id] = v
        # The view as opened (rights from the cache, the service pending), taken before the
        # service is asked: a quick answer must not make the opening look already answered.
        view = self.get(tx_id)
        if self.rights is not None:
            self.rights.refresh(tx_id, v, on_rights)
        log.info("transaction opened", extra={"transaction": tx_id, "people": len(people),
                                              "state": str(state), "port": port})
        return view

    def refresh_rights(self, tx_id: str, on_done: Callable[[str], None] | None = None) -> None:
        """Ask the rights service (if any) again for this open transaction's family, in the
        background; `on_done(tx_id)` runs once the answer or the failure is recorded."""
        with self._lock:
            row = self._row(tx_id)
            if row["state"] not in (State.AWAITING_BENEFICIARY, State.READY):
                raise WrongState(f"transaction is {row['state']}: rights are asked for an open "
                                 "transaction only")
            v = self._verified(tx_id, row)
        if self.rights is not None:
            self.rights.refresh(tx_id, v, on_done, again=True)

    def wait_rights(self, tx_id: str, timeout: float = 10.0) -> bool:
        """Wait for the rights refresh of this transaction (True at once without one)."""
        return True if self.rights is None else self.rights.wait(tx_id, timeout)

    def choose(self, tx_id: str, person: object) -> TransactionView:
        """Bind the transaction to one of its people. Allowed once."""
        with self._lock:
            row = self._row(tx_id)
            if row["state"] != State.AWAITING_BENEFICIARY:
                raise WrongState(f"transaction is {row['state']}: the beneficiary can be chosen "
                                 "only once, while awaiting_beneficiary")
            if not isinstance(person, int) or isinstance(person, bool) \
                    or not 0 <= person < row["people"]:
                raise InvalidPerson(f"person must be an integer from 0 to {row['people'] - 1}")
            try:
                cur = self.db.execute(
                    "UPDATE tx SET state=?, chosen=?, updated_at=? WHERE id=? AND state=?",
                    (State.READY, person, self.clock(), tx_id, State.AWAITING_BENEFICIARY))
            except sqlite3.Error as e:
                if write_failed(e):  # nothing was chosen: the same request can be sent again
                    raise NoRoom(f"the transactions database could not record the choice ({e})"
                                 ": free space, then choose again") from e
                raise
            assert cur.rowcount == 1
        log.info("beneficiary chosen", extra={"transaction": tx_id, "person": person})
        return self.get(tx_id)

    def cancel(self, tx_id: str) -> TransactionView:
        with self._lock:
            row = self._row(tx_id)
            if row["state"] not in (State.AWAITING_BENEFICIARY, State.READY):
                raise WrongState(f"transaction is {row['state']}: only an open one is cancelled")
            if row["state"] == State.READY and self.biller is not None \
                    and self.biller.sheet(tx_id) is not None:
                # Its care sheet is in the journal but the dispensed state was not saved (a
                # full disk, NoRoom): cancelling would leave a billed, cancelled transaction.
                raise WrongState("a care sheet was recorded for this transaction: send the "
                                 "same dispensation again to finish it")
            try:
                self.db.execute("UPDATE tx SET state=?, updated_at=? WHERE id=?",
                                (State.CANCELLED, self.clock(), tx_id))
            except sqlite3.Error as e:
                if write_failed(e):
                    raise NoRoom(f"transactions database: not cancelled ({e})") from e
                raise
            self._live.pop(tx_id, None)
        if self.rights is not None:
            self.rights.forget(tx_id)
        log.info("transaction cancelled", extra={"transaction": tx_id})
        return self.get(tx_id)

    def dispense(self, tx_id: str, req: DispenseRequest) -> TransactionView:
        """Record the care sheet of the transaction's chosen person. `req.person` must name
        that person: a request meant for someone else is refused, whatever its content."""
        if self.biller is None:
            raise RuntimeError("this store has no billing journal")
        if self.rights is not None:
            # A refresh still under way: wait for it (bounded), outside the store's lock.
            self.rights.wait(tx_id, self.rights.dispense_wait)
        with self._lock:
            row = self._row(tx_id)
            if row["state"] != State.READY:
                raise WrongState(f"transaction is {row['state']}: a care sheet needs state ready")
            if req.person != row["chosen"]:
                raise PersonMismatch(f"the transaction is bound to person {row['chosen']}, "
                                     f"not {req.person}")
            v = self._verified(tx_id, row)
            patient = people_of(v)[row["chosen"]]
            basis = None
            if self.rights is not None:
                basis = self.rights.person(v, patient)  # the chosen person's own rights
                _judge(basis, req, patient.index)
            d = Dispensation(
                transaction=Transaction(tx_id, v, patient.ref), finess=req.finess,
                pharmacist_rpps=req.pharmacist_rpps, prescriber_rpps=req.prescriber_rpps,
                prescribed_on=req.prescribed_on, dispensed_on=req.dispensed_on,
                lines=tuple(req.lines), tiers_payant=req.tiers_payant, nature=req.nature)
            try:
                sheet = self.biller.record(d)
            except BillingError as e:
                raise InvalidDispensation(str(e), e.fields) from None
            except StorageFull as e:  # a JournalError, but no "billed differently"
                raise NoRoom(str(e)) from None
            except JournalError as e:
                raise WrongState(str(e)) from None
            # Belt and braces: the journal must have billed exactly the bound person.
            if (sheet.transaction_id, sheet.insured_nir, sheet.birth_date, sheet.birth_rank) != (
                    tx_id, patient.ref.insured_nir, patient.ref.birth_date,
                    patient.ref.birth_rank):
                raise RuntimeError(f"care sheet of {tx_id} does not name its own patient")
            try:
                self.db.execute(
                    "UPDATE tx SET state=?, invoice_no=?, finess=?, updated_at=?, "
                    "rights_status=?, rights_reason=?, rights_source=?, rights_as_of=? "
                    "WHERE id=?",
                    (State.DISPENSED, sheet.invoice_no, sheet.finess, self.clock(),
                     *((None,) * 4 if basis is None else
                       (basis.status, basis.reason, basis.source, basis.as_of)), tx_id))
            except sqlite3.Error as e:
                # The journal (the truth for billing) has the sheet, this database cannot say
                # so yet: the transaction stays ready, and the same request, sent again,
                # gets the same sheet back from the journal (a retry) and finishes it.
                if write_failed(e):
                    raise NoRoom(f"care sheet {sheet.finess}/{sheet.invoice_no} recorded, but "
                                 f"the transactions database could not mark it dispensed ({e})"
                                 ": free space, then send the same dispensation again") from e
                raise
            self._live.pop(tx_id, None)
        if self.rights is not None:
            self.rights.forget(tx_id)
        log.info("care sheet recorded", extra={
            "transaction": tx_id, "invoice": sheet.invoice_no,
            "rights": None if basis is None else basis.status})
        return self.get(tx_id)

    def purge(self) -> tuple[int, int]:
        """Cancel open transactions older than the TTL; drop the personal data of finished ones
        past retention. Returns (expired, purged)."""
        now = self.clock()
        recovered: list[str] = []
        with self._lock:
            expired = [r[0] for r in self.db.execute(
                "SELECT id FROM tx WHERE state IN (?, ?) AND updated_at <= ?",
                (State.AWAITING_BENEFICIARY, State.READY, now - self.open_ttl_s))]
            for tx_id in expired:
                # A care sheet may be in the journal (the truth for billing) for a transaction
                # this database could not mark dispensed (a full disk, then no retry): finish
                # it, never cancel a billed transaction.
                sheet = self.biller.sheet(tx_id) if self.biller is not None else None
                if sheet is not None:
                    self._finish_from_journal(tx_id, sheet, now)
                    recovered.append(tx_id)
                else:
                    self.db.execute("UPDATE tx SET state=?, updated_at=? WHERE id=?",
                                    (State.CANCELLED, now, tx_id))
                self._live.pop(tx_id, None)
                if self.rights is not None:
                    self.rights.forget(tx_id)
            cur = self.db.execute(
                "UPDATE tx SET sealed=NULL WHERE state IN (?, ?) AND sealed IS NOT NULL "
                "AND updated_at <= ?", (State.DISPENSED, State.CANCELLED, now - self.retention_s))
            if cur.rowcount or self._wal_pending:
                self._erase_wal()
        self._tell_recovered(recovered)
        return len(expired), cur.rowcount

    # --- a care sheet in the journal that this database does not know of ----------------------

    def _finish_from_journal(self, tx_id: str, sheet: CareSheet, now: float) -> None:
        """The billing journal (the truth for billing) has this transaction's care sheet, but
        this database still says ready: a crash, or a full disk, between the journal's commit
        and the update. Under the lock."""
        self.db.execute(
            "UPDATE tx SET state=?, invoice_no=?, finess=?, updated_at=? WHERE id=? AND state=?",
            (State.DISPENSED, sheet.invoice_no, sheet.finess, now, tx_id, State.READY))
        self._live.pop(tx_id, None)
        if self.rights is not None:
            self.rights.forget(tx_id)
        log.warning("transaction found billed in the journal: marked dispensed",
                    extra={"transaction": tx_id, "invoice": sheet.invoice_no})

    def recover_billed(self) -> list[str]:
        """At start: finish every ready transaction whose care sheet is in the journal (and
        tell `on_recovered`). Returns their ids."""
        if self.biller is None:
            return []
        recovered = []
        with self._lock:
            ready = [r[0] for r in self.db.execute("SELECT id FROM tx WHERE state=?",
                                                   (State.READY,))]
            for tx_id in ready:
                sheet = self.biller.sheet(tx_id)
                if sheet is not None:
                    self._finish_from_journal(tx_id, sheet, self.clock())
                    recovered.append(tx_id)
        self._tell_recovered(recovered)
        return recovered

    def _tell_recovered(self, ids: list[str]) -> None:
        if self.on_recovered is None:
            return
        for tx_id in ids:
            try:
                self.on_recovered(self.get(tx_id))
            except Exception:
                log.exception("telling of a recovered care sheet failed")

    def _erase_wal(self) -> None:
        """The WAL still holds the pages as they were before the purge (the sealed data, which
        the key opens): copy the new pages into the database and truncate the WAL to nothing,
        so that no file (a live backup included) keeps a purged person."""
        self._wal_pending = not checkpoint(self.db)
        if self._wal_pending:
            log.warning("purged data still in the WAL: a reader held it; erased at the next "
                        "purge")

    # --- reading ---------------------------------------------------------------------------

    def get(self, tx_id: str) -> TransactionView:
        view, recovered = self._get(tx_id)
        if recovered:
            self._tell_recovered([tx_id])
        return view

    def _get(self, tx_id: str) -> tuple[TransactionView, bool]:
        recovered = False
        with self._lock:
            row = self._row(tx_id)
            if row["state"] == State.READY and self.biller is not None:
                sheet_found = self.biller.sheet(tx_id)
                if sheet_found is not None:  # billed, though this database missed it
                    try:
                        self._finish_from_journal(tx_id, sheet_found, self.clock())
                        row = self._row(tx_id)
                        recovered = True
                    except sqlite3.Error as e:  # a full disk still: shown from the journal
                        log.warning("billed transaction not marked dispensed yet",
                                    extra={"transaction": tx_id, "why": str(e)})
                        row = {**row, "state": State.DISPENSED,
                               "invoice_no": sheet_found.invoice_no,
                               "finess": sheet_found.finess}
            people: tuple[Person, ...] = ()
            rights: tuple[PersonRights, ...] = ()
            service = None
            affiliation = amc = None
            if row["sealed"] is not None:
                v = self._verified(tx_id, row)
                people = people_of(v)
                affiliation, amc = v.credential.affiliation, v.credential.amc
                if self.rights is not None and row["state"] in (State.AWAITING_BENEFICIARY,
                                                                 State.READY):
                    # Each person's own rights, looked up by their own identity.
                    rights = tuple(self.rights.person(v, p) for p in people)
                    state = self.rights.service_state(tx_id)
                    service = None if state is None else state.value
            sheet = None
            if row["invoice_no"] is not None and self.biller is not None:
                sheet = self._sheet_ref(tx_id, row)
        return TransactionView(
            tx_id, State(row["state"]), row["created_at"], row["updated_at"],
            row["presentation_id"], row["board_id"], row["port"], row["channel"], people,
            row["chosen"], sheet, rights, service, affiliation, amc), recovered

    def ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self.db.execute("SELECT id FROM tx ORDER BY created_at")]

    def counts(self) -> dict[str, int]:
        with self._lock:
            got = dict(self.db.execute("SELECT state, COUNT(*) FROM tx GROUP BY state").fetchall())
        return {s.value: int(got.get(s.value, 0)) for s in State}

    def _row(self, tx_id: object) -> dict[str, Any]:
        if not isinstance(tx_id, str) or len(tx_id) != 2 * ID_BYTES:
            raise NotFound("no such transaction")
        cur = self.db.execute("SELECT * FROM tx WHERE id=?", (tx_id,))
        row = cur.fetchone()
        if row is None:
            raise NotFound("no such transaction")
        return dict(zip((c[0] for c in cur.description), row, strict=True))

    def _verified(self, tx_id: str, row: dict[str, Any]) -> Verified:
        v = self._live.get(tx_id)
        if v is not None:
            return v
        if row["sealed"] is None:
            raise Unavailable("the transaction's personal data was purged (retention)")
        try:
            v = _decode_verified(self._sealer.open(_AAD + tx_id.encode(), row["sealed"]))
        except (InvalidTag, ValueError) as e:
            raise Unavailable(f"the transaction's data does not open ({type(e).__name__})") \
                from None
        if row["state"] in (State.AWAITING_BENEFICIARY, State.READY):
            self._live[tx_id] = v  # reloaded after a restart: keep it while open
        return v

    def _sheet_ref(self, tx_id: str, row: dict[str, Any]) -> SheetRef | None:
        assert self.biller is not None
        full = self.biller.sheet(tx_id)
        lot = self.biller.lot_of(tx_id)
        basis = None
        if row.get("rights_status") is not None:
            from comptoir.patient_rights import PersonRights

            basis = PersonRights(row["rights_status"], row["rights_reason"] or "",
                                 row["rights_source"], row["rights_as_of"],
                                 row["rights_status"] in ("fresh", "stale_ok"))
        if full is None:
            return SheetRef(row["invoice_no"], row["finess"], lot, 0, 0, 0, 0, 0, basis)
        return SheetRef(full.invoice_no, full.finess, lot, full.total, full.amo, full.amc,
                        full.patient, full.counter, basis)


def _judge(basis: PersonRights, req: DispenseRequest, index: int) -> None:
    """May the chosen person's care sheet be made on these rights? (docs/rights-cache.md)"""
    when = "" if basis.as_of is None else \
        f" as of {dt.datetime.fromtimestamp(basis.as_of, dt.UTC):%Y-%m-%d %H:%M} UTC"
    said = f"{basis.source or 'no source'}{when}"
    if basis.status == "expired":
        raise RightsClosed(f"person {index}: AMO rights closed ({basis.reason}, {said}): no care "
                           "sheet can be made")
    if basis.status == "blocked":
        raise MeansBlocked(f"person {index}: the presented phone is {basis.reason}: no care "
                           "sheet on it")
    if not basis.billable and (req.tiers_payant.amo or req.tiers_payant.amc):
        raise RightsUnconfirmed(
            f"person {index}: rights {basis.status} ({basis.reason}, {said}): tiers payant "
            "needs confirmed rights; dispense without tiers payant (the patient pays, the sheet "
            "records the basis) or ask the rights service again")
