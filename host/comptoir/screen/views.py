"""What the page reads, as JSON: a transaction (the API's representation, plus the paying fund
and the complementary contract), the catalogue, and the day (lots, exports, alerts). Masked
NIRs only: the full NIR never leaves the daemon."""

from __future__ import annotations

import datetime as dt
import shutil
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from comptoir import clock
from comptoir.events import BoardStatus
from comptoir.http import transaction_json
from comptoir.transactions import JournalBiller, TransactionView

from .catalogue import CATALOGUE

LINK_STATES = {"down": "hors ligne", "absent": "débranché", "refused": "refusé (appairage)"}
DISK_LOW_BYTES = 512 * 1024 * 1024  # below this, or 5 % of the disk, the day shows an alert
DISK_LOW_FRACTION = 0.05


def _iso(t: float | None) -> str | None:
    return None if t is None else \
        dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def transaction(tx: TransactionView) -> dict[str, Any]:
    out = transaction_json.transaction(tx)
    out["created_at_iso"] = _iso(tx.created_at)
    a = tx.affiliation
    out["amo"] = None if a is None else {"regime": f"{a.regime:02d}", "caisse": f"{a.caisse:03d}",
                                         "centre": f"{a.centre:04d}"}
    c = tx.amc
    out["amc"] = None if c is None else {
        "number": c.amc_number, "contract_type": c.contract_type,
        "start": str(c.period.start), "end": str(c.period.end), "tiers_payant": c.tiers_payant}
    return out


def catalogue() -> list[dict[str, Any]]:
    return [{"cip13": p.cip13, "label": p.label, "unit_price": p.unit_price, "rate": p.rate}
            for p in CATALOGUE]


def day(*, biller: JournalBiller, counts: Mapping[str, int],
        boards: Mapping[str, BoardStatus], timezone: str, data_dir: Path,
        trust: Callable[[], dict[str, Any]] | None = None,
        rights_reachable: Callable[[], bool | None] = lambda: None) -> dict[str, Any]:
    """The pharmacy's day: lots closed today and the open one, the export files written, the
    transactions by state, and what needs someone's attention."""
    now = clock.now()
    tz = zoneinfo.ZoneInfo(timezone)
    midnight = dt.datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0,
                                                          microsecond=0).timestamp()
    exports = biller.exports()
    exported: dict[tuple[str, int], list[str]] = {}
    for finess, lot, kind, _name, _at in exports:
        exported.setdefault((finess, lot), []).append(kind)
    lots = [{"finess": lot.finess, "lot": lot.seq, "count": lot.count,
             "first_invoice": lot.first_invoice, "last_invoice": lot.last_invoice,
             "total": lot.total, "closed_at_iso": _iso(lot.closed_at),
             "exported": sorted(exported.get((lot.finess, lot.seq), []))}
            for lot in biller.lots() if lot.closed_at >= midnight]
    open_lots = [{"finess": f, "sheets": n, "since_iso": _iso(since)}
                 for f, (n, since) in sorted(biller.open_sheets().items()) if n]
    alerts = []
    for i, (port, st) in enumerate(sorted(boards.items())):
        if st.state != "up":  # the page names counters the same way: by port order
            alerts.append({"code": "board_down", "port": port,
                           "text": f"Comptoir {i + 1} : lecteur "
                                   f"{LINK_STATES.get(st.state, st.state)}"})
    if rights_reachable() is False:
        alerts.append({"code": "rights_service", "text": "Service de droits (ADRi) injoignable :"
                       " droits lus dans le cache hors ligne"})
    if trust is not None:
        report = trust()
        for ls in report.get("lists", []):
            if ls.get("state") != "ok":
                what = "liste de confiance" if ls.get("kind") == "trust" else "liste d'opposition"
                alerts.append({"code": "trust_" + str(ls.get("state")),
                               "text": f"{what.capitalize()} périmée ({ls.get('state')}) : "
                                       "vérifiez la connexion à l'assureur"})
    try:
        usage = shutil.disk_usage(data_dir)
        if usage.free < DISK_LOW_BYTES or usage.free < usage.total * DISK_LOW_FRACTION:
            alerts.append({"code": "disk_low", "text": f"Disque presque plein : "
                           f"{usage.free // (1024 * 1024)} Mo libres"})
    except OSError:
        pass
    return {"date": dt.datetime.fromtimestamp(now, tz).date().isoformat(), "lots": lots,
            "open_lots": open_lots, "exports": [
                {"finess": f, "lot": n, "kind": k, "name": name, "at_iso": _iso(at)}
                for f, n, k, name, at in exports if at >= midnight],
            "transactions": dict(counts), "alerts": alerts}
