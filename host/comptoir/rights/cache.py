"""The offline rights cache, as the daemon uses it.

    cache = RightsCache.open(db_path, key_path, policy=StalenessPolicy(), client=RightsClient(url))
    cache.record_verified(verified)               # after every accepted presentation
    answer = cache.lookup(who, credential_id=verified.credential_id)   # refreshes if it can
    answer.status / answer.billable / answer.source / answer.obtained_at

A database that fails a check at open, or a row that fails authentication later, is moved
aside and rebuilt: rows of the old file that still authenticate are carried over (each is
AES-GCM-sealed under its own lookup key, so a carried row is exactly what this cache wrote),
then the insurer's service is asked again for those families when it answers. With a wrong
key nothing can be read: the cache starts empty and refills from credentials and the service.
The database shared on PostgreSQL is not moved aside by one counter: the rows that fail
authentication are removed from it, the others stay; another key there is refused (WrongKey).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comptoir.clock import now as clock_now
from comptoir.tokens.model import Credential, Verified

from . import claims
from .client import RightsClient
from .crypto import RowCipher, load_or_create_key
from .errors import CacheCorrupt, RowCorrupt, ServiceError, ServiceUnavailable
from .model import BeneficiaryId, RightsAnswer, RightsRecord, Source, Status
from .policy import StalenessPolicy
from .rebuild import Rebuild, rebuild_store, repair
from .sources import from_credential
from .store import (
    MEANS_ACTIVE,
    MEANS_DEACTIVATED,
    MEANS_OPPOSED,
    MEANS_SUSPENDED,
    RightsStore,
)

log = logging.getLogger("comptoir.rights")

_OPPOSITION_SEQ = "opposition_seq"


@dataclass
class SyncReport:
    families: int = 0  # asked
    answered: int = 0
    unknown: int = 0  # the service does not know the NIR
    rejected: int = 0  # answers unusable (e.g. about another person): skipped, not stored
    rows_changed: int = 0
    oppositions: int = 0
    opposition_seq: int = 0  # how far into the opposition list (when it was pulled)
    failed: str = ""  # why the sync stopped early ("" when it completed)
    unavailable: bool = False  # it stopped because the service could not be reached
    seconds: float = 0.0


class RightsCache:
    def __init__(
        self,
        store: RightsStore,
        cipher: RowCipher,
        *,
        policy: StalenessPolicy | None = None,
        client: RightsClient | None = None,
        clock: Any = clock_now,
        store_options: dict[str, Any] | None = None,
        keep_corrupt: bool = False,
    ) -> None:
        self.store = store
        self._cipher = cipher
        self.policy = policy or StalenessPolicy()
        self.client = client
        self._clock = clock
        self._store_options = store_options or {}
        self._keep_corrupt = keep_corrupt
        self._lock = threading.RLock()
        self._opposition_lock = threading.Lock()
        self.rebuilds: list[Rebuild] = []

    @classmethod
    def open(
        cls,
        db_path: str | Path,
        key_path: str | Path,
        *,
        policy: StalenessPolicy | None = None,
        client: RightsClient | None = None,
        clock: Any = clock_now,
        keep_corrupt: bool = False,
        url: str | None = None,
        password_file: str | Path | None = None,
        **store_options: Any,
    ) -> RightsCache:
        """Open (creating if needed) the cache; a corrupt file is reported and rebuilt.
        `store_options` go to RightsStore (integrity, verify_rows, max_pages, durable).
        With `url`: the cache shared by the counters on that PostgreSQL server (`db_path`
        unused); rows that fail authentication there are removed (`rebuild.repair`), any other
        failed check (another key) is an error."""
        cipher = RowCipher(load_or_create_key(key_path))
        try:
            if url:
                from .store_pg import open_store

                try:
                    store = open_store(url, cipher, password_file=password_file, **store_options)
                    rebuild = None
                except RowCorrupt as exc:
                    store = open_store(url, cipher, password_file=password_file,
                                       **{**store_options, "verify_rows": "none"})
                    rebuild = repair(store, cipher, exc, int(clock()))
            else:
                store = RightsStore(db_path, cipher, **store_options)
                rebuild = None
        except CacheCorrupt as exc:
            if url:
                raise
            store, rebuild = rebuild_store(
                Path(db_path), cipher, exc, store_options, keep_corrupt, int(clock())
            )
        cache = cls(
            store,
            cipher,
            policy=policy,
            client=client,
            clock=clock,
            store_options=store_options,
            keep_corrupt=keep_corrupt,
        )
        if rebuild is not None:
            cache.rebuilds.append(rebuild)
        return cache

    def close(self) -> None:
        with self._lock:
            self.store.close()
            if self.client is not None:
                self.client.close()

    def _recover(self, exc: CacheCorrupt) -> None:
        """A row failed authentication in use: the whole file is suspect. Rebuild now (a file;
        the shared database is not moved aside by one counter: its damaged rows are removed)."""
        if not self.store.on_sqlite:
            if not isinstance(exc, RowCorrupt):
                raise exc
            with self._lock:
                self.rebuilds.append(repair(self.store, self._cipher, exc, int(self._clock())))
            return
        with self._lock:
            self.store.close()
            self.store, rebuild = rebuild_store(
                self.store.path,
                self._cipher,
                exc,
                self._store_options,
                self._keep_corrupt,
                int(self._clock()),
            )
            self.rebuilds.append(rebuild)

    def _guard(self, fn: Any) -> Any:
        try:
            return fn()
        except CacheCorrupt as exc:
            self._recover(exc)
            return fn()

    # -- the verdict ---------------------------------------------------------------------------

    def rights_for(
        self, who: BeneficiaryId, now: int | None = None, *, credential_id: bytes | None = None
    ) -> RightsAnswer:
        """What the cache holds for `who`, judged by the staleness policy. Never asks the
        service; never returns a record of anyone but `who` (checked after decryption)."""
        now = int(self._clock()) if now is None else now

        def read() -> tuple[RightsRecord | None, int | None]:
            with self._lock:
                record = self.store.get(who)
                means = None if credential_id is None else self.store.means(credential_id)
            return record, None if means is None else means.value

        record, means_state = self._guard(read)
        return self.policy.verdict(who, record, now, means_state=means_state)

    def lookup(
        self,
        who: BeneficiaryId,
        now: int | None = None,
        *,
        credential_id: bytes | None = None,
        refresh: bool = True,
    ) -> RightsAnswer:
        """rights_for, after asking the service for the family when the cached rights are not
        fresh and the service is reachable (the circuit breaker answers at once when not)."""
        now = int(self._clock()) if now is None else now
        answer = self.rights_for(who, now, credential_id=credential_id)
        if not refresh or self.client is None or answer.status in (Status.FRESH, Status.BLOCKED):
            return answer
        try:
            records = self.client.family(who.nir)
        except (ServiceUnavailable, ServiceError) as exc:
            log.warning("rights service not used for this look-up", extra={"why": str(exc)})
            return answer
        self.record_service(who.nir, records)
        answer = self.rights_for(who, now, credential_id=credential_id)
        if records is None and answer.status is Status.UNKNOWN:
            return RightsAnswer(Status.UNKNOWN, None, None, None, "unknown_to_service", True)
        return RightsAnswer(
            answer.status,
            answer.record,
            answer.source,
            answer.obtained_at,
            answer.reason,
            refreshed=True,
        )

    # -- sources -------------------------------------------------------------------------------

    def _apply_snapshot(
        self, nir: str, records: list[RightsRecord], source: Source, obtained_at: int
    ) -> int:
        with self._lock:
            return int(
                self._guard(lambda: self.store.apply_snapshot(nir, records, source, obtained_at))
            )

    def record_credential(self, cred: Credential) -> int:
        """Rights signed into a verified credential (obtained at its `iat`)."""
        return self._apply_snapshot(
            cred.insured.nir, from_credential(cred), Source.CREDENTIAL, cred.issued_at
        )

    def record_verified(self, verified: Verified) -> int:
        return self.record_credential(verified.credential)

    def record_service(
        self, nir: str, records: list[RightsRecord] | None, now: int | None = None
    ) -> int:
        """An answer of the service for one insured NIR. None means the service does not know
        the NIR: cached members get the fact "no AMO rights" as of now."""
        if records:
            first = records[0].amo
            assert first is not None
            return self._apply_snapshot(nir, records, first.source, first.obtained_at)
        now = int(self._clock()) if now is None else now
        return self._apply_snapshot(nir, [], Source.SERVICE, now)

    def record_status(self, credential_id: bytes, status_value: int, obtained_at: int) -> bool:
        """A status-list entry for a credential (0 valid, 1 invalid, 2 suspended, else invalid)."""
        state = {0: MEANS_ACTIVE, 2: MEANS_SUSPENDED}.get(status_value, MEANS_DEACTIVATED)
        with self._lock:
            return bool(
                self._guard(
                    lambda: self.store.set_means(
                        credential_id, state, Source.STATUS_LIST, obtained_at
                    )
                )
            )

    def record_opposition(self, entries: Iterable[tuple[bytes, int]]) -> int:
        changed = 0
        with self._lock:
            for credential_id, opposed_at in entries:
                changed += self.store.set_means(
                    credential_id, MEANS_OPPOSED, Source.OPPOSITION, opposed_at
                )
        return changed

    # -- sync ----------------------------------------------------------------------------------

    def sync(
        self,
        now: int | None = None,
        *,
        older_than: int = 0,
        limit: int | None = None,
        oppositions: bool = True,
        client: RightsClient | None = None,
        stop: threading.Event | None = None,
        claim_for: int = 0,
    ) -> SyncReport:
        """Ask the service again for the cached families whose AMO rights were obtained more
        than `older_than` seconds ago (oldest first, at most `limit` of them), then pull the
        opposition list (`oppositions`). Stops at the first unavailability (the breaker is
        open, or retries ran out), or between batches when `stop` is set, and says so in
        `failed`; the caller decides what to log. `client`: another client than the cache's
        (the daemon's background task has its own connection, sharing the breaker).
        `claim_for`: seconds the families asked are claimed, so that the other counters sharing
        the cache skip them (claims.py; 0: no claims)."""
        client = client or self.client
        if client is None:
            raise ValueError("no rights service configured")
        now = int(self._clock()) if now is None else now
        started = time.perf_counter()
        report = SyncReport()
        if claim_for:
            nirs = self._guard(lambda: claims.claim_stale(self.store, now - older_than, limit,
                                                          now, claim_for))
        else:
            nirs = self._guard(lambda: self.store.stale_families(now - older_than, limit))
        report.families = len(nirs)
        answered: set[str] = set()
        try:
            for i in range(0, len(nirs), 200):
                if stop is not None and stop.is_set():
                    report.failed = "stopped"
                    break
                answers = self._batch(client, nirs[i : i + 200], report)
                answered.update(nirs[i : i + 200])  # asked (an unusable answer too)
                for nir, records in answers.items():
                    report.answered += 1
                    report.unknown += records is None
                    report.rows_changed += self.record_service(nir, records, now)
            if oppositions and not report.failed:
                report.oppositions, report.opposition_seq = self.sync_oppositions(client)
        except (ServiceUnavailable, ServiceError) as exc:
            report.failed = str(exc)
            report.unavailable = isinstance(exc, ServiceUnavailable)
            log.debug(
                "rights sync stopped early",
                extra={"answered": report.answered, "families": report.families, "why": str(exc)},
            )
        if claim_for and len(answered) < len(nirs):
            claims.release(self.store, self._cipher, set(nirs) - answered)
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _batch(
        client: RightsClient, nirs: list[str], report: SyncReport
    ) -> dict[str, list[RightsRecord] | None]:
        """One batch; when the service answers something unusable about one family (the
        whole batch is refused then), its families are asked one by one and the unusable
        answers skipped (counted in `report.rejected`), so that one bad answer does not stop
        every later sync at the same oldest families."""
        try:
            return client.families(nirs)
        except ServiceError:
            answers: dict[str, list[RightsRecord] | None] = {}
            for nir in nirs:
                try:
                    answers[nir] = client.family(nir)
                except ServiceError:
                    report.rejected += 1
            return answers

    @property
    def opposition_seq(self) -> int:
        """How far into the service's opposition list this cache has read."""
        return self.store.meta_int(_OPPOSITION_SEQ)

    def sync_oppositions(self, client: RightsClient | None = None) -> tuple[int, int]:
        """Pull the oppositions declared since the last pull -> (means changed, new seq).
        Raises ServiceUnavailable / ServiceError (nothing recorded then)."""
        client = client or self.client
        if client is None:
            raise ValueError("no rights service configured")
        # One pull at a time (the sequence number is read, then advanced); not under the
        # cache's lock, which look-ups at the counter take: never held across the network.
        with self._opposition_lock:
            seq = self.store.meta_int(_OPPOSITION_SEQ)
            opp = client.oppositions(seq)
            changed = self.record_opposition(opp.entries)
            self.store.set_meta_int(_OPPOSITION_SEQ, opp.seq)
        return changed, opp.seq

    # -- erasure and counts --------------------------------------------------------------------

    def purge(self, who: BeneficiaryId) -> int:
        with self._lock:
            return self.store.purge(who)

    def purge_family(self, nir: str) -> int:
        with self._lock:
            return self.store.purge(nir=nir)

    def counts(self, now: int | None = None) -> dict[str, Any]:
        """Counts only, never anyone's data: for `comptoir cache export-counts` and status."""
        now = int(self._clock()) if now is None else now
        with self._lock:
            c = self.store.counts()
            statuses: Counter[str] = Counter()
            sources: Counter[str] = Counter()

            def tally() -> None:
                statuses.clear()
                sources.clear()
                for record in self.store.records():
                    statuses[self.policy.verdict(record.who, record, now).status.value] += 1
                    if record.amo is not None:
                        sources[record.amo.source.label] += 1

            self._guard(tally)
        return {
            "persons": c.persons,
            "families": c.families,
            "means": c.means,
            "schema_version": c.schema_version,
            "file_bytes": c.file_bytes,
            "by_status": {s.value: statuses.get(s.value, 0) for s in Status},
            "by_source": dict(sorted(sources.items())),
            "rebuilds": len(self.rebuilds),
        }
