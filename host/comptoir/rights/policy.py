"""The staleness policy: how old cached rights may be to bill on, and the verdict.

Age is measured from when the source asserted the AMO rights (`obtained_at`), not from when
the cache stored them. Rights from the insurer's service age fast (the insurer may have closed
them since); rights inside a verified credential were signed by the insurer for the
credential's validity, so they are judged with their own, longer limit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from .model import BeneficiaryId, RightsAnswer, RightsRecord, Source, Status, day_of
from .store import MEANS_ACTIVE, MEANS_OPPOSED

HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class StalenessPolicy:
    fresh_for: int = DAY  # service answers younger than this are "fresh"
    offline_max_age: int = 7 * DAY  # older service answers may be billed up to this age
    credential_max_age: int = 90 * DAY  # same limit for rights read from a credential
    timezone: str = "Europe/Paris"  # which calendar day "today" is, for rights periods
    tz: dt.tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.fresh_for <= self.offline_max_age:
            raise ValueError("need 0 <= fresh_for <= offline_max_age")
        if not 0 <= self.fresh_for <= self.credential_max_age:
            raise ValueError("need 0 <= fresh_for <= credential_max_age")
        object.__setattr__(self, "tz", ZoneInfo(self.timezone))

    def max_age(self, source: Source) -> int:
        return self.credential_max_age if source is Source.CREDENTIAL else self.offline_max_age

    def verdict(
        self,
        who: BeneficiaryId,
        record: RightsRecord | None,
        now: int,
        *,
        means_state: int | None = None,
    ) -> RightsAnswer:
        """The answer for `who` at `now`. `means_state` is the stored state of the presented
        phone credential (None when unknown or not asked)."""
        if means_state is not None and means_state != MEANS_ACTIVE:
            reason = "means_opposed" if means_state == MEANS_OPPOSED else "means_deactivated"
            return RightsAnswer(Status.BLOCKED, record, None, None, reason)
        if record is None or record.amo is None:
            return RightsAnswer(Status.UNKNOWN, record, None, None, "not_in_cache")
        amo = record.amo
        age = max(0, now - amo.obtained_at)  # a clock set back must not make rights "older"
        today = day_of(now, self.tz)
        if not any(p.covers(today) for p in amo.value):
            reason = "no_amo_rights" if not amo.value else "amo_period_ended"
            return RightsAnswer(Status.EXPIRED, record, amo.source, amo.obtained_at, reason)
        if age <= self.fresh_for:
            status, reason = Status.FRESH, ""
        elif age <= self.max_age(amo.source):
            status, reason = Status.STALE_OK, "cached_rights"
        else:
            status, reason = Status.STALE_REFUSED, "cached_rights_too_old"
        return RightsAnswer(status, record, amo.source, amo.obtained_at, reason)
