"""`PgConnection.fetch_binary` (the billing export's lot reads on PostgreSQL, issue 17) gives
the very rows a plain `execute` gives: same values, same Python types, NULLs included."""

from __future__ import annotations

from pathlib import Path

from billing_fixtures import SYNTH
from pg_fixtures import pg_server, pg_url  # noqa: F401 (fixtures)

from comptoir.billing.journal import LOT_ROWS, OPEN_ROWS
from comptoir.billing.journal_pg import open_journal


def test_binary_rows_are_the_plain_rows(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    with open_journal(pg_url, key=tmp_path / "billing.key", lot_size=7) as j:
        j.record_many([SYNTH.dispensation(i) for i in range(17)], now=1_780_000_000)
        finess = j.pharmacies()[0]
        every = "SELECT * FROM sheet WHERE finess = ? ORDER BY seq"
        for sql, args in ((LOT_ROWS, (finess, 1)), (OPEN_ROWS, (finess,)), (every, (finess,))):
            plain = j.db.execute(sql, args).fetchall()
            binary = j.db.fetch_binary(sql, args)
            assert plain and binary == plain
            assert [[type(v) for v in r] for r in binary] == [[type(v) for v in r]
                                                               for r in plain]
        assert any(r[13] is None for r in j.db.fetch_binary(every, (finess,)))  # open: no lot
        assert j.lot_rows(finess, 1) == j._open_rows(
            finess, j.db.execute(LOT_ROWS, (finess, 1)).fetchall(), "lot")
