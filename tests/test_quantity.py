"""Kubernetes quantities by the apimachinery grammar, case by case (after quantity_test.go)."""

from decimal import Decimal

import pytest

from model.quantity import parse_quantity

VALID = [
    ("0", "0"), ("1", "1"), ("250m", "0.25"), ("128Mi", str(128 * 2**20)), ("1Ki", "1024"), ("1Ei", str(2**60)),
    (".5", "0.5"), ("5.", "5"), ("1.5Gi", str(int(1.5 * 2**30))), ("+1", "1"), ("-1", "-1"),
    ("1e8", "100000000"), ("1E3", "1000"), ("1e-3", "0.001"), ("2E", str(2 * 10**18)),
    ("100n", "1.00E-7"), ("100u", "0.000100"), ("1k", "1000"), ("1M", "1000000"), ("1G", "1000000000"),
    ("1T", str(10**12)), ("1P", str(10**15)),
]


@pytest.mark.parametrize("text,value", VALID, ids=[t for t, _ in VALID])
def test_valid_quantities_parse_exactly(text, value):
    assert parse_quantity(text) == Decimal(value)


INVALID = ["", "lots", "1.2.3", "Mi", "1 Mi", "1mi", "1K", "1KiB", "1e", "e3", "1Gi ", " 1", "0x10", "1e1000",
           "Infinity", "NaN", "1_000", "١", "1" * 65]


@pytest.mark.parametrize("text", INVALID)
def test_anything_else_is_not_a_quantity(text):
    assert parse_quantity(text) is None
