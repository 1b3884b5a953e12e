"""Which boards this host serves: the keys provisioned at flashing, and the gate
that admits a board only once its PAIR_PROOF verifies.

A board's HELLO names its board id. An id this host does not know is refused at
once (HELLO_REJECT "unknown board"). A known board must send, as the first frame
of the session, an HMAC over both nonces with its key (comptoir_link.pairing);
anything else, a wrong proof, or no proof in time ends the session with a
refusal the board shows. Until then none of its frames reach the daemon.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from comptoir_link import frames as F
from comptoir_link import pairing
from comptoir_link.host_side import HostLink

KEY_LEN = 32
PROOF_TIMEOUT_S = 3.0


def default_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "comptoir" / "boards"


class PairedBoards:
    """One JSON file per board, `<board_id>.json` = {"board_id", "pair_key"}, mode 0600."""

    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or default_dir()

    def key_for(self, board_id: str) -> bytes | None:
        if not board_id or not all(c in "0123456789abcdef" for c in board_id):
            return None
        try:
            data = json.loads((self.dir / f"{board_id}.json").read_text())
            return bytes.fromhex(data["pair_key"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def add(self, board_id: str, key: bytes | None = None) -> bytes:
        key = key or secrets.token_bytes(KEY_LEN)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.dir / f"{board_id}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"board_id": board_id, "pair_key": key.hex()}, f)
        os.chmod(path, 0o600)
        return key


@dataclass(slots=True)
class Refusal:
    reason: int
    text: str


class PairingGate:
    """Per-connection pairing state; the connection asks it about every event."""

    def __init__(self, boards: PairedBoards) -> None:
        self.boards = boards
        self.admitted = False
        self._key: bytes | None = None

    def on_hello(self, board_id: str) -> Refusal | None:
        # `admitted` stays as it is until the new session starts (on_session):
        # the old session, if any, still ends as an admitted one.
        self._key = self.boards.key_for(board_id)
        if self._key is None:
            return Refusal(F.REJECT_UNKNOWN_BOARD, f"board {board_id} is not paired with this host")
        return None

    def on_session(self) -> None:
        """A new session started: nothing is admitted until its proof verifies."""
        self.admitted = False

    def on_first_frame(self, link: HostLink, ftype: int, payload: bytes) -> Refusal | None:
        """The first sequenced frame of a session must be a valid PAIR_PROOF."""
        if ftype != F.PAIR_PROOF:
            return Refusal(F.REJECT_UNKNOWN_BOARD, "pairing proof expected first")
        assert self._key is not None
        want = pairing.proof(self._key, link.peer.get(F.T_BOARD_ID, b""), link.nonce,
                             link.host_nonce, link.session)
        if not pairing.same(bytes(payload), want):
            return Refusal(F.REJECT_UNKNOWN_BOARD, "pairing proof does not match this board's key")
        self.admitted = True
        return None
