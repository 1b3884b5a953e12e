"""The transaction store: one accepted presentation, the one person it serves, and its care
sheet (the package's docstring says what binds them).

At rest (SQLite): the presentation's references, the state and the choice in clear; the
credential (names, NIR, rights) sealed with AES-256-GCM whose associated data is the
transaction id, so a sealed blob moved to another row does not open. The sealed blob is dropped
when the retention period of a finished transaction ends; open transactions expire after a TTL.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from comptoir.billing import (
    BillingError,
    Dispensation,
    JournalError,
    StorageFull,
    Transaction,
)
from comptoir.clock import now as clock_now
from comptoir.storage import (
    SQLITE,
    Connection,
    Dialect,
    Sealer,
    load_or_create_key,
    migrate,
    open_sqlite,
    write_failed,
)
from comptoir.tokens.model import Verified

from .billing_link import Biller, sheet_ref
from .errors import (
    InvalidDispensation,
    InvalidPerson,
    NoRoom,
    NotFound,
    PersonMismatch,
    SchemaTooNew,
    Unavailable,
    WrongState,
    reachable,
)
from .model import (
    DispenseRequest,
    Person,
    PersonRights,
    State,
    TransactionView,
    people_of,
)
from .policy import judge
from .recovery import ExpiryAndRecovery
from .rights_desk import RightsDesk
from .schema import SCHEMA, SERVER_SCHEMA
from .sealed import decode_verified, encode_verified

log = logging.getLogger("comptoir.transactions")

ID_BYTES = 16  # 128 random bits: not guessable, not enumerable
_AAD = b"comptoir-transaction-v1:"


class TransactionStore(ExpiryAndRecovery):
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
        db: Connection | None = None,
        dialect: Dialect = SQLITE,
    ) -> None:
        """`db` and `dialect`: another backend's connection (`store_pg.open_store`); `path`
        then only names it."""
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
        # Told when the rights service answered a refresh asked without its own callback.
        self.on_rights: Callable[[str], None] | None = None
        # secure_delete: purged personal data is overwritten with zeros in the database's
        # pages (freed overflow pages included), not just unlinked from the b-tree.
        self.dialect = dialect
        self.db: Any = open_sqlite(path, check_same_thread=False) if db is None else db
        try:
            migrate(self.db, SCHEMA if dialect is SQLITE else SERVER_SCHEMA,
                    too_new=lambda found, ours: SchemaTooNew(
                        f"transactions database {path} has schema {found}, newer than this "
                        f"program's {ours}"), dialect=dialect)
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # --- writing ---------------------------------------------------------------------------

    @reachable
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
        sealed = self._sealer.seal(_AAD + tx_id.encode(), encode_verified(v))
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
            except Exception as e:  # SQLite's, the server's, or it unreachable
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

    @reachable
    def refresh_rights(self, tx_id: str, on_done: Callable[[str], None] | None = None) -> None:
        """Ask the rights service (if any) again for this open transaction's family, in the
        background; `on_done(tx_id)` (default: `on_rights`) runs once the answer or the
        failure is recorded."""
        with self._lock:
            row = self._row(tx_id)
            if row["state"] not in (State.AWAITING_BENEFICIARY, State.READY):
                raise WrongState(f"transaction is {row['state']}: rights are asked for an open "
                                 "transaction only")
            v = self._verified(tx_id, row)
        if self.rights is not None:
            self.rights.refresh(tx_id, v, on_done or self.on_rights, again=True)

    def wait_rights(self, tx_id: str, timeout: float = 10.0) -> bool:
        """Wait for the rights refresh of this transaction (True at once without one)."""
        return True if self.rights is None else self.rights.wait(tx_id, timeout)

    @reachable
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
            except Exception as e:  # SQLite's or the server's (write_failed knows both)
                if write_failed(e):  # nothing was chosen: the same request can be sent again
                    raise NoRoom(f"the transactions database could not record the choice ({e})"
                                 ": free space, then choose again") from e
                raise
            assert cur.rowcount == 1
        log.info("beneficiary chosen", extra={"transaction": tx_id, "person": person})
        return self.get(tx_id)

    @reachable
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
            except Exception as e:  # SQLite's or the server's (write_failed knows both)
                if write_failed(e):
                    raise NoRoom(f"transactions database: not cancelled ({e})") from e
                raise
            self._live.pop(tx_id, None)
        if self.rights is not None:
            self.rights.forget(tx_id)
        log.info("transaction cancelled", extra={"transaction": tx_id})
        return self.get(tx_id)

    @reachable
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
                judge(basis, req, patient.index)
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
            except Exception as e:  # SQLite's or the server's (write_failed knows both)
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

    # --- reading ---------------------------------------------------------------------------

    @reachable
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
                    except Exception as e:  # a full disk still: shown from the journal
                        if not (isinstance(e, sqlite3.Error) or write_failed(e)):
                            raise
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
                sheet = sheet_ref(self.biller, tx_id, row)
        return TransactionView(
            tx_id, State(row["state"]), row["created_at"], row["updated_at"],
            row["presentation_id"], row["board_id"], row["port"], row["channel"], people,
            row["chosen"], sheet, rights, service, affiliation, amc), recovered

    @reachable
    def ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self.db.execute("SELECT id FROM tx ORDER BY created_at")]

    @reachable
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
            v = decode_verified(self._sealer.open(_AAD + tx_id.encode(), row["sealed"]))
        except (InvalidTag, ValueError) as e:
            raise Unavailable(f"the transaction's data does not open ({type(e).__name__})") \
                from None
        if row["state"] in (State.AWAITING_BENEFICIARY, State.READY):
            self._live[tx_id] = v  # reloaded after a restart: keep it while open
        return v
