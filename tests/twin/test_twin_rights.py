"""Rights end to end on the twin: phones tapped on a simulated PN532, the real firmware on
MicroPython, the daemon verifying, the services `comptoir run` starts (transactions, the
offline rights cache, the local API) and the simulated insurer's rights service. The
dispensing software reads each person's rights over HTTP; closed rights are refused."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from api_fixtures import call

from comptoir.app import start_app
from comptoir.config import from_dict
from comptoir.nfc_service import Presentation
from comptoir.tokens.model import Verified
from comptoir_tools.simulators.phone import Phone
from comptoir_tools.twin.terminal import _dispensation


def test_tap_shows_rights_and_closed_rights_are_refused(twin_factory) -> None:
    tw, log = twin_factory(1, nfc=True, rights_service=True)
    assert tw.insurer is not None and tw.daemon is not None and tw.rights_service is not None
    fam = tw.insurer.family(700, beneficiaries=2)
    tw.serve_rights(fam, closed=[2])  # the insurer closed the second child's rights
    wallet = tw.insurer.activate(fam)
    cfg = from_dict({"paths": {"data_dir": str(tw.workdir / "data"),
                               "keys_dir": str(tw.workdir / "keys")},
                     "api": {"port": 0, "token_file": str(tw.workdir / "api-token")},
                     "cache": {"service_url": tw.rights_service.url}}, tw.workdir)
    services = start_app(cfg, tw.daemon)
    try:
        assert services.api is not None
        base, token = services.api.url, (tw.workdir / "api-token").read_text().strip()
        board = tw.boards[0]
        mark = log.mark()
        board.pn532.place(Phone(wallet.present_nfc))
        ev = log.expect(lambda e: isinstance(e, Presentation), 15, after=mark)
        board.pn532.remove()
        assert isinstance(ev.result, Verified)
        deadline = time.monotonic() + 10
        while not services.store.ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        (tx,) = services.store.ids()
        assert services.store.wait_rights(tx, 10)
        status, view = call(base, token, "GET", f"/v1/transactions/{tx}")
        assert status == 200 and view["rights_service"] == "answered"
        assert [p["rights"]["status"] for p in view["people"]] == ["fresh", "fresh", "expired"]
        assert all(p["rights"]["source"] == "service" for p in view["people"])
        call(base, token, "POST", f"/v1/transactions/{tx}/beneficiary", {"person": 2})
        status, body = call(base, token, "POST", f"/v1/transactions/{tx}/dispensation",
                             _dispensation(2))
        assert status == 409 and body["error"] == "rights_closed", body
        assert body["detail"].startswith("person 2: AMO rights closed")
        # The line goes down: the next tap is served from the cache, at once.
        tw.rights_service.outage = True
        time.sleep(1.0)  # the reader waits for an empty field between taps
        mark = log.mark()
        board.pn532.place(Phone(wallet.present_nfc))
        ev = log.expect(lambda e: isinstance(e, Presentation), 15, after=mark)
        board.pn532.remove()
        deadline = time.monotonic() + 10
        while len(services.store.ids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tx2 = next(t for t in services.store.ids() if t != tx)
        assert services.store.wait_rights(tx2, 10)
        view = services.store.get(tx2)
        assert view.rights_service == "unavailable"
        assert [r.status for r in view.rights] == ["fresh", "fresh", "expired"]
        call(base, token, "POST", f"/v1/transactions/{tx2}/beneficiary", {"person": 1})
        status, body = call(base, token, "POST", f"/v1/transactions/{tx2}/dispensation",
                             _dispensation(1))
        assert status == 201, body
        assert body["care_sheet"]["rights"]["status"] == "fresh"
        assert body["care_sheet"]["invoice_no"] == 1
    finally:
        services.stop()
