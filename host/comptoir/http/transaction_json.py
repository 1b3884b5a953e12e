"""JSON out: the representation of a transaction and of one person's rights, as the API
(GET /v1/transactions/{id}) and the counter screen give it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from comptoir.transactions import PersonRights, TransactionView


def transaction(tx: TransactionView) -> dict[str, Any]:
    """Names and birth dates are here (the pharmacist picks the person by them); the NIR only
    masked. The care sheet itself stays in the billing journal."""
    return {
        "id": tx.id,
        "state": str(tx.state),
        "created_at": tx.created_at,
        "updated_at": tx.updated_at,
        "presentation": {"presentation_id": tx.presentation_id, "board_id": tx.board_id,
                         "port": tx.port, "channel": tx.channel},
        "people": [
            {"person": p.index, "role": "insured" if p.index == 0 else "beneficiary",
             "rank": p.rank, "quality": p.quality, "family_name": p.family_name,
             "given_names": p.given_names, "birth_date": str(p.birth_date),
             "birth_rank": p.ref.birth_rank, "nir_masked": p.masked_nir,
             "rights": rights(tx.rights[p.index]) if tx.rights else None}
            for p in tx.people
        ],
        "chosen": tx.chosen,
        "rights_service": tx.rights_service,
        "care_sheet": None if tx.sheet is None else {
            "invoice_no": tx.sheet.invoice_no, "finess": tx.sheet.finess, "lot": tx.sheet.lot,
            "total": tx.sheet.total, "amo": tx.sheet.amo, "amc": tx.sheet.amc,
            "patient": tx.sheet.patient, "counter": tx.sheet.counter,
            "rights": None if tx.sheet.rights is None else rights(tx.sheet.rights)},
    }


def rights(r: PersonRights) -> dict[str, Any]:
    """One person's rights verdict: status, why, and the source and time it rests on."""
    return {"status": r.status, "billable": r.billable, "reason": r.reason, "source": r.source,
            "as_of": r.as_of,
            "as_of_iso": None if r.as_of is None else
            dt.datetime.fromtimestamp(r.as_of, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
