"""Fixed-width records of 128 characters, as in the public B2 norm: a 3-character record type,
then fields, numeric ones zero-padded on the left, text ones space-padded on the right, then
spaces up to 128, then a line feed. One spec both writes and reads a record type."""

from __future__ import annotations

from typing import Literal

RECORD_LEN = 128
Kind = Literal["n", "a"]


class RecordSpec:
    def __init__(self, code: str, fields: list[tuple[str, int, Kind]]) -> None:
        assert len(code) == 3
        self.code = code
        self.fields = fields
        width = 3 + sum(w for _, w, _ in fields)
        assert width <= RECORD_LEN, (code, width)
        self.width = width

    def format(self, *values: int | str) -> str:
        if len(values) != len(self.fields):
            raise ValueError(f"record {self.code}: {len(values)} values for {len(self.fields)}")
        parts = [self.code]
        for (name, width, kind), value in zip(self.fields, values, strict=True):
            if kind == "n":
                if not isinstance(value, int) or not 0 <= value < 10**width:
                    raise ValueError(f"record {self.code}: {name}={value!r} does not fit {width}")
                parts.append(f"{value:0{width}d}")
            else:
                text = str(value)
                if len(text) > width or not text.isascii() or "\n" in text or "\r" in text:
                    raise ValueError(f"record {self.code}: {name} does not fit {width} ASCII")
                parts.append(text.ljust(width))
        return "".join(parts).ljust(RECORD_LEN) + "\n"

    def parse(self, line: str) -> dict[str, int | str]:
        line = line.rstrip("\n")
        if len(line) != RECORD_LEN or not line.startswith(self.code):
            raise ValueError(f"not a {self.code} record of {RECORD_LEN} characters")
        out: dict[str, int | str] = {}
        pos = 3
        for name, width, kind in self.fields:
            raw = line[pos : pos + width]
            out[name] = int(raw) if kind == "n" else raw.rstrip(" ")
            pos += width
        return out
