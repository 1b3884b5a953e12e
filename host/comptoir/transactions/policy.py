"""When the chosen person's rights allow a care sheet (docs/rights-cache.md, "At the
counter")."""

from __future__ import annotations

import datetime as dt

from .errors import MeansBlocked, RightsClosed, RightsUnconfirmed
from .model import DispenseRequest, PersonRights


def judge(basis: PersonRights, req: DispenseRequest, index: int) -> None:
    """May the chosen person's care sheet be made on these rights? (docs/rights-cache.md)"""
    when = "" if basis.as_of is None else \
        f" as of {dt.datetime.fromtimestamp(basis.as_of, dt.UTC):%Y-%m-%d %H:%M} UTC"
    said = f"{basis.source or 'no source'}{when}"
    if basis.status == "expired":
        raise RightsClosed(f"person {index}: AMO rights closed ({basis.reason}, {said}): no care "
                           "sheet can be made")
    if basis.status == "blocked":
        raise MeansBlocked(f"person {index}: the presented phone is {basis.reason}: no care "
                           "sheet on it")
    if not basis.billable and (req.tiers_payant.amo or req.tiers_payant.amc):
        raise RightsUnconfirmed(
            f"person {index}: rights {basis.status} ({basis.reason}, {said}): tiers payant "
            "needs confirmed rights; dispense without tiers payant (the patient pays, the sheet "
            "records the basis) or ask the rights service again")
