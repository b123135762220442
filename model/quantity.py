"""Kubernetes resource quantities, parsed by the grammar of apimachinery's `resource.Quantity`.

A port of `ParseQuantity` (k8s.io/apimachinery/pkg/api/resource/quantity.go):

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | +<number> | -<number>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>

("u" stands for the micro sign upstream also reads.) The value is exact (a Decimal). No Pulumi import.
"""

from __future__ import annotations

import re
from decimal import Decimal

_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_QUANTITY = re.compile(rf"({_NUMBER})(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
# Upstream refuses exponents it cannot represent; these bound the work of a hostile input.
_MAX_DIGITS = 64
_MAX_EXPONENT = 100
# For the stack file's JSON Schema (model/config_models.py), which says the same limits.
MAX_QUANTITY_LENGTH, MAX_QUANTITY_EXPONENT = _MAX_DIGITS, _MAX_EXPONENT


def parse_quantity(text: str) -> Decimal | None:
    """The exact value of a Kubernetes quantity ("250m" → 0.25, "1Ki" → 1024), None when not one."""
    match = _QUANTITY.fullmatch(text)
    if not match or len(text) > _MAX_DIGITS:
        return None
    number, suffix = Decimal(match.group(1)), match.group(2)
    if suffix is None:
        return number
    if suffix in _BINARY:
        return number * (1024 ** _BINARY[suffix])
    exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
    if abs(exponent) > _MAX_EXPONENT:
        return None
    return number.scaleb(exponent)
