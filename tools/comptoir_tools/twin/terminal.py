"""`comptoir twin` / `make run`: the whole terminal as a software twin, live.

Starts simulated reader boards (the real firmware on MicroPython behind the
wire model) and the real daemon, then prints what happens: boards saying HELLO,
their status (free heap, link counters), and a scripted demonstration of the
link surviving line noise, a cut cable and a board losing power. The dispensing
software's part is played through the local API: it reads each transaction's
rights (the offline cache, refreshed from the simulated insurer's rights
service, which goes down for a while in the demo), picks the person and
dispenses; closed rights are refused by the daemon.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from comptoir import logs
from comptoir.app import start_app
from comptoir.config import from_dict
from comptoir.daemon import parse_status
from comptoir.events import BoardDown, BoardUp, LinkError, Message, PortLost
from comptoir.nfc_service import Presentation, TapFailed
from comptoir.screen.service import start_screen
from comptoir.tokens.model import Verified
from comptoir.tokens.nir import mask_nir
from comptoir_link import frames as F
from comptoir_tools.simulators.camera_sim import CameraSim
from comptoir_tools.simulators.phone import Phone
from comptoir_tools.twin.twin import Twin


class Terminal:
    def __init__(self, twin: Twin, out: Any = sys.stdout) -> None:
        self.twin = twin
        self.out = out
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self.names = {b.port: f"board{b.index}" for b in twin.boards}
        self.quiet = False
        self.presented = threading.Event()  # a verdict came back (the demo waits for it)
        self.api: tuple[Any, str, str] | None = None  # (store, base URL, token)
        self.dispensed: list[str] = []  # transaction ids with a care sheet
        self.manual = False  # True: a person chooses and dispenses on the counter screen

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.api is not None
        _, base, token = self.api
        req = urllib.request.Request(
            base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def say(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            print(f"[{time.monotonic() - self.t0:7.2f}s] {text}", file=self.out, flush=True)

    def _serve(self, name: str, verified: Verified) -> None:
        """The dispensing software: read the transaction and each person's rights, choose
        the last person listed, dispense one box for them."""
        assert self.api is not None
        store = self.api[0]
        pid = verified.presentation_id.hex()
        for tx_id in reversed(store.ids()):
            if store.get(tx_id).presentation_id == pid:
                break
        else:
            self.say(f"{name}: (no transaction found for this presentation)")
            return
        store.wait_rights(tx_id, 5.0)  # the rights service answers in the background
        try:
            status, tx = self.call("GET", f"/v1/transactions/{tx_id}")
            people = tx["people"]
            self.say(f"{name}: rights (rights service: {tx['rights_service']}): " + "; ".join(
                f"{p['given_names']} {_rights_text(p['rights'])}" for p in people))
            person = len(people) - 1
            if len(people) > 1:
                status, tx = self.call("POST", f"/v1/transactions/{tx_id}/beneficiary",
                                       {"person": person})
                self.say(f"{name}: pharmacist chose {people[person]['given_names']} through "
                         f"the API (transaction {tx_id[:8]}…, {tx.get('state', status)})")
            status, body = self.call("POST", f"/v1/transactions/{tx_id}/dispensation",
                                     _dispensation(person))
            if status == 201:
                self.dispensed.append(tx_id)
                sheet = body["care_sheet"]
                self.say(f"{name}: care sheet {sheet['invoice_no']} for "
                         f"{people[person]['given_names']}: €{sheet['total'] / 100:.2f}, AMO "
                         f"€{sheet['amo'] / 100:.2f}, billed on rights "
                         f"{_rights_text(sheet['rights'])}")
            else:
                self.say(f"{name}: dispensation REFUSED ({body.get('error')}): "
                         f"{body.get('detail')}")
        except (OSError, ValueError, KeyError) as e:
            self.say(f"{name}: the dispensing software's request failed: {e}")

    def show_lots(self) -> None:
        """Care sheets whose lot was closed (by size, or by age: billing.lot_max_age_s)."""
        if self.api is None:
            return
        for tx_id in self.dispensed[-3:]:
            status, tx = self.call("GET", f"/v1/transactions/{tx_id}")
            sheet = tx.get("care_sheet") if status == 200 else None
            if sheet:
                lot = sheet["lot"]
                self.say(f"billing: care sheet {sheet['invoice_no']} "
                         + ("in the open lot" if lot is None else f"in lot {lot} (closed)"))

    def on_event(self, ev: Any) -> None:
        name = self.names.get(getattr(ev, "port", ""), "?")
        if isinstance(ev, BoardUp):
            b = ev.board
            self.say(f"{name}: UP  id {b.board_id}  firmware {b.firmware}  '{b.name}'  "
                     f"receives up to {b.max_payload} B  caps {','.join(b.capabilities)}")
        elif isinstance(ev, BoardDown):
            self.say(f"{name}: DOWN ({ev.reason})")
        elif isinstance(ev, PortLost):
            self.say(f"{name}: serial port lost ({ev.error})")
        elif isinstance(ev, LinkError):
            self.say(f"{name}: link error counted: {ev.counter} ({ev.detail})")
        elif isinstance(ev, Message) and ev.ftype == F.STATUS:
            st = parse_status(ev.payload)
            self.say(f"{name}: status  free heap {st['free_heap']} B (lowest "
                     f"{st['min_free_heap']} B)  uptime {st['uptime_ms'] / 1000:.0f}s  "
                     f"crc errors {st['crc_errors']}  retransmits {st['retransmits']}  "
                     f"sessions {st['sessions']}")
        elif isinstance(ev, Message) and ev.ftype == F.BENCH_DONE:
            self.say(f"{name}: received a burst of large frames intact")
        elif isinstance(ev, Presentation):
            self.presented.set()
            how = "NFC tap" if ev.channel == "nfc" else "QR code"
            r = ev.result
            if isinstance(r, Verified):
                ins = r.credential.insured
                people = [f"{ins.given_names} {ins.family_name[:1]}. (insured, NIR "
                          f"{mask_nir(ins.nir)})"] + [
                    f"{b.given_names} (beneficiary {b.rank})" for b in r.credential.beneficiaries]
                verdict = "ACCEPTED" if len(people) == 1 else "CHOOSE BENEFICIARY"
                self.say(f"{name}: {how} → {verdict}: " + "; ".join(people))
                if self.api is not None and not self.manual:
                    # The dispensing software reads, picks and dispenses through the API.
                    threading.Thread(target=self._serve, args=(name, r), daemon=True).start()
            else:
                self.say(f"{name}: {how} → REFUSED ({r.reason.value})")
        elif isinstance(ev, TapFailed):
            self.say(f"{name}: tap failed, tap again ({ev.text})")


def _rights_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "(not checked)"
    when = f", {r['source']} of {r['as_of_iso'][:10]}" if r.get("as_of_iso") else ""
    why = f" {r['reason']}" if r.get("reason") else ""
    return f"[{r['status']}{why}{when}]"


def _luhn(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body + "0")):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _ean13(first12: str) -> str:
    s = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(first12))
    return first12 + str((10 - s % 10) % 10)


# A generated pharmacy, pharmacist, prescriber and drug (check keys valid, numbers fictitious).
FINESS, PHARMACIST, PRESCRIBER = _luhn("99000012"), _luhn("1009900001"), _luhn("1009900002")
DRUG = _ean13("340093999901")


def _dispensation(person: int) -> dict[str, Any]:
    today = dt.date.today()
    return {"person": person, "finess": FINESS, "pharmacist_rpps": PHARMACIST,
            "prescriber_rpps": PRESCRIBER, "prescribed_on": str(today - dt.timedelta(days=1)),
            "dispensed_on": str(today), "tiers_payant": {"amo": True, "amc": False},
            "lines": [{"code": DRUG, "quantity": 1, "unit_price": 790, "base": 790,
                       "rate": 65}]}


class Patients:
    """Generated families with activated phones (no real person anywhere). The simulated
    insurer's rights service knows them all; it has closed the rights of family 2's last
    child (the demo's pharmacist picks the last person listed: that dispensation is refused)."""

    def __init__(self, twin: Twin) -> None:
        assert twin.insurer is not None
        fams = [twin.insurer.family(500 + k, beneficiaries=k % 3) for k in range(6)]
        if twin.rights_service is not None:
            for k, fam in enumerate(fams):
                twin.serve_rights(fam, closed=[len(fam.beneficiaries)] if k == 2 else None)
        self.wallets = [twin.insurer.activate(fam) for fam in fams]
        self.k = 0

    def next(self) -> Any:
        self.k += 1
        return self.wallets[self.k % len(self.wallets)]


def _tap(board: Any, wallet: Any, term: Terminal) -> None:
    term.say(f"demo: a patient lays a phone on board{board.index}'s reader")
    board.pn532.place(Phone(wallet.present_nfc))
    time.sleep(1.5)
    board.pn532.remove()


def _show_qr(board: Any, wallet: Any, term: Terminal, stop: threading.Event) -> None:
    term.say(f"demo: a patient shows a QR code to board{board.index}'s camera")
    text = wallet.present_qr()
    sim = CameraSim(board.index)
    term.presented.clear()
    for _ in range(50):  # in view until the verdict, 10 s at most
        if stop.is_set() or term.presented.is_set():
            break
        board.camera.publish(sim.frame(text, level=1, pose=0))
        time.sleep(0.2)
    time.sleep(0.5)
    board.camera.clear()


def _demo(twin: Twin, term: Terminal, stop: threading.Event) -> None:
    assert twin.daemon is not None
    patients = Patients(twin)
    nfc = [b for b in twin.boards if b.pn532 is not None]
    cams = [b for b in twin.boards if b.camera is not None]
    steps = itertools.cycle(["tap", "qr", "status", "tap", "noise", "qr", "cut", "tap",
                             "power", "status", "outage", "tap", "qr", "status"])
    while not stop.wait(3.0):
        step = next(steps)
        board = twin.boards[0] if step in ("cut", "power") else twin.boards[-1]
        name = f"board{board.index}"
        if step == "tap" and nfc:
            _tap(nfc[patients.k % len(nfc)], patients.next(), term)
        elif step == "qr" and cams:
            _show_qr(cams[0], patients.next(), term, stop)
        elif step == "status":
            for b in twin.boards:
                twin.daemon.send(b.port, F.STATUS_REQUEST)
            term.show_lots()
        elif step == "outage" and twin.rights_service is not None:
            term.say("demo: the pharmacy's internet line goes down for 20 s: the rights "
                     "service is out of reach, the offline cache answers")
            twin.rights_service.outage = True
            threading.Timer(20.0, _line_back, args=(twin, term)).start()
        elif step == "noise":
            term.say(f"demo: injecting 64 bytes of line noise towards the host on {name}")
            board.wire.inject_garbage("a2b", 64)
        elif step == "cut":
            term.say(f"demo: cutting {name}'s cable for 6 s")
            board.wire.cut_for(6.0)
        elif step == "power":
            term.say(f"demo: {name} loses power and boots again")
            board.firmware.kill()


def _line_back(twin: Twin, term: Terminal) -> None:
    if twin.rights_service is not None:
        twin.rights_service.outage = False
        term.say("demo: the internet line is back (the rights service is asked again after "
                 "the circuit breaker's pause)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="comptoir twin", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=2, help="simulated reader boards (default 2)")
    ap.add_argument("--baud", type=int, default=115200, help="serial line rate (default 115200)")
    ap.add_argument("--heartbeat-ms", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=0.0,
                    help="stop after this many seconds (default: run until Ctrl-C)")
    ap.add_argument("--no-demo", action="store_true", help="no scripted faults, just run")
    ap.add_argument("--firmware-output", action="store_true",
                    help="also print what the firmware prints")
    ap.add_argument("--manual", action="store_true",
                    help="no scripted pharmacist: choose and dispense on the counter screen")
    ap.add_argument("--counters", type=int, default=1,
                    help="counters of one pharmacy sharing PostgreSQL (issue 17; default 1)")
    ap.add_argument("--storage-url", default="",
                    help="with --counters: the PostgreSQL server (default: the twin starts one)")
    args = ap.parse_args(argv)
    if args.counters > 1:
        from comptoir_tools.twin.counters import run

        return run(args)

    def fw_line(i: int, line: str) -> None:
        if args.firmware_output or line.startswith("[twin]"):
            term.say(f"board{i} firmware: {line}")

    # Board 0 is an NFC reader on an ESP32 without PSRAM (100 KB heap); the others
    # are camera boards with a PN532 too (ESP32-CAM class, PSRAM, 921 600 baud).
    kinds = ["nfc"] + ["camera+nfc"] * (args.boards - 1)
    twin = Twin(args.boards, baud=args.baud, heartbeat_ms=args.heartbeat_ms,
                on_firmware_line=fw_line, kinds=kinds, camera_baud=921600, rights_service=True)
    term = Terminal(twin)
    term.manual = args.manual
    # The daemon's JSON-lines log goes to a file; the screen shows the story.
    log_path = twin.workdir / "comptoir.log"
    logs.setup(path=str(log_path))
    print(f"Comptoir software twin: {args.boards} reader board(s) running the real firmware "
          "(its ESP32 board layer on the port stand-in) on the MicroPython unix port: "
          "board0 an NFC reader (100 KB heap, "
          f"{args.baud} baud), the others camera + NFC boards (PSRAM, 921 600 baud); "
          "simulated PN532s, phones and camera; the real host daemon verifying real tokens "
          "from a test PKI (generated people only).")
    print(f"Daemon log (JSON lines): {log_path}")
    print("Press Ctrl-C to stop." if not args.duration else f"Running for {args.duration:g} s.")
    stop = threading.Event()
    services = None
    screen = None
    try:
        twin.start()
        term.names = {b.port: f"board{b.index}" for b in twin.boards}
        assert twin.daemon is not None
        # The pharmacy PC's local API, as `comptoir run` starts it, on a free port.
        # The simulated insurer's rights service stands for ADRi; lots close after 2 minutes.
        assert twin.rights_service is not None
        cfg = from_dict({"paths": {"data_dir": str(twin.workdir / "data"),
                                   "keys_dir": str(twin.workdir / "keys")},
                         "api": {"port": 0, "token_file": str(twin.workdir / "api-token")},
                         "cache": {"service_url": twin.rights_service.url},
                         "billing": {"lot_max_age_s": 120},
                         "screen": {"port": 0, "finess": FINESS,
                                    "pharmacist_rpps": PHARMACIST}},
                        twin.workdir)
        services = start_app(cfg, twin.daemon, presentations=twin.presentations)
        screen = start_screen(cfg, services, twin.daemon)
        if screen is not None:
            print(f"Counter screen (French, keyboard first): {screen.sign_in_link()}\n"
                  f"  (good once, for 5 minutes; prescriber RPPS for its form: {PRESCRIBER}"
                  f"{'' if args.manual else '; --manual turns the scripted pharmacist off'})")
        if services.api is not None:
            base = f"http://127.0.0.1:{services.api.port}"
            term.api = (services.store, base,
                        (twin.workdir / "api-token").read_text().strip())
            print(f"Local API: {base} (bearer token in {twin.workdir / 'api-token'}); "
                  f"rights service (simulated insurer): {twin.rights_service.url}")
        twin.daemon.subscribe(term.on_event)
        if not twin.wait_all_up(30):
            term.say("error: not every board came up within 30 s")
            return 1
        for b in twin.boards:
            twin.daemon.send(b.port, F.STATUS_REQUEST)
        if not args.no_demo:
            threading.Thread(target=_demo, args=(twin, term, stop), daemon=True).start()
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print()
    finally:
        stop.set()
        term.quiet = True
        twin.stop()
        if screen is not None:
            screen.stop()
        if services is not None:
            services.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
