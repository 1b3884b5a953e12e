"""Several counters of one pharmacy on one PostgreSQL server (issue 17), as they run there: each
counter a real `comptoir run` process with its own configuration (its own data directory, the
keys and the verifier's pepper copied by the installer, `storage.url` naming the shared
server); each reader board reduced to its link (the firmware's own BoardLink, driven from
CPython) on a real pseudo-terminal, sending what a camera board with an on-board decoder sends
(one QR_TEXT frame per screen). The presentations are real signed tokens of generated families,
from a test PKI whose published trust material every counter loads.

    pharmacy = Pharmacy(tmp_path, pg_url, families=60)
    counter = pharmacy.start_counter(boards=2)   # waits until its API answers
    board.queue(k, ...)                          # family k's phone, shown to that board
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import select
import signal
import subprocess
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run_fixtures import COMPTOIR, free_port

from comptoir import config
from comptoir.stores import open_biller, open_transactions
from comptoir.transactions import JournalBiller, TransactionStore
from comptoir_link import frames as F
from comptoir_link.board_side import BoardLink
from comptoir_tools.credentials.identities import Family, family
from comptoir_tools.credentials.pki import DAY, TestPki, publish
from comptoir_tools.credentials.wallet import Wallet

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WINDOW = 8  # QR screens awaiting a verdict per board (as protocol_board.QrBoard)


class Phone:
    """A family's phone: a Wallet whose presentation ids (cti) are remembered, to find which
    family a transaction belongs to."""

    def __init__(self, index: int, fam: Family, credential: bytes, device: Any) -> None:
        self.index = index
        self.family = fam
        self.ctis: list[bytes] = []
        self.wallet = Wallet(credential, device, rng=self._cti)

    def _cti(self, n: int) -> bytes:
        b = os.urandom(n)
        self.ctis.append(b)
        return b

    def present_qr(self) -> str:
        return self.wallet.present_qr()


class PtyBoard(threading.Thread):
    """A camera board with an on-board QR decoder, reduced to its link, on a real
    pseudo-terminal: the counter's daemon opens `path`. Shows each queued phone's QR (one new
    presentation each), at most WINDOW awaiting a verdict; records every VERDICT."""

    def __init__(self, name: str, index: int) -> None:
        super().__init__(daemon=True, name=name)
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.link = BoardLink(self._write, baud=921600, max_payload=1024,
                              hello_items={F.T_BOARD_ID: bytes((0xB0, index, 0x5A, 0x5A)),
                                           F.T_CAPS: F.u16_bytes(F.CAP_CAMERA |
                                                                 F.CAP_QR_DECODE)},
                              random_bytes=os.urandom)
        self.link.on_message = self._on_message
        self._lock = threading.Lock()
        self._queue: list[tuple[Phone, str | None]] = []  # (phone, fixed text or None)
        self.sent: dict[int, tuple[Phone, bytes | None, str]] = {}  # oid -> phone, cti, text
        self.verdicts: dict[int, tuple[int, int, str]] = {}  # oid -> verdict, reason, text
        self.verdict_times: dict[int, float] = {}
        self.sent_times: dict[int, float] = {}
        self._next = 0
        self._halt = threading.Event()
        # A board of another counter where each QR shown here is shown again (a screenshot).
        self.mirror: PtyBoard | None = None

    def _write(self, data: Any) -> None:
        view = memoryview(bytes(data))
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                select.select([], [self.master], [], 0.05)
                continue
            except OSError:
                return  # the daemon side is gone (killed): the link will go down
            view = view[n:]

    def _on_message(self, ftype: int, payload: Any) -> None:
        if ftype == F.VERDICT:
            p = bytes(payload)
            oid = int.from_bytes(p[0:2], "little")
            self.verdicts[oid] = (p[2], int.from_bytes(p[3:5], "little"), p[5:].decode())
            self.verdict_times[oid] = time.monotonic()

    def queue(self, phone: Phone, text: str | None = None) -> None:
        """Show `phone`'s QR code: a new presentation made when it is sent, or `text` (a
        screenshot of one already shown)."""
        with self._lock:
            self._queue.append((phone, text))

    @property
    def pending(self) -> int:
        """Queued or awaiting their verdict."""
        with self._lock:
            return len(self._queue) + len(self.sent) - len(self.verdicts)

    @property
    def up(self) -> bool:
        return self.link.can_send() or self.link.n_out > 0

    def run(self) -> None:
        while not self._halt.is_set():
            r, _, _ = select.select([self.master], [], [], 0.005)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if data:
                    self.link.feed(data)
            self.link.poll()
            while self.link.can_send() and len(self.sent) - len(self.verdicts) < WINDOW:
                with self._lock:
                    if not self._queue:
                        break
                    phone, text = self._queue.pop(0)
                oid = 0x8000 | (self._next & 0x7FFF)
                self._next += 1
                cti = None
                if text is None:
                    text = phone.present_qr()
                    cti = phone.ctis[-1]
                self.sent[oid] = (phone, cti, text)
                self.sent_times[oid] = time.monotonic()
                self.link.send(F.QR_TEXT, oid.to_bytes(2, "little") + text.encode())
                if cti is not None and self.mirror is not None:
                    self.mirror.queue(phone, text)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class Counter:
    """One counter PC: its `comptoir run` process, its boards, its API."""

    index: int
    home: Path
    boards: list[PtyBoard]
    proc: subprocess.Popen[str] | None = None
    api_port: int = 0
    token: str = ""
    log: Path = field(default_factory=Path)
    _conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The counter's local API (one kept-alive connection; a new one after an error)."""
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=30)
            try:
                self._conn.request(method, path, body=None if body is None
                                   else json.dumps(body).encode(),
                                   headers={"Authorization": "Bearer " + self.token,
                                            "Content-Type": "application/json"})
                r = self._conn.getresponse()
                data = r.read()
                return r.status, json.loads(data) if data else None
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def clone(self) -> Counter:
        """The same counter, with an API connection of its own (another thread's)."""
        return Counter(self.index, self.home, self.boards, self.proc, self.api_port,
                       self.token, self.log)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        """SIGTERM, as systemd stops it; its standard error."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.log.read_text() if self.log.exists() else ""


class Pharmacy:
    """One pharmacy's counters on one PostgreSQL server: the insurer's published trust
    material, the families' phones, the keys and pepper every counter PC gets a copy of."""

    def __init__(self, root: Path, url: str, *, families: int, beneficiaries: int = 3,
                 seed: int = 17, extra: str = "") -> None:
        self.root = root
        self.url = url
        self.extra = extra
        now = int(time.time())
        pki = TestPki(seed, now=now - 120)
        today = time.gmtime(now)
        import datetime as dt

        day = dt.date(today.tm_year, today.tm_mon, today.tm_mday)
        self.phones: list[Phone] = []
        for k in range(families):
            fam = family(seed * 10_000 + k, beneficiaries=k % (beneficiaries + 1), today=day)
            cred, device = pki.issuers[0].activate(fam, now=now - 60)
            self.phones.append(Phone(k, fam, cred, device))
        self.trust = root / "trust"
        self.trust.mkdir(parents=True)
        publish(pki, self.trust, now - 30, DAY, 3 * DAY)
        self.keys = root / "keys"  # the installer copies the same keys to every PC
        self.keys.mkdir(mode=0o700)
        self.pepper = os.urandom(32)
        self.counters: list[Counter] = []

    def config(self, home: Path, boards: list[PtyBoard], api_port: int) -> Path:
        (home / "data" / "tokens").mkdir(parents=True, mode=0o700)
        pepper = home / "data" / "tokens" / "pepper"
        pepper.write_bytes(self.pepper)
        pepper.chmod(0o600)
        path = home / "comptoir.toml"
        ports = ", ".join(json.dumps(b.path) for b in boards)
        path.write_text(f"""
[boards]
ports = [{ports}]
discover = false
require_pairing = false
baud = 921600
heartbeat_ms = 500
[paths]
data_dir = "{home / 'data'}"
keys_dir = "{self.keys}"
[api]
port = {api_port}
token_file = "{home / 'api-token'}"
[screen]
enabled = false
[storage]
url = "{self.url}"
{self.extra}""")
        return path

    def add_counter(self, boards: int) -> Counter:
        i = len(self.counters)
        home = self.root / f"counter{i + 1}"
        home.mkdir()
        c = Counter(i, home, [PtyBoard(f"counter{i + 1}-board{b}", 8 * i + b)
                              for b in range(boards)])
        self.counters.append(c)
        for b in c.boards:
            b.start()
        return c

    def start(self, c: Counter, timeout: float = 30) -> None:
        """Starts (or starts again) counter `c`'s daemon; returns once its API answers."""
        if not c.api_port:
            c.api_port = free_port()
        path = c.home / "comptoir.toml"
        if not path.exists():
            self.config(c.home, c.boards, c.api_port)
        token = c.home / "api-token"
        c.log = c.home / f"daemon-{time.monotonic_ns()}.log"
        with c.log.open("w") as err:
            c.proc = subprocess.Popen(
                [str(COMPTOIR), "run", "--config", str(path), "--trust-dir", str(self.trust),
                 "--log-level", "warning"],
                stdout=subprocess.DEVNULL, stderr=err, text=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            assert c.proc.poll() is None, c.log.read_text()
            if token.exists():
                c.token = token.read_text().strip()
                try:
                    if c.call("GET", "/v1/health")[0] == 200:
                        return
                except OSError:
                    pass
            assert time.monotonic() < deadline, "the daemon did not start: " + c.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        """Every daemon first (a daemon left running would open a later test's board when a
        new pseudo-terminal gets its old name), then the boards."""
        try:
            for c in self.counters:
                try:
                    c.stop()
                finally:
                    if c.proc is not None and c.proc.poll() is None:
                        c.proc.kill()
                        c.proc.wait()
        finally:
            for c in self.counters:
                for b in c.boards:
                    b.stop()

    def stores(self) -> tuple[JournalBiller, TransactionStore]:
        """The shared billing journal and transactions, read as a counter would (the test's
        own connection to the server, the same keys)."""
        cfg = config.from_dict({"paths": {"data_dir": str(self.root / "reader"),
                                          "keys_dir": str(self.keys)},
                                "storage": {"url": self.url}})
        biller = open_biller(cfg)
        return biller, open_transactions(cfg, biller, None)


def _die_with_parent() -> None:
    """In the daemon's process: killed when the test process ends, however it ends (a daemon
    left over would open a later test's pseudo-terminal that gets its board's old name)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)
