"""Why a token was refused: one code per distinct failure, stable for logs and the API."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Refusal reasons. Values are stable strings: the daemon logs and reports them."""

    # Transport and hostile-input guard (before any cryptography).
    INPUT_TOO_LARGE = "input_too_large"
    QR_BAD_PREFIX = "qr_bad_prefix"
    QR_BAD_BASE45 = "qr_bad_base45"
    CBOR_TRUNCATED = "cbor_truncated"
    CBOR_MALFORMED = "cbor_malformed"
    CBOR_TOO_DEEP = "cbor_too_deep"
    CBOR_TOO_MANY_ITEMS = "cbor_too_many_items"
    CBOR_INDEFINITE_LENGTH = "cbor_indefinite_length"
    CBOR_NON_MINIMAL = "cbor_non_minimal"
    CBOR_DUPLICATE_KEY = "cbor_duplicate_key"
    CBOR_UNEXPECTED_TAG = "cbor_unexpected_tag"
    CBOR_UNSUPPORTED_TYPE = "cbor_unsupported_type"
    CBOR_TRAILING_BYTES = "cbor_trailing_bytes"

    # COSE envelope.
    COSE_MALFORMED = "cose_malformed"
    ALG_NOT_ALLOWED = "alg_not_allowed"
    UNPROTECTED_HEADER_NOT_EMPTY = "unprotected_header_not_empty"
    KEY_MALFORMED = "key_malformed"
    KEY_WRONG_CURVE = "key_wrong_curve"

    # Claims.
    TOKEN_TYPE_MISMATCH = "token_type_mismatch"
    CLAIMS_MALFORMED = "claims_malformed"
    NIR_MALFORMED = "nir_malformed"
    NIR_BAD_KEY = "nir_bad_key"
    NIR_BIRTH_DATE_MISMATCH = "nir_birth_date_mismatch"
    BENEFICIARIES_INCONSISTENT = "beneficiaries_inconsistent"

    # Trust chain.
    TRUST_LIST_INVALID = "trust_list_invalid"  # refused at load time
    TRUST_LIST_ROLLBACK = "trust_list_rollback"  # refused at load time
    TRUST_LIST_MISSING = "trust_list_missing"
    TRUST_LIST_EXPIRED = "trust_list_expired"
    ISSUER_UNKNOWN = "issuer_unknown"
    ISSUER_NOT_UNDER_ANCHOR = "issuer_not_under_anchor"
    ISSUER_ROLE_NOT_ALLOWED = "issuer_role_not_allowed"
    ISSUER_CERT_VALIDITY = "issuer_cert_validity"
    CREDENTIAL_SIGNATURE_INVALID = "credential_signature_invalid"
    PRESENTATION_SIGNATURE_INVALID = "presentation_signature_invalid"

    # Time.
    CREDENTIAL_NOT_YET_VALID = "credential_not_yet_valid"
    CREDENTIAL_EXPIRED = "credential_expired"
    PRESENTATION_TOO_OLD = "presentation_too_old"
    CLOCK_SKEW = "clock_skew"

    # Deactivation.
    STATUS_LIST_INVALID = "status_list_invalid"  # refused at load time
    STATUS_LIST_UNAVAILABLE = "status_list_unavailable"
    STATUS_LIST_STALE = "status_list_stale"
    STATUS_INDEX_OUT_OF_RANGE = "status_index_out_of_range"
    CREDENTIAL_REVOKED = "credential_revoked"
    CREDENTIAL_SUSPENDED = "credential_suspended"
    ACTIVATION_SUPERSEDED = "activation_superseded"

    # Freshness.
    REPLAYED = "replayed"
    COUNTER_NOT_INCREASING = "counter_not_increasing"
    CHALLENGE_MISSING = "challenge_missing"
    CHALLENGE_UNEXPECTED = "challenge_unexpected"
    CHALLENGE_UNKNOWN = "challenge_unknown"
    CHALLENGE_EXPIRED = "challenge_expired"
    CHALLENGE_REUSED = "challenge_reused"

    # A bug met an input it did not expect: refused (fail closed) and logged.
    INTERNAL_ERROR = "internal_error"

    # The shared replay state (PostgreSQL, several counters) could not be reached: nothing was
    # decided, the presentation is not accepted; the counter shows an error, not a refusal.
    STATE_UNAVAILABLE = "state_unavailable"

# Reasons the counter shows as an error (verdict `error`): the token was not judged.
ERROR_REASONS = frozenset({Reason.INTERNAL_ERROR, Reason.STATE_UNAVAILABLE})


class TokenError(Exception):
    """Internal: raised inside the pipeline, turned into a `Refused` result at its edge.

    `detail` must never contain personal data (no NIR, no name): it ends up in logs.
    """

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
