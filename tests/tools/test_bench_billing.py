"""The billing bench's bulk recording builds the very journal Journal.record_many builds (it
only fills the bench's large journals faster), and the bench runs end to end."""

from __future__ import annotations

from pathlib import Path

from comptoir.billing import Journal, verify
from comptoir_tools.bench import billing as bench_billing
from comptoir_tools.testkit.billing_synth import Synth

TABLES = {
    "sheet": "SELECT * FROM sheet ORDER BY seq",
    "lot": "SELECT * FROM lot ORDER BY finess, seq",
    "pharmacy": "SELECT * FROM pharmacy ORDER BY finess",
    "franchise_year": "SELECT * FROM franchise_year ORDER BY person_key, year",
}


def _dump(j: Journal) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table; a sheet's sealed texts opened (each seal has its own random
    nonce, so the same texts sealed twice differ: what must be identical is what they hold)."""
    out = {name: j.db.execute(sql).fetchall() for name, sql in TABLES.items()}
    names = [r[1] for r in j.db.execute("PRAGMA table_info(sheet)")]
    at = {n: names.index(n) for n in ("finess", "invoice_no", "transaction_id", "sealed")}
    out["sheet"] = [
        (*r[:at["sealed"]], j.cipher.open(r[at["finess"]], r[at["invoice_no"]],
                                          r[at["transaction_id"]], r[at["sealed"]]),
         *r[at["sealed"] + 1:])
        for r in out["sheet"]
    ]
    return out


def test_bulk_recording_builds_the_same_journal(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench_billing, "BATCH", 700)  # several chunks, lots across chunks
    args = {"seed": 5, "pharmacies": 2, "families": 12}  # few persons: franchise caps reached
    key = tmp_path / "keys" / "billing.key"  # the same key: the same person keys and digests
    with Journal(tmp_path / "a.db", key=key, lot_size=300) as a, \
            Journal(tmp_path / "b.db", key=key, lot_size=300) as b:
        synth = Synth(**args)
        bench_billing._fill(a, synth, 0, 900)
        bench_billing._fill(a, synth, 900, 2500)
        bench_billing._fill(b, synth, 0, 900)  # the bench records its first size this way
        with bench_billing.BulkRecorder(b, workers=2, synth_args=args) as bulk:
            bulk.fill(900, 2500)
        da, db = _dump(a), _dump(b)
        assert len(da["sheet"]) == 2500 and len(da["lot"]) >= 8
        assert any(r[2] for r in da["franchise_year"])
        assert da == db
        assert verify(b).ok


def test_bench_runs_and_reports(tmp_path: Path) -> None:
    r = bench_billing.run((1000, 3000), repeats=1, directory=str(tmp_path))
    rows = r["sizes"]
    assert [row["sheets"] for row in rows] == [1000, 3000]
    assert [row["fill"] for row in rows] == ["record_many", "bulk x2"]
    assert r["export_per_s"] > 0 and r["growth"] > 0
    text = bench_billing.markdown(r)
    assert text.startswith("## Billing export (issue 8)") and "| 3000 |" in text
    assert not list(tmp_path.iterdir())  # the bench cleans up
