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
        # One precompiled template per record type: formatting is on the recording path.
        self._template = (
            code
            + "".join(f"{{:0{w}d}}" if k == "n" else f"{{:<{w}}}" for _, w, k in fields)
            + " " * (RECORD_LEN - width)
            + "\n"
        )
        self._checks = [(name, k == "n", 10**w if k == "n" else w) for name, w, k in fields]

    def format(self, *values: int | str) -> str:
        if len(values) != len(self._checks):
            raise ValueError(f"record {self.code}: {len(values)} values for {len(self.fields)}")
        for value, (name, numeric, limit) in zip(values, self._checks, strict=True):
            if numeric:
                ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit
            else:
                ok = (
                    isinstance(value, str)
                    and len(value) <= limit
                    and value.isascii()
                    and "\n" not in value
                    and "\r" not in value
                )
            if not ok:  # the value is not shown: it may be a NIR
                raise ValueError(f"record {self.code}: {name} does not fit")
        return self._template.format(*values)

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
