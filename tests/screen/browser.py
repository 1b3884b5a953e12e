"""What the counter screen's browser tests share: the twin (the real firmware on MicroPython, a
simulated PN532 and phones, the real daemon with the services `comptoir run` starts and the
counter screen), and Debian's headless Chromium driven by Selenium through its chromedriver:
no browser download, a fresh profile, no network beyond loopback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from comptoir.app import start_app
from comptoir.config import from_dict
from comptoir.nfc_service import Presentation
from comptoir.screen.service import start_screen
from comptoir_tools.simulators.phone import Phone
from comptoir_tools.twin.terminal import FINESS, PHARMACIST, PRESCRIBER
from comptoir_tools.twin.twin import Twin

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
# Screenshots go with the test output; `make screen-shots` sends them to docs/screen.
SHOTS = Path(os.environ.get("COMPTOIR_SCREENSHOTS") or ROOT / "build" / "test-logs" / "screen")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=fr-FR",
         "--force-device-scale-factor=1", "--hide-scrollbars")
__all__ = ["PRESCRIBER", "Bench", "browser_available"]


def browser_available() -> None:
    """Skip on a machine without Debian's chromium (`make setup` installs it); never in CI."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium / chromium-driver missing: `make sysdeps` installs them")
        pytest.skip("chromium and chromium-driver not installed (make sysdeps)")


def new_driver(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for f in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(f)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.twin = Twin(1, workdir=workdir / "twin", nfc=True, rights_service=True)
        self.verdicts: list[tuple[float, Presentation]] = []
        self._cv = threading.Condition()
        self.services: Any = None
        self.screen: Any = None
        self.driver: Any = None
        self._profile = Path(tempfile.mkdtemp(prefix="comptoir-chromium-"))

    def start(self) -> Bench:
        tw = self.twin.start()
        assert tw.daemon is not None and tw.rights_service is not None
        tw.daemon.subscribe(self._record)
        cfg = from_dict({"paths": {"data_dir": str(tw.workdir / "data"),
                                   "keys_dir": str(tw.workdir / "keys")},
                         "api": {"port": 0, "token_file": str(tw.workdir / "api-token")},
                         "cache": {"service_url": tw.rights_service.url},
                         "screen": {"port": 0, "finess": FINESS,
                                    "pharmacist_rpps": PHARMACIST}}, tw.workdir)
        self.services = start_app(cfg, tw.daemon)
        self.screen = start_screen(cfg, self.services, tw.daemon)
        assert self.screen is not None
        self.token = (tw.workdir / "api-token").read_text().strip()
        self.driver = new_driver(self._profile)
        self.driver.set_script_timeout(10)
        assert tw.wait_all_up(30), [b.firmware.lines for b in tw.boards]
        return self

    def stop(self) -> None:
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.quit()
        if self.screen is not None:
            self.screen.stop()
        self.twin.stop()
        if self.services is not None:
            self.services.stop()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _record(self, ev: Any) -> None:
        if isinstance(ev, Presentation):
            with self._cv:
                self.verdicts.append((time.monotonic(), ev))
                self._cv.notify_all()

    # --- the twin --------------------------------------------------------------------------

    @property
    def board(self) -> Any:
        return self.twin.boards[0]

    def tap(self, wallet: Any) -> tuple[float, Presentation]:
        """A phone laid on the reader until the daemon's verdict: (when, the presentation)."""
        with self._cv:
            n = len(self.verdicts)
        self.board.pn532.place(Phone(wallet.present_nfc))
        try:
            with self._cv:
                assert self._cv.wait_for(lambda: len(self.verdicts) > n, 15), "no verdict"
                return self.verdicts[n]
        finally:
            self.board.pn532.remove()

    def rest(self) -> None:
        time.sleep(1.0)  # the reader waits for an empty field before reading again

    def tx_of(self, ev: Presentation) -> str:
        pid = ev.result.presentation_id.hex()  # type: ignore[union-attr]
        store = self.services.store
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for tx in reversed(store.ids()):
                if store.get(tx).presentation_id == pid:
                    return str(tx)
            time.sleep(0.02)
        raise AssertionError("no transaction for this presentation")

    def api(self, method: str, path: str) -> tuple[int, Any]:
        req = urllib.request.Request(self.services.api.url + path, method=method,
                                     headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    # --- the page --------------------------------------------------------------------------

    def sign_in(self) -> None:
        self.driver.get(self.screen.sign_in_link())
        self.wait(lambda d: d.find_element("tag name", "body").get_attribute("data-live")
                  == "true", what="the page follows the event stream")

    def wait(self, cond: Callable[[Any], Any], timeout: float = 10.0, what: str = "") -> Any:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.02,
                             ignored_exceptions=(StaleElementReferenceException,)).until(
            cond, what)

    def text(self, css: str) -> str:
        """The text of the first element matching `css` (read again if the page re-rendered
        it meanwhile)."""
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(20):
            try:
                return str(self.driver.find_element("css selector", css).text)
            except StaleElementReferenceException:
                time.sleep(0.02)
        raise AssertionError(f"{css} kept changing")

    def keys(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()

    def shot(self, name: str) -> Path:
        """A screenshot of the page as it is (checked first to hold no NIR-shaped text)."""
        assert not NIR_RUN.search(self.dom_text()), "a full NIR on the page"
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def console_errors(self) -> list[str]:
        """Script errors and Content-Security-Policy refusals the page's console saw (a failed
        request the test made on purpose is no error of the page)."""
        return [str(e["message"]) for e in self.driver.get_log("browser")
                if e.get("level") == "SEVERE" and "Failed to load resource" not in e["message"]]

    def dom_text(self) -> str:
        """Everything the page holds: its markup and the text it shows."""
        return str(self.driver.page_source) + str(
            self.driver.execute_script("return document.body.innerText"))


NIR_RUN = re.compile(r"[0-9AB]{13}[0-9]{2}")
