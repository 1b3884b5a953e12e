"""Simulated insurer rights service (ADRi-like), for tests and the twin: a real HTTP server on
127.0.0.1 in a thread, answering the JSON of `comptoir.rights.wire`, with knobs for latency,
errors and outages. Generated fake families only.

    svc = RightsService(now=lambda: t)        # or RightsService() for the wall clock
    svc.add_family(identities.family(7))
    svc.start(); url = svc.url; ...; svc.stop()
    svc.latency = 0.5          # seconds before each answer
    svc.error_rate = 0.3       # fraction of requests answered 500 (seeded)
    svc.outage = True          # every request answered 503
    svc.fail_next(2, 500)      # the next 2 requests fail with that status
    svc.swap_identity = True   # answers about another family (the mix-up a client must refuse)
    svc.close_rights(nir, members=[2])   # the insurer closes the rights of beneficiary 2
    svc.stop()                 # connections refused
Command line: `python -m comptoir_tools.simulators.rights_service --port 8780 --families 100`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from comptoir.rights.wire import encode_answer
from comptoir_tools.credentials.identities import Family, family


class RightsService:
    def __init__(self, *, now: Callable[[], float] = time.time, seed: int = 0) -> None:
        self._now = now
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.families: dict[str, tuple[Family, int | None]] = {}  # NIR -> (family, as_of)
        self.oppositions: list[tuple[bytes, int]] = []
        self.latency = 0.0
        self.error_rate = 0.0
        self.outage = False
        self.swap_identity = False
        self._fail: list[int] = []
        self.requests = 0
        self._server: _Server | None = None
        self._connections: set[Any] = set()
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- data ----------------------------------------------------------------------------------

    def add_family(self, fam: Family, *, as_of: int | None = None) -> None:
        """Serve this family; `as_of` pins the answer's time (default: the service clock)."""
        with self._lock:
            self.families[fam.insured.nir] = (fam, as_of)

    def remove_family(self, nir: str) -> None:
        with self._lock:
            self.families.pop(nir, None)

    def close_rights(
        self, nir: str, *, as_of: int | None = None, members: Collection[int] | None = None
    ) -> None:
        """The insurer closes the AMO rights of a whole family (e.g. affiliation moved), or of
        some `members` only (0 = the insured person, i = the i-th beneficiary)."""
        shut = set(range(1 + len(self.families[nir][0].beneficiaries))) if members is None \
            else set(members)
        with self._lock:
            fam, _ = self.families[nir]
            insured = dataclasses.replace(fam.insured, rights=()) if 0 in shut else fam.insured
            members_ = tuple(
                dataclasses.replace(b, rights=()) if i in shut else b
                for i, b in enumerate(fam.beneficiaries, 1)
            )
            self.families[nir] = (
                dataclasses.replace(fam, insured=insured, beneficiaries=members_),
                as_of,
            )

    def oppose(self, credential_id: bytes, at: int) -> None:
        with self._lock:
            self.oppositions.append((credential_id, at))

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._fail.extend([status] * count)

    def answer(self, nir: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self.families.get(nir)
            if entry is not None and self.swap_identity:
                others = [v for k, v in self.families.items() if k != nir]
                entry = others[0] if others else entry
        if entry is None:
            return None
        fam, as_of = entry
        return encode_answer(
            fam.insured,
            fam.beneficiaries,
            fam.affiliation,
            fam.amc,
            int(self._now()) if as_of is None else as_of,
        )

    # -- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> RightsService:
        """Listen on 127.0.0.1 (port 0: any free port; restarting reuses the previous one)."""
        handler = _handler(self)
        self._server = _Server(("127.0.0.1", port or self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut the kept-alive connections: the service is gone."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> RightsService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _fault(self) -> int | None:
        """The status to fail this request with, if any (counts the request)."""
        with self._lock:
            self.requests += 1
            if self._fail:
                return self._fail.pop(0)
            if self.outage:
                return 503
            if self.error_rate and self._rng.random() < self.error_rate:
                return 500
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) is normal here; tracebacks would carry paths


def _handler(svc: RightsService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real service

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add 40 ms to every answer on a kept-alive connection.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with svc._lock:
                svc._connections.add(self.connection)

        def finish(self) -> None:
            with svc._lock:
                svc._connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry NIRs: nothing is logged

        def _send(self, status: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _pre(self) -> bool:
            if svc.latency:
                time.sleep(svc.latency)
            status = svc._fault()
            if status is not None:
                self._send(status, {"error": "simulated"})
                return False
            return True

        def do_GET(self) -> None:
            if not self._pre():
                return
            if self.path.startswith("/v1/rights/"):
                answer = svc.answer(self.path.removeprefix("/v1/rights/"))
                self._send(404, {"error": "unknown"}) if answer is None else self._send(200, answer)
            elif self.path.startswith("/v1/opposition"):
                since = int(self.path.partition("since=")[2] or 0)
                with svc._lock:
                    entries = svc.oppositions[since:]
                    seq = len(svc.oppositions)
                self._send(
                    200,
                    {
                        "seq": seq,
                        "entries": [
                            {"credential_id": c.hex(), "opposed_at": t} for c, t in entries
                        ],
                    },
                )
            else:
                self._send(404, {"error": "no such path"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if not self._pre():
                return
            if self.path != "/v1/rights:batch":
                self._send(404, {"error": "no such path"})
                return
            try:
                nirs = json.loads(body)["nirs"]
            except (ValueError, KeyError, TypeError):
                self._send(400, {"error": "bad request"})
                return
            self._send(200, {"answers": [svc.answer(n) for n in nirs]})

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="comptoir rights-service",
        description="Simulated insurer rights service (test data only)",
    )
    ap.add_argument("--port", type=int, default=8780)
    ap.add_argument("--families", type=int, default=100, help="serve families 1..N")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--error-rate", type=float, default=0.0)
    args = ap.parse_args(argv)
    svc = RightsService()
    for seed in range(1, args.families + 1):
        svc.add_family(family(seed))
    svc.latency, svc.error_rate = args.latency, args.error_rate
    svc.start(args.port)
    print(f"rights service on {svc.url} ({args.families} families)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        svc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
