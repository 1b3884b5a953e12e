"""`comptoir twin --counters N` (issue 17): N counters of one pharmacy, each its daemon, its
reader boards, its local API and counter screen, on one PostgreSQL server: the one given
(`--storage-url`), or one the twin starts itself (`pg_local`, initdb + pg_ctl in a temporary
folder). They share one simulated insurer (PKI, pepper) and one keys directory (the installer
copies the keys: `comptoir keys`). The scripted scene: a patient shows a QR code at counter 1
(accepted, dispensed through counter 1's API); a photo of the same QR is then shown at
counter 2: refused there as replayed, the verdict on counter 2's board.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from comptoir import logs
from comptoir.app import start_app
from comptoir.config import from_dict
from comptoir.screen.service import start_screen
from comptoir_tools.simulators.insurer import SimulatedInsurer
from comptoir_tools.testkit import pg_local
from comptoir_tools.twin.terminal import FINESS, PHARMACIST, Patients, Terminal, _show_qr
from comptoir_tools.twin.twin import Twin


def run(args: argparse.Namespace) -> int:
    server = None
    url = args.storage_url
    if not url:
        try:
            server = pg_local.start_server()
        except pg_local.PostgresMissing as e:
            print(f"comptoir twin: cannot start a PostgreSQL server: {e}", file=sys.stderr)
            return 1
        url = server.url(server.new_database())
    twins: list[Twin] = []
    apps: list[Any] = []
    screens: list[Any] = []
    terms: list[Terminal] = []
    stop = threading.Event()
    insurer = None
    root: Path | None = None
    try:
        root = Path(tempfile.mkdtemp(prefix="comptoir-twin-"))
        logs.setup(path=str(root / "comptoir.log"))
        insurer = SimulatedInsurer(root / "insurer", seed=1)
        print(f"Comptoir software twin: {args.counters} counters of one pharmacy, "
              f"{args.boards} reader board(s) each, on PostgreSQL "
              f"{'started by the twin' if server else 'at ' + url.split('@')[-1]}.")
        print(f"Daemon logs (JSON lines): {root / 'comptoir.log'}")
        for i in range(args.counters):
            tw = Twin(args.boards, baud=args.baud, heartbeat_ms=args.heartbeat_ms,
                      workdir=root / f"counter{i + 1}",
                      kinds=["nfc"] + ["camera+nfc"] * (args.boards - 1), camera_baud=921600,
                      rights_service=i == 0, insurer=insurer, storage_url=url, counter=i)
            twins.append(tw)
            tw.start()
            term = Terminal(tw)
            term.names = {b.port: f"counter{i + 1}/board{b.index}" for b in tw.boards}
            terms.append(term)
            home = root / f"counter{i + 1}-pc"
            cfg = from_dict({"paths": {"data_dir": str(home / "data"),
                                       "keys_dir": str(root / "keys")},  # copied keys
                             "storage": {"url": url},
                             "api": {"port": 0, "token_file": str(home / "api-token")},
                             "cache": {"service_url": twins[0].rights_service.url
                                       if twins[0].rights_service else ""},
                             "billing": {"lot_max_age_s": 120},
                             "screen": {"port": 0, "finess": FINESS,
                                        "pharmacist_rpps": PHARMACIST}}, home)
            services = start_app(cfg, tw.daemon, presentations=tw.presentations)
            apps.append(services)
            screen = start_screen(cfg, services, tw.daemon)
            if screen is not None:
                screens.append(screen)
                print(f"counter{i + 1} screen: {screen.sign_in_link()}")
            if services.api is not None:
                base = f"http://127.0.0.1:{services.api.port}"
                term.api = (services.store, base, (home / "api-token").read_text().strip())
                print(f"counter{i + 1} local API: {base}")
            assert tw.daemon is not None
            tw.daemon.subscribe(term.on_event)
        for i, tw in enumerate(twins):
            if not tw.wait_all_up(30):
                terms[i].say("error: not every board came up within 30 s")
                return 1
        if not args.no_demo:
            threading.Thread(target=_scene, args=(twins, terms, stop), daemon=True).start()
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print()
    finally:
        stop.set()
        for term in terms:
            term.quiet = True
        for tw in twins:
            tw.stop()
        for s in screens:
            s.stop()
        for a in apps:
            a.stop()
        if insurer is not None:
            insurer.close()
        if server is not None:
            pg_local.remove_server(server)
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def _scene(twins: list[Twin], terms: list[Terminal], stop: threading.Event) -> None:
    """A QR shown at counter 1, then its screenshot at counter 2; again every 20 s."""
    patients = Patients(twins[0])
    while not stop.wait(3.0):
        cams = [[b for b in tw.boards if b.camera is not None] for tw in twins[:2]]
        if not cams[0] or not cams[1]:
            terms[0].say("demo: the screenshot scene needs a camera board (--boards 2)")
            return
        wallet = patients.next()
        text = wallet.present_qr()
        _show_qr(cams[0][0], _Fixed(text), terms[0], stop)
        time.sleep(2.0)
        terms[1].say("demo: the same QR code, photographed from counter 1's screen, is shown "
                     "at counter 2")
        _show_qr(cams[1][0], _Fixed(text), terms[1], stop)
        if stop.wait(17.0):
            return


class _Fixed:
    """A wallet that shows the same QR text every time (a screenshot of it)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def present_qr(self) -> str:
        return self.text
