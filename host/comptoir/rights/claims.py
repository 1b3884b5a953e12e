"""Which families a sync round asks the rights service about, when several counters share the
cache (issue 17): each counter's background sync refreshes the same shared cache, and without
a word between them every counter would ask the insurer for the same oldest families, at the
same moments (their tasks start together and run on the same period).

A round claims the stale families it will ask about, in one write transaction (the cache's
write lock: on PostgreSQL its advisory lock, so two counters' claims never overlap), for
`claim_for` seconds: another counter's round skips a claimed family and takes the next oldest.
A family answered stays claimed until then (one question per period for the pharmacy, even
when the insurer's answer stays old); the families of a round that stopped before asking
(the service unreachable, the daemon stopping) are released at once for any counter's next
round. A claim holds the family's keyed hash and a time, nothing personal. The same on SQLite
(one counter, and `comptoir cache sync` beside it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .crypto import RowCipher
from .store import RightsStore

# Stale families no live claim holds, oldest first (as RightsStore.stale_families).
_FREE_STALE = (
    "SELECT p.family FROM persons p LEFT JOIN refresh_claims c ON c.family = p.family "
    "WHERE c.family IS NULL OR c.claimed_until <= ? "
    "GROUP BY p.family HAVING min(p.obtained_at) <= ? ORDER BY min(p.obtained_at), p.family"
)
# Candidates read outside the write lock (a scan of the persons table); another counter may
# claim some of them before this one's transaction: a few spare ones take their place.
_SPARE = 4


def claim_stale(store: RightsStore, cutoff: int, limit: int | None, now: int,
                claim_for: int) -> list[str]:
    """The NIRs of at most `limit` stale families (rights obtained at or before `cutoff`) that
    no other round holds, now claimed by this one until `now + claim_for`."""
    sql = _FREE_STALE + ("" if limit is None else " LIMIT ?")
    params = (now, cutoff) if limit is None else (now, cutoff, limit * _SPARE)
    with store._lock:
        candidates = [bytes(r[0]) for r in store._db.execute(sql, params).fetchall()]

    def claim(db: Any) -> list[bytes]:
        got: list[bytes] = []
        for family in candidates:
            if limit is not None and len(got) >= limit:
                break
            row = db.execute("SELECT claimed_until FROM refresh_claims WHERE family = ?",
                             (family,)).fetchone()
            if row is not None and int(row[0]) > now:
                continue  # another counter's round has it
            db.execute("INSERT INTO refresh_claims VALUES (?, ?) ON CONFLICT (family) DO UPDATE "
                       "SET claimed_until = excluded.claimed_until", (family, now + claim_for))
            got.append(family)
        db.execute("DELETE FROM refresh_claims WHERE claimed_until <= ?", (now,))
        return got

    if not candidates:
        return []
    claimed = store._write(claim)
    try:
        return store.nirs_of(claimed)
    except BaseException:  # e.g. a damaged row (repaired, then claimed again): none held
        _unclaim(store, claimed)
        raise


def release(store: RightsStore, cipher: RowCipher, nirs: Iterable[str]) -> None:
    """Give up the claims on these families (their round did not ask about them)."""
    _unclaim(store, [cipher.family(nir) for nir in nirs])


def _unclaim(store: RightsStore, families: list[bytes]) -> None:
    if families:
        store._write(lambda db: db.executemany(
            "DELETE FROM refresh_claims WHERE family = ?", [(f,) for f in families]))
