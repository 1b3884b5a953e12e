"""The simulated insurer side of the twin: a test PKI, its published trust list
and status list, phones activated for generated families, and the host's
verifier configured to trust that PKI, as a pharmacy PC would be.

Only generated people (comptoir_tools.credentials.identities): no real NIR or name.
"""

from __future__ import annotations

import time
from pathlib import Path

from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.replay import VerifierState, load_pepper
from comptoir.tokens.status import StatusLists
from comptoir.tokens.trust import TrustStore
from comptoir.tokens.verify import Verifier
from comptoir_tools.credentials.identities import Family, family
from comptoir_tools.credentials.pki import TestPki
from comptoir_tools.credentials.wallet import Wallet


class SimulatedInsurer:
    def __init__(self, workdir: Path, *, seed: int = 1) -> None:
        self.now = int(time.time())
        self.pki = TestPki(seed, now=self.now)
        self.issuer = self.pki.issuers[0]
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.trust = TrustStore([self.pki.anchor])
        self.trust.load(self.pki.trust_list(now=self.now), self.now)
        self.status = StatusLists(self.trust)
        self.challenges = ChallengeRegistry()
        self.state = VerifierState(workdir / "verifier.journal",
                                   pepper=load_pepper(workdir / "pepper"))
        self.verifier = Verifier(self.trust, self.status, self.state, self.challenges)
        self._families: dict[int, Family] = {}
        self._status_iat = 0

    def family(self, seed: int, beneficiaries: int | None = None) -> Family:
        if seed not in self._families:
            self._families[seed] = family(seed, beneficiaries=beneficiaries)
        return self._families[seed]

    def activate(self, fam: Family) -> Wallet:
        """A phone activated now for `fam`; the status list is republished."""
        credential, device = self.issuer.activate(fam, now=int(time.time()) - 60)
        self.publish_status()
        return Wallet(credential, device)

    def publish_status(self) -> None:
        # A held list is replaced only by a strictly newer one: two publications within the
        # same second get increasing times (loaded with the insurer's own clock).
        self._status_iat = max(int(time.time()), self._status_iat + 1)
        self.status.load(self.issuer.status_list(now=self._status_iat), self._status_iat)

    def close(self) -> None:
        self.state.close()
