"""Offline rights cache: rights per beneficiary from the credential and the insurer's rights
service, merged by freshness, stored encrypted in SQLite, judged by a staleness policy.

Entry point for the daemon (see docs/rights-cache.md):
    cache = RightsCache.open(db, key_file, policy=StalenessPolicy(), client=RightsClient(url))
    cache.record_verified(verified)
    answer = cache.lookup(beneficiary_id(b) or insured_id(cred.insured),
                          credential_id=verified.credential_id)
"""

from .breaker import BreakerState, CircuitBreaker
from .cache import Rebuild, RightsCache, SyncReport
from .client import ClientPolicy, RightsClient
from .errors import (
    CacheCorrupt,
    CacheFull,
    KeyFileError,
    RightsError,
    SchemaTooNew,
    ServiceError,
    ServiceUnavailable,
    WrongKey,
)
from .model import (
    QUALITY_INSURED,
    BeneficiaryId,
    Css,
    Names,
    RightsAnswer,
    RightsRecord,
    Source,
    Sourced,
    Status,
    merge,
)
from .policy import StalenessPolicy
from .sources import beneficiary_id, from_credential, insured_id

__all__ = [
    "QUALITY_INSURED",
    "BeneficiaryId",
    "BreakerState",
    "CacheCorrupt",
    "CacheFull",
    "CircuitBreaker",
    "ClientPolicy",
    "Css",
    "KeyFileError",
    "Names",
    "Rebuild",
    "RightsAnswer",
    "RightsCache",
    "RightsClient",
    "RightsError",
    "RightsRecord",
    "SchemaTooNew",
    "ServiceError",
    "ServiceUnavailable",
    "Source",
    "Sourced",
    "StalenessPolicy",
    "Status",
    "SyncReport",
    "WrongKey",
    "beneficiary_id",
    "from_credential",
    "insured_id",
    "merge",
]
