"""A simulated phone wallet: the device key (in the phone's secure hardware, in reality), the
credential the insurer bound to it, and a counter that only goes up.

    w = Wallet(credential_bytes, device_private_key)
    text = w.present_qr()              # "CV1:..." for the QR code
    data = w.present_nfc(challenge)    # bytes returned over NFC for the host's challenge

Activating on a new phone is `Issuer.activate` (comptoir_tools.credentials.pki): a new device key
and a higher activation generation; the old wallet keeps working only where nobody has seen the
new one.
Command line (wired as `comptoir wallet`): see `main`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cbor2
import segno
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from comptoir.tokens import claims, cose
from comptoir.tokens.verify import encode_qr

PRESENTATION_ID_BYTES = 8


class Wallet:
    def __init__(
        self,
        credential: bytes,
        device_key: ec.EllipticCurvePrivateKey,
        counter: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.credential = credential
        self.device_key = device_key
        self.counter = counter
        self._clock = clock
        self._rng = rng

    def presentation(self, challenge: bytes | None = None, *, now: int | None = None) -> bytes:
        """A signed presentation: NFC when a challenge is given, QR otherwise. The presentation
        id (cti) is a fresh random nonce; the counter goes up by one every time."""
        self.counter += 1
        payload = claims.encode_presentation(
            credential=self.credential,
            iat=int(self._clock()) if now is None else now,
            cti=self._rng(PRESENTATION_ID_BYTES),
            counter=self.counter,
            challenge=challenge,
        )
        return cose.sign(self.device_key, {cose.HDR_ALG: cose.ALG_ES256}, cbor2.dumps(payload))

    def present_qr(self, *, now: int | None = None) -> str:
        return encode_qr(self.presentation(None, now=now))

    def present_nfc(self, challenge: bytes, *, now: int | None = None) -> bytes:
        return self.presentation(challenge, now=now)

    def save(self, path: Path) -> None:
        key = self.device_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        data = {
            "credential": base64.b64encode(self.credential).decode(),
            "device_key": key,
            "counter": self.counter,
        }
        path.write_text(json.dumps(data, indent=1))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> Wallet:
        data = json.loads(path.read_text())
        key = serialization.load_pem_private_key(data["device_key"].encode(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("device key is not an EC key")
        return cls(base64.b64decode(data["credential"]), key, data["counter"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="comptoir wallet", description="Simulated phone wallet (tests and twin only)."
    )
    parser.add_argument("--now", type=int, default=None, help="Unix time to use (default: now)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("present", help="make a presentation (QR text, or NFC bytes as hex)")
    p.add_argument("wallet", type=Path)
    p.add_argument("--challenge", help="NFC: the host's challenge, hex; omit for a QR")
    p.add_argument("--png", type=Path, help="QR: also write the QR code image here")
    args = parser.parse_args(argv)

    wallet = Wallet.load(args.wallet)
    if args.challenge is not None:
        print(wallet.present_nfc(bytes.fromhex(args.challenge), now=args.now).hex())
    else:
        text = wallet.present_qr(now=args.now)
        if args.png:
            segno.make(text, error="m", mode="alphanumeric").save(args.png, scale=4)
        print(text)
    wallet.save(args.wallet)  # the counter moved
    return 0


if __name__ == "__main__":
    sys.exit(main())
