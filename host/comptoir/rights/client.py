"""Client of the insurer's rights service: timeouts, retries with backoff, a circuit breaker.

Retried: connection failures, timeouts, 5xx and 429 (honouring a short Retry-After). Not
retried: other 4xx and malformed or mismatched answers (asking again would not help).
Every attempt counts for the circuit breaker; while it is open no request goes out at all and
ServiceUnavailable is raised at once. An answer that is not retried (a 4xx, a malformed answer)
still proves the service reachable: it closes the circuit, a half-open trial included.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from comptoir.clock import now as clock_now

from .breaker import CircuitBreaker
from .errors import ServiceError, ServiceUnavailable
from .model import RightsRecord
from .wire import decode_answer

log = logging.getLogger("comptoir.rights")

MAX_BODY = 8 << 20
MAX_BATCH = 200


@dataclass
class ClientPolicy:
    timeout: float = 2.0  # seconds, per connect and per read
    attempts: int = 3  # first try + retries
    backoff: float = 0.2  # first retry after up to this (full jitter), then doubling
    backoff_max: float = 2.0
    retry_after_max: float = 5.0


@dataclass
class Opposition:
    seq: int
    entries: list[tuple[bytes, int]] = field(default_factory=list)  # (credential id, opposed_at)


class _Retryable(Exception):
    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


class RightsClient:
    def __init__(
        self,
        base_url: str,
        *,
        policy: ClientPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = clock_now,
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("rights service URL must be http(s)://host[:port]")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port
        self._prefix = url.path.rstrip("/")
        self.policy = policy or ClientPolicy()
        self.breaker = breaker or CircuitBreaker()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # one request at a time on the kept-alive connection
        self.attempts_made = 0

    # -- public calls --------------------------------------------------------------------------

    def family(self, nir: str) -> list[RightsRecord] | None:
        """Rights of the family of this insured NIR; None if the service does not know it."""
        status, body = self._call("GET", f"/v1/rights/{urllib.parse.quote(nir)}")
        if status == 404:
            return None
        return decode_answer(body, nir, obtained_at=self._obtained(body))

    def families(self, nirs: Sequence[str]) -> dict[str, list[RightsRecord] | None]:
        """Batch version (at most MAX_BATCH NIRs per request)."""
        out: dict[str, list[RightsRecord] | None] = {}
        for i in range(0, len(nirs), MAX_BATCH):
            chunk = list(nirs[i : i + MAX_BATCH])
            _, body = self._call("POST", "/v1/rights:batch", {"nirs": chunk})
            answers = body.get("answers") if isinstance(body, dict) else None
            if not isinstance(answers, list) or len(answers) != len(chunk):
                raise ServiceError("batch answer does not match the request")
            for nir, answer in zip(chunk, answers, strict=True):
                out[nir] = (
                    None
                    if answer is None
                    else decode_answer(answer, nir, obtained_at=self._obtained(answer))
                )
        return out

    def oppositions(self, since: int) -> Opposition:
        _, body = self._call("GET", f"/v1/opposition?since={int(since)}")
        try:
            entries = [
                (bytes.fromhex(e["credential_id"]), int(e["opposed_at"])) for e in body["entries"]
            ]
            return Opposition(int(body["seq"]), entries)
        except (KeyError, TypeError, ValueError):
            raise ServiceError("bad opposition list") from None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- machinery -----------------------------------------------------------------------------

    def _obtained(self, answer: Any) -> int:
        # The service's clock says when its data was current; never later than our own clock,
        # or a skewed service would make its answers "fresher" than anything that follows.
        as_of = answer.get("as_of") if isinstance(answer, dict) else None
        if not isinstance(as_of, int) or isinstance(as_of, bool) or as_of < 0:
            raise ServiceError("bad as_of")
        return min(as_of, int(self._clock()))

    def _call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        pol = self.policy
        delay = pol.backoff
        last = "no attempt"
        for attempt in range(pol.attempts):
            if not self.breaker.allow():
                raise ServiceUnavailable(
                    f"circuit open ({last}); retry in {self.breaker.retry_in():.1f} s"
                )
            self.attempts_made += 1
            try:
                status, body = self._once(method, path, payload)
            except ServiceError:
                # The service answered (a 4xx, a malformed answer): it is reachable, and asking
                # again would not help. This settles a half-open trial too (issue 15: left
                # unsettled, the breaker stayed open for the counter and the sync alike).
                self.breaker.success()
                raise
            except _Retryable as exc:
                self.breaker.failure()
                last = str(exc)
                log.info(
                    "rights service attempt failed", extra={"attempt": attempt + 1, "why": last}
                )
                if attempt + 1 < pol.attempts:
                    wait = self._rng.uniform(0, delay)
                    if exc.retry_after is not None:
                        wait = max(wait, min(exc.retry_after, pol.retry_after_max))
                    self._sleep(wait)
                    delay = min(delay * 2, pol.backoff_max)
                continue
            except BaseException:
                self.breaker.abandon()  # a local error: the trial, if it was one, is given back
                raise
            self.breaker.success()
            return status, body
        raise ServiceUnavailable(
            f"rights service unavailable after {pol.attempts} attempts: {last}"
        )

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.policy.timeout)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _once(self, method: str, path: str, payload: Any) -> tuple[int, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        with self._lock:
            try:
                conn = self._connection()
                conn.request(method, self._prefix + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read(MAX_BODY + 1)
                status = resp.status
                retry_after = resp.getheader("Retry-After")
                if resp.will_close:
                    self._drop()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                what = (
                    "timeout"
                    if isinstance(exc, socket.timeout | TimeoutError)
                    else (type(exc).__name__)
                )
                raise _Retryable(what) from None
        if status >= 500 or status == 429:
            try:
                after = float(retry_after) if retry_after else None
            except ValueError:
                after = None
            raise _Retryable(f"HTTP {status}", after)
        if status == 404:
            return status, None
        if status != 200:
            raise ServiceError(f"HTTP {status}")
        if len(data) > MAX_BODY:
            raise ServiceError("answer too large")
        try:
            return status, json.loads(data)
        except ValueError:
            raise ServiceError("answer is not JSON") from None
