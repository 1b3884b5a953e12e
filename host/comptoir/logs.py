"""Logging for a pharmacy PC: JSON lines, and never a full NIR.

Every record goes through a scrubber that masks anything shaped like a NIR
(13 characters, or 15 with the key) in the message and in every extra field,
whatever the code that logged it intended. Masking keeps the first character
and the last two, enough for a support call, not enough to identify anyone.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

# Sex digit (1, 2; 3, 4, 7, 8 for temporary and special numbers), year, month
# (pseudo-months included), department (2A/2B for Corsica), commune, order
# number, and the optional two-digit key. Spaces, as NIRs are often printed, allowed.
NIR_PATTERN = re.compile(
    r"(?<![0-9A-Za-z])[1-478] ?[0-9]{2} ?[0-9]{2} ?(?:2[ABab]|[0-9]{2})[0-9]? ?[0-9]{2,3} ?"
    r"[0-9]{3}(?: ?[0-9]{2})?(?![0-9A-Za-z])"
)

_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message"}


def mask(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        s = m.group(0).replace(" ", "")
        return s[0] + "*" * (len(s) - 3) + s[-2:]

    return NIR_PATTERN.sub(repl, text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(_scrub(out), ensure_ascii=False, default=str)


def setup(level: str = "info", stream: TextIO | None = None, path: str | None = None) -> None:
    """Send the comptoir loggers to JSON lines on a stream and/or a file."""
    root = logging.getLogger("comptoir")
    root.handlers.clear()
    root.setLevel(level.upper())
    root.propagate = False
    handlers: list[logging.Handler] = []
    if path:
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    if stream is not None or not path:
        handlers.append(logging.StreamHandler(stream or sys.stderr))
    for h in handlers:
        h.setFormatter(JsonLinesFormatter())
        root.addHandler(h)
