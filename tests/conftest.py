"""Suite-wide settings.

* Options for the hardware-in-loop bench, registered at the root so that
  `pytest tests --board-port ...` works as well as `pytest tests/hil ...`.
* Every log record the suite's code writes through the `comptoir` loggers is
  kept (raw and as the JSON line the daemon would write); when the run ends the
  lines are scanned for anything shaped like a full NIR. One hit fails the run:
  personal data never reaches a log, whichever code logged it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from comptoir.logs import NIR_PATTERN, JsonLinesFormatter
from comptoir_tools.boards.hil import add_pytest_options

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / "build" / "test-logs"


def pytest_addoption(parser):
    add_pytest_options(parser)


class _Keep(logging.Handler):
    """Writes each record twice: the raw message and extras, and the JSON line."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.DEBUG)
        self._f = path.open("w", encoding="utf-8")
        self._json = JsonLinesFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            raw = {"msg": record.getMessage(),
                   "extra": {k: str(v) for k, v in vars(record).items()
                             if k not in _STD and not k.startswith("_")}}
            self._f.write(json.dumps({"raw": raw, "line": self._json.format(record)}) + "\n")
            self._f.flush()
        except Exception:  # a logging failure must not break the test that logged
            self.handleError(record)

    def close(self) -> None:
        self._f.close()
        super().close()


_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}


def pytest_configure(config):
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    if worker == "main":
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for old in LOG_DIR.glob("*.jsonl"):
            old.unlink()
    else:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
    handler = _Keep(LOG_DIR / f"{worker}-{os.getpid()}.jsonl")
    log = logging.getLogger("comptoir")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    config._comptoir_log_handler = handler


def pytest_unconfigure(config):
    handler = getattr(config, "_comptoir_log_handler", None)
    if handler is not None:
        logging.getLogger("comptoir").removeHandler(handler)
        handler.close()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # the controller scans once every worker is done
    hits = []
    lines = 0
    for path in sorted(LOG_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            lines += 1
            rec = json.loads(line)
            for where, text in (("raw", json.dumps(rec["raw"], ensure_ascii=False)),
                                ("written", rec["line"])):
                m = NIR_PATTERN.search(text)
                if m:
                    hits.append(f"{path.name} ({where}): {text[:200]}")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if hits:
        if reporter:
            reporter.write_line(f"FULL NIR IN LOGS: {len(hits)} record(s):", red=True)
            for h in hits[:20]:
                reporter.write_line("  " + h, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter:
        reporter.write_line(f"log scan: {lines} log records written by the suite, "
                            "no full NIR in any")
