"""The rights desk: the offline rights cache at the counter, for each person of a transaction.

When a verified presentation opens a transaction, the rights the insurer signed into the
credential are recorded in the cache (`RightsCache.record_verified`, local SQLite, no network)
and every person's verdict is read from the cache at once: the counter never waits on the
network to show who is covered. Then, when a rights service is configured, one background
worker asks it for the family (through the cache's client: bounded timeouts, retries, circuit
breaker) and records the answer; the transaction's view is read from the cache again, and the
caller is told (the API's event stream publishes it).

Every look-up is keyed by the person's own identity (insured NIR, birth date, birth rank,
qualité) built from the credential at that person's index, checked against the transaction's
Person, and the record the cache returns must carry that same identity. The dispensation of a
transaction waits at most `dispense_wait` seconds for a refresh still under way, then judges
the chosen person's rights from the cache (docs/rights-cache.md, "At the counter").
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
from collections.abc import Callable
from enum import StrEnum

from comptoir.clock import monotonic as clock_monotonic
from comptoir.rights import (
    BeneficiaryId,
    RightsCache,
    RightsError,
    ServiceError,
    ServiceUnavailable,
    Status,
    beneficiary_id,
    insured_id,
)
from comptoir.tasks import JobQueue
from comptoir.tokens.model import Verified

from .model import Person, PersonRights

log = logging.getLogger("comptoir.rights")

# A refresh asked: transaction id, insured NIR, who to tell, set once recorded.
_Job = tuple[str, str, Callable[[str], None] | None, threading.Event]

MAX_TRACKED = 10_000  # refresh states kept for open transactions (oldest forgotten first)


class ServiceState(StrEnum):
    """What the insurer's rights service said for a transaction's family."""

    OFF = "off"  # no rights service configured: the cache alone
    PENDING = "pending"  # being asked now
    ANSWERED = "answered"  # answered; its answer is in the cache
    UNAVAILABLE = "unavailable"  # down, timed out or circuit open: the cache alone
    REJECTED = "rejected"  # answered something unusable (another family, bad data): not stored


UNKNOWN = PersonRights(Status.UNKNOWN.value, "cache_unavailable", None, None, False)


def who_of(v: Verified, index: int) -> BeneficiaryId:
    """The rights identity of person `index` of a verified credential (0 = the insured)."""
    if index == 0:
        return insured_id(v.insured)
    return beneficiary_id(v.beneficiaries[index - 1])


def _checked_who(v: Verified, person: Person) -> BeneficiaryId:
    who = who_of(v, person.index)
    ref = person.ref
    if (who.nir, who.birth_date, who.birth_rank, who.quality) != (
            ref.insured_nir, ref.birth_date, ref.birth_rank, person.quality):
        raise RuntimeError("rights identity does not match the transaction's person")
    return who


class RightsDesk:
    def __init__(self, cache: RightsCache, *, dispense_wait: float = 1.5) -> None:
        self.cache = cache
        self.dispense_wait = dispense_wait
        self._lock = threading.Lock()
        self._state: collections.OrderedDict[str, ServiceState] = collections.OrderedDict()
        self._done: dict[str, threading.Event] = {}
        self._worker: JobQueue[_Job] | None = None
        if cache.client is not None:
            self._worker = JobQueue("rights refresh", self._run)
            self._worker.start()

    @property
    def online(self) -> bool:
        return self.cache.client is not None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        self.cache.close()

    # --- at the opening of a transaction ----------------------------------------------------

    def opened(self, tx_id: str, v: Verified) -> None:
        """Record the credential's rights (local, fast) and mark the family as being asked
        (when a service is configured). A cache that cannot take the rights (full disk) is
        logged: the people then read `unknown` unless the service answers."""
        try:
            self.cache.record_verified(v)
        except (RightsError, ValueError, sqlite3.Error) as e:
            log.error("rights from the credential not recorded",
                      extra={"transaction": tx_id, "why": type(e).__name__})
        self._pending(tx_id)

    def _pending(self, tx_id: str) -> threading.Event:
        done = threading.Event()
        with self._lock:
            self._state[tx_id] = ServiceState.PENDING if self.online else ServiceState.OFF
            self._state.move_to_end(tx_id)
            self._done[tx_id] = done
            while len(self._state) > MAX_TRACKED:
                old, _ = self._state.popitem(last=False)
                self._done.pop(old, None)
        if not self.online:
            done.set()
        return done

    def refresh(self, tx_id: str, v: Verified, on_done: Callable[[str], None] | None = None,
                *, again: bool = False) -> None:
        """Ask the service for the family in the background; `on_done(tx_id)` runs after the
        answer (or the failure) is recorded. `again`: a new request for a transaction already
        asked (marked pending anew). Without a service: nothing to do."""
        if not self.online:
            return
        with self._lock:
            done = self._done.get(tx_id)
        if again or done is None:
            done = self._pending(tx_id)
        assert self._worker is not None
        self._worker.put((tx_id, v.insured.nir, on_done, done))

    def _run(self, job: _Job) -> None:
        tx_id, nir, on_done, done = job
        state = self._ask(tx_id, nir)
        with self._lock:
            if self._done.get(tx_id) is done:  # not forgotten, not asked again since
                self._state[tx_id] = state
        done.set()
        if on_done is not None:
            try:
                on_done(tx_id)
            except Exception:
                log.exception("rights refresh callback failed")

    def _ask(self, tx_id: str, nir: str) -> ServiceState:
        client = self.cache.client
        assert client is not None
        started = clock_monotonic()
        try:
            records = client.family(nir)
            self.cache.record_service(nir, records)
            state = ServiceState.ANSWERED
        except ServiceUnavailable as e:
            state, why = ServiceState.UNAVAILABLE, str(e)
        except ServiceError as e:
            state, why = ServiceState.REJECTED, str(e)
        except (RightsError, ValueError, sqlite3.Error) as e:  # the answer was not stored
            state, why = ServiceState.REJECTED, type(e).__name__
        else:
            why = ""
        log.info("rights service asked", extra={
            "transaction": tx_id, "result": state.value, "why": why,
            "ms": round((clock_monotonic() - started) * 1000, 1),
            "breaker": client.breaker.state.value})
        return state

    def service_state(self, tx_id: str) -> ServiceState | None:
        """None: not asked by this process (a transaction reopened after a restart)."""
        with self._lock:
            return self._state.get(tx_id)

    def wait(self, tx_id: str, timeout: float) -> bool:
        """Wait until the refresh of this transaction is over; False on timeout."""
        with self._lock:
            done = self._done.get(tx_id)
        return True if done is None else done.wait(timeout)

    def forget(self, tx_id: str) -> None:
        with self._lock:
            self._state.pop(tx_id, None)
            self._done.pop(tx_id, None)

    # --- verdicts ----------------------------------------------------------------------------

    def person(self, v: Verified, person: Person, now: int | None = None) -> PersonRights:
        """This person's rights from the cache alone (never the network)."""
        who = _checked_who(v, person)
        try:
            answer = self.cache.rights_for(who, now, credential_id=v.credential_id)
        except (RightsError, sqlite3.Error) as e:
            log.error("rights cache not readable", extra={"why": type(e).__name__})
            return UNKNOWN
        if answer.record is not None and answer.record.who != who:
            raise RuntimeError("the rights cache answered for another person")
        return PersonRights.of(answer)
