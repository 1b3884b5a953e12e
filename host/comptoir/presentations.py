"""What turns boards' frames into verified presentations, for `comptoir run` and
the twin alike: the NFC service (challenges, reassembly, verification, verdict)
and the QR pipeline, subscribed to the daemon, and the trust material a
pharmacy PC verifies with (the anchor, the signed trust list, the status lists,
as `comptoir pki` publishes them)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from comptoir.clock import now as clock_now
from comptoir.config import StorageConfig
from comptoir.nfc_service import NfcService, Presentation
from comptoir.qr import QrPipeline
from comptoir.tasks import Task, periodic
from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.replay import VerifierState, import_sqlite_state, load_pepper
from comptoir.tokens.status import StatusLists
from comptoir.tokens.trust import TrustStore
from comptoir.tokens.verify import Verifier
from comptoir.verdicts import verdict_sender

log = logging.getLogger("comptoir.presentations")


class TrustMaterialError(RuntimeError):
    pass


def load_verifier(
    trust_dir: Path, state_dir: Path, storage: StorageConfig | None = None
) -> tuple[Verifier, ChallengeRegistry]:
    """A verifier from a published trust directory: anchor.pem, trust-list.cbor and
    status-*.cbor. The replay and activation state lives in state_dir, or in the PostgreSQL
    server every counter shares when `storage.url` is set (the pepper stays in state_dir)."""
    now = int(clock_now())
    try:
        anchor = serialization.load_pem_public_key((trust_dir / "anchor.pem").read_bytes())
    except (OSError, ValueError) as e:
        raise TrustMaterialError(f"{trust_dir / 'anchor.pem'}: {e}") from None
    if not isinstance(anchor, ec.EllipticCurvePublicKey):
        raise TrustMaterialError("the trust anchor is not a P-256 public key")
    trust = TrustStore([anchor])
    try:
        trust.load((trust_dir / "trust-list.cbor").read_bytes(), now)
    except Exception as e:  # a bad list is refused by name; nothing is trusted then
        raise TrustMaterialError(f"trust list refused: {e}") from None
    status = StatusLists(trust)
    for path in sorted(trust_dir.glob("status-*.cbor")):
        try:
            status.load(path.read_bytes(), now)
        except Exception as e:
            log.warning("status list refused", extra={"file": str(path), "error": str(e)})
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if storage is not None and storage.url:
        from comptoir.tokens.replay_pg import open_shared_state

        shared = open_shared_state(storage.url, storage.password_file,
                                   pepper=load_pepper(state_dir / "pepper"))
        log.info("verifier state shared on PostgreSQL")
        challenges = ChallengeRegistry()
        return Verifier(trust, status, shared, challenges), challenges
    state = VerifierState(state_dir / "verifier.journal", pepper=load_pepper(state_dir / "pepper"))
    older = state_dir / "verifier.db"  # an older daemon's SQLite state: carried over once
    if older.exists():
        imported = import_sqlite_state(older, state, now)
        older.rename(older.with_name("verifier.db.imported"))
        log.info("verifier state imported from the SQLite file", extra={"rows": imported})
    challenges = ChallengeRegistry()
    return Verifier(trust, status, state, challenges), challenges


@dataclass
class PresentationServices:
    nfc: NfcService
    qr: QrPipeline
    challenges_task: Task

    def stop(self) -> None:
        self.challenges_task.stop()


def attach(daemon: Any, verifier: Verifier, challenges: ChallengeRegistry, *,
           qr_hold: float = 5.0) -> PresentationServices:
    """Subscribe the NFC service and the QR pipeline to `daemon` (before it starts).
    Both publish `Presentation` events on the daemon's event stream."""
    nfc = NfcService(daemon.send, daemon.events.put, verifier, challenges)
    qr = QrPipeline(verifier, verdict_sender(daemon), hold=qr_hold,
                    on_result=lambda port, bid, oid, res: daemon.events.put(
                        Presentation(port, bid, oid, "qr", res, time.monotonic())))
    daemon.subscribe(nfc.on_event)
    daemon.subscribe(qr.on_event)
    # Keeps every NFC board's challenge fresh.
    task = periodic("challenge refresh", 1.0, nfc.tick, at_start=False)
    task.start()
    return PresentationServices(nfc, qr, task)
