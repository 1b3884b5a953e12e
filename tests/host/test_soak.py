"""Thirty simulated days of a pharmacy (issue 15), compressed into seconds by the daemon's
clock (comptoir.clock): two camera + NFC boards (the firmware's own link code driven from
CPython, over the wire model's pseudo-terminals) tapping and scanning every few hours; the
simulated insurer publishing its lists daily over HTTP, rotating its issuing key on day 15
and its list-signing key on day 20; two phones declared lost mid-way; the rights service down
for a day (the breaker opens), back with 4xx answers, then well; a board unplugged and
replugged; the daemon restarted once (day 16). The real daemon does the rest: Daemon,
presentations, trust refresher, transactions, billing journal, rights cache, API.

Every presentation's verdict must be the one an independent oracle computes from the same
inputs (who the phone is, which key signed it, when its deactivation was published), every
one answered at its board, nothing lost, and no thread or file descriptor growth."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import serial

from comptoir import clock, presentations
from comptoir.app import start_app
from comptoir.clock import ManualClock
from comptoir.config import from_dict
from comptoir.daemon import Daemon
from comptoir.events import BoardUp
from comptoir.nfc_service import Presentation
from comptoir.pairing import PairedBoards
from comptoir.tokens.model import Verified
from comptoir.tokens.refresh import TrustRefresher
from comptoir_link import frames as F
from comptoir_link.board_side import BoardLink
from comptoir_tools.credentials.identities import Family, family
from comptoir_tools.credentials.pki import DAY, TestPki, publish
from comptoir_tools.credentials.wallet import Wallet
from comptoir_tools.simulators.publication import Publication
from comptoir_tools.simulators.rights_service import RightsService
from comptoir_tools.simulators.wire import WireModel

T0 = 1_790_000_000 - 1_790_000_000 % DAY  # midnight UTC
HOUR = 3600
STEP = 2 * HOUR
DAYS = 30
PRESENT_AT = (4, 10, 16)  # hours of the day with patients (lists fetched by 02:00)
OUTAGES = (6, 23)  # the rights service is down the next day, back with 4xx the day after


class Board(threading.Thread):
    """A camera + NFC reader reduced to its link (its on-board decoder sends QR_TEXT)."""

    def __init__(self, index: int, wire: WireModel, key: bytes) -> None:
        super().__init__(daemon=True, name=f"soak board {index}")
        self.board_id = bytes((0xC0, index, 0x50, 0x4B))
        self.ser = serial.serial_for_url(str(wire.path_a), timeout=0.005)
        caps = F.CAP_NFC | F.CAP_CAMERA | F.CAP_QR_DECODE
        self.link = BoardLink(self.ser.write, baud=wire.baud, max_payload=1024,
                              hello_items={F.T_BOARD_ID: self.board_id,
                                           F.T_CAPS: F.u16_bytes(caps)},
                              random_bytes=os.urandom, pair_key=key)
        self.link.on_message = self._on_message
        self._out: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self.challenge: tuple[int, bytes] | None = None
        self.challenges = 0
        self.verdicts: dict[int, int] = {}
        self._halt = threading.Event()
        self._next_nfc = 1
        self._next_qr = 0x8000

    def _on_message(self, ftype: int, payload: Any) -> None:
        p = bytes(payload)
        if ftype == F.CHALLENGE and len(p) == 18:
            self.challenge = (p[0] | p[1] << 8, p[2:])
            self.challenges += 1
        elif ftype == F.VERDICT:
            self.verdicts[p[0] | p[1] << 8] = p[2]

    def run(self) -> None:
        pending: tuple[int, bytes] | None = None
        while not self._halt.is_set():
            try:
                data = self.ser.read(self.ser.in_waiting or 1)
            except (OSError, serial.SerialException):
                data = b""
            if data:
                self.link.feed(data)
            self.link.poll()
            if pending is None:
                with contextlib.suppress(queue.Empty):
                    pending = self._out.get_nowait()
            if pending is not None and self.link.can_send() and \
                    self.link.send(pending[0], pending[1]):
                pending = None

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.ser.close()

    def show_qr(self, text: str) -> int:
        oid = self._next_qr
        self._next_qr = 0x8000 | ((oid + 1) & 0x7FFF)
        self._out.put((F.QR_TEXT, oid.to_bytes(2, "little") + text.encode()))
        return oid

    def fresh_challenge(self, timeout: float = 10) -> tuple[int, bytes]:
        seen = self.challenges
        self._out.put((F.CHALLENGE_NEEDED, b"\x01"))
        deadline = time.monotonic() + timeout
        while self.challenges == seen and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self.challenge is not None and self.challenges > seen, "no challenge"
        return self.challenge

    def tap(self, presentation: bytes) -> int:
        oid = self._next_nfc
        self._next_nfc = (oid % 0x7FFF) + 1
        head = bytes((F.OBJ_NFC_PRESENTATION,)) + oid.to_bytes(2, "little") + \
            len(presentation).to_bytes(4, "little") + (0).to_bytes(4, "little")
        self._out.put((F.OBJECT_CHUNK, head + presentation))
        return oid


class Phone:
    def __init__(self, fam: Family, wallet: Wallet, issuer: Any, index: int) -> None:
        self.fam, self.wallet, self.issuer, self.index = fam, wallet, issuer, index
        self.lost_published_at: int | None = None  # iat of the first list saying so


def oracle(phone: Phone, t: int) -> str:
    """The verdict from first principles: a phone declared lost is refused once the list
    saying so has been out for one list period (1 h; patients come 2 h after a publication
    at the earliest); every other phone of a published issuer is accepted, with a choice
    when its family has beneficiaries."""
    if phone.lost_published_at is not None and t >= phone.lost_published_at + HOUR:
        return "refused:credential_revoked"
    return "choose_beneficiary" if phone.fam.beneficiaries else "accepted"


def verdict_of(ev: Presentation) -> str:
    if isinstance(ev.result, Verified):
        return "choose_beneficiary" if ev.result.beneficiaries else "accepted"
    return f"refused:{ev.result.reason.value}"


class Pharmacy:
    """The daemon as `comptoir run` composes it (cli._cmd_run), startable and stoppable."""

    def __init__(self, tmp: Path, ports: list[str], paired: PairedBoards, cfg: Any) -> None:
        self.tmp, self.ports, self.paired, self.cfg = tmp, ports, paired, cfg
        self.events: queue.Queue[Presentation] = queue.Queue()
        self.up: queue.Queue[str] = queue.Queue()

    def start(self) -> Pharmacy:
        cfg = self.cfg
        self.daemon = Daemon(self.ports, baud=921600, heartbeat_ms=500, paired=self.paired)
        self.verifier, challenges = presentations.load_verifier(
            self.tmp / "trust", cfg.paths.data_dir / "tokens")
        self.pres = presentations.attach(self.daemon, self.verifier, challenges, qr_hold=0.0)
        self.refresher = TrustRefresher(self.verifier.trust, self.verifier.status,
                                        self.tmp / "trust", url=cfg.trust.url,
                                        check_every=cfg.trust.check_every_s)
        self.services = start_app(cfg, self.daemon, trust=self.refresher)
        self.daemon.subscribe(lambda ev: self.events.put(ev)
                              if isinstance(ev, Presentation) else None)
        self.daemon.subscribe(lambda ev: self.up.put(ev.port) if isinstance(ev, BoardUp)
                              else None)
        self.daemon.start()
        return self

    def stop(self) -> None:
        self.daemon.stop()
        self.pres.stop()
        self.services.stop()
        self.verifier.state.close()

    def wait_refreshed(self) -> None:
        """One trust refresher round after the clock moved."""
        seen = self.refresher.rounds
        deadline = time.monotonic() + 10
        while self.refresher.rounds < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert self.refresher.rounds >= seen + 2, "the trust refresher stopped"

    def wait_boards(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for s in self.daemon.status.values() if s.state == "up") >= n:
                return
            time.sleep(0.02)
        raise AssertionError(f"boards not up: {dict(self.daemon.status)}")


def usage() -> tuple[int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/fd"))


def test_thirty_days(tmp_path: Path) -> None:
    started = time.monotonic()
    c = ManualClock(T0)
    with clock.use(c):
        _soak(tmp_path, c)
    took = time.monotonic() - started
    print(f"30 simulated days in {took:.1f} s")
    assert took < 90


def _soak(tmp: Path, c: ManualClock) -> None:
    pki = TestPki(15, now=T0)
    pub = Publication(pki, clock=c.time, ttl=HOUR).start()
    rights = RightsService(now=c.time).start()
    today = dt.datetime.fromtimestamp(T0, dt.UTC).date()
    phones: list[Phone] = []

    def new_phone(seed: int, beneficiaries: int) -> Phone:
        fam = family(seed, beneficiaries=beneficiaries, today=today)
        issuer = pki.issuers[-1]
        cred, device = issuer.activate(fam, now=int(c.time()) - 60)
        rights.add_family(fam)
        phone = Phone(fam, Wallet(cred, device), issuer, len(phones))
        phones.append(phone)
        return phone

    for k in range(8):
        new_phone(700 + k, k % 3)
    trust = tmp / "trust"
    trust.mkdir()
    publish(pki, trust, T0, DAY, 3 * DAY)
    pub.publish()
    paired = PairedBoards(tmp / "paired")
    wires = [WireModel(921600, tmp / "dev", name=f"soak{i}", seed=i).start() for i in range(2)]
    boards = [Board(i, w, paired.add(bytes((0xC0, i, 0x50, 0x4B)).hex()))
              for i, w in enumerate(wires)]
    cfg = from_dict({
        "paths": {"data_dir": str(tmp / "data"), "keys_dir": str(tmp / "data" / "keys")},
        "api": {"port": 0, "token_file": str(tmp / "data" / "api-token")},
        "cache": {"service_url": rights.url, "service_timeout_ms": 300, "service_attempts": 1,
                  "breaker_threshold": 2, "dispense_wait_ms": 0},
        "trust": {"url": pub.url, "check_every_s": 0.01},
        "boards": {"discover": False, "ports": [str(w.path_b) for w in wires]},
    })
    pharmacy = Pharmacy(tmp, [str(w.path_b) for w in wires], paired, cfg).start()
    for b in boards:
        b.start()
    pharmacy.wait_boards(2)
    results: list[tuple[int, str, str, str]] = []  # day, channel, oracle, daemon
    baseline: tuple[int, int] | None = None
    service_seen: list[tuple[int, str]] = []
    n = 0
    try:
        for day in range(DAYS):
            for hour in range(0, 24, STEP // HOUR):
                if day or hour:
                    c.advance(STEP)
                if hour == 0 and day:
                    pub.publish()  # the insurer's daily publication
                pharmacy.wait_refreshed()
                if hour not in PRESENT_AT:
                    continue
                for board in boards:
                    phone = phones[(n * 3 + board.board_id[1]) % len(phones)]
                    n += 1
                    t = int(c.time())
                    if n % 2:
                        oid = board.show_qr(phone.wallet.present_qr(now=t))
                        channel = "qr"
                    else:
                        _, challenge = board.fresh_challenge()
                        oid = board.tap(phone.wallet.present_nfc(challenge, now=t))
                        channel = "nfc"
                    try:
                        ev = pharmacy.events.get(timeout=10)
                    except queue.Empty:
                        raise AssertionError(f"day {day} {hour}h: no verdict for {channel} "
                                             f"{oid:#x} on board {board.board_id.hex()}") \
                            from None
                    assert (ev.board_id, ev.object_id, ev.channel) == (
                        board.board_id.hex(), oid, channel)
                    deadline = time.monotonic() + 5
                    while oid not in board.verdicts and time.monotonic() < deadline:
                        time.sleep(0.002)
                    assert oid in board.verdicts, f"day {day}: verdict lost on the way"
                    results.append((day, channel, oracle(phone, t), verdict_of(ev)))
                    assert results[-1][2] == results[-1][3], (day, hour, results[-1])
                    if isinstance(ev.result, Verified):
                        service_seen.append((day, _rights_answer(pharmacy, day)))
            # -- what happens on given days ---------------------------------------------------
            if day == 2:
                baseline = usage()
            if day in OUTAGES:  # the pharmacy's line goes down: the breaker opens
                rights.outage = True
            if day - 1 in OUTAGES:  # back, answering 400 to the first requests (the half-open
                rights.outage = False  # trial)
                rights.fail_next(2, 400)
            if day == 10:  # two phones declared lost: on the next daily list
                for phone in phones[1:3]:
                    phone.issuer.set_status(phone.issuer.activations[phone.fam.insured.nir][1],
                                            1)
                    phone.lost_published_at = T0 + (day + 1) * DAY
            if day == 14:  # the insurer rotates its issuing key: new phones use the new one
                pub.rotate_issuer("CPAM TEST ROTATED")
                for k in range(3):
                    new_phone(800 + k, k % 2)
            if day == 16:  # the daemon is restarted (an update)
                pharmacy.stop()
                pharmacy = Pharmacy(tmp, [str(w.path_b) for w in wires], paired, cfg).start()
                pharmacy.wait_boards(2)
            if day == 19:
                pub.rotate_list_signer("2")
            if day == 22:  # a board unplugged and plugged back
                wires[1].unplug()
                time.sleep(0.5)
                wires[1].replug()
                time.sleep(1.5)
                pharmacy.wait_boards(2)
        end = usage()
    finally:
        pharmacy.stop()
        for b in boards:
            b.stop()
        for w in wires:
            w.stop()
        pub.stop()
        rights.stop()
    # Nothing lost, every verdict the oracle's.
    assert len(results) == DAYS * len(PRESENT_AT) * 2
    assert all(r[2] == r[3] for r in results)
    refused = [r for r in results if r[3].startswith("refused")]
    assert refused and {r[3] for r in refused} == {"refused:credential_revoked"}
    assert min(r[0] for r in refused) == 11  # within a list period of the publication
    assert {r[1] for r in results} == {"qr", "nfc"}
    # The rights service: answered before each outage, unavailable during it, answered again
    # from the day after the 4xx trial (the breaker settled), until the next outage.
    by_day: dict[int, set[str]] = {}
    for d, answer in service_seen:
        by_day.setdefault(d, set()).add(answer)
    for first in OUTAGES:
        assert by_day[first + 1] == {"unavailable"}, by_day
        assert "rejected" in by_day[first + 2], by_day  # the 400s
        assert by_day[first + 3] == {"answered"}, by_day
    assert by_day[0] == by_day[DAYS - 1] == {"answered"}
    assert baseline is not None
    print(f"threads/fds day 2 {baseline}, day 30 {end}; trust fetches "
          f"{pharmacy.refresher.fetches}; presentations {len(results)}, refused {len(refused)}")
    assert end[0] <= baseline[0] + 1 and end[1] <= baseline[1] + 2, (baseline, end)


def _rights_answer(pharmacy: Pharmacy, day: int) -> str:
    """What the rights service did for the transaction just opened (waits for it)."""
    store = pharmacy.services.store
    tx_id = store.ids()[-1]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = store.get(tx_id).rights_service
        if state not in ("pending", None):
            return state
        time.sleep(0.005)
    return f"stuck:{store.get(tx_id).rights_service}"
