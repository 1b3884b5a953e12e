"""A small test catalogue of drugs the counter screen offers (generated codes: 34009 + a
CIP7 in 99xxxxx, a range no real product has [inference], with a correct EAN-13 key).
Prices in cents; base = reimbursement base per box; rate = AMO rate in percent."""

from __future__ import annotations

from dataclasses import dataclass

from comptoir.billing.identifiers import ean13_complete


@dataclass(frozen=True, slots=True)
class Product:
    cip13: str
    label: str
    unit_price: int
    base: int
    rate: int


def _p(cip7: str, label: str, price: int, base: int, rate: int) -> Product:
    return Product(ean13_complete("34009" + cip7), label, price, base, rate)


CATALOGUE: tuple[Product, ...] = (
    _p("9900011", "FICTIFAMOL 1 g, 8 comprimés", 216, 216, 65),
    _p("9900022", "SPECIMENOX 500 mg, 12 gélules", 790, 790, 65),
    _p("9900033", "MAQUETTINE 20 mg, 28 comprimés", 1234, 1234, 65),
    _p("9900044", "POSTICHOL collyre, 10 ml", 380, 380, 30),
    _p("9900055", "ESSAIVIR 200 mg, 30 comprimés (ALD)", 4562, 4562, 100),
    _p("9900066", "BIDONASE spray nasal, 15 ml", 465, 465, 15),
)
BY_CODE = {p.cip13: p for p in CATALOGUE}
