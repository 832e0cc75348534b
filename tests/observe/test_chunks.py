"""The columnar encoding of the run history's attempts: every value comes back as it went in."""

from __future__ import annotations

import pytest

from bubbles.observe._chunks import decode, encode


def test_round_trip_keeps_numbers_none_and_text() -> None:
    columns = [
        ("task", "json", ["a", "b", "ünï", "d"]),
        ("status", "json", ["succeeded", "failed", "succeeded", "succeeded"]),  # repeats: dictionary-encoded
        ("started_at", "f8", [1.5, None, 1795324282.7277205, -0.0]),
        ("attempt", "i8", [1, 2, None, 2**62]),
        ("rows_in", "i8", [None, None, None, None]),
        ("rows_out", "i8", [1, 2.5, None, 3]),  # a float in an int column: kept as it is
        ("huge", "i8", [2**70, 1, None, 0]),  # too big for int64: kept as it is
        ("error", "json", [None, "ValueError: x", None, None]),
    ]
    rows = decode(encode(columns))
    assert len(rows) == 4
    for name, _, values in columns:
        assert [row[name] for row in rows] == values, name


def test_an_empty_chunk_and_one_row() -> None:
    assert decode(encode([("task", "json", []), ("duration", "f8", [])])) == []
    assert decode(encode([("task", "json", ["only"]), ("duration", "f8", [0.25])])) == [{"task": "only", "duration": 0.25}]


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="'b' has 1 values, the first has 2"):
        encode([("a", "json", ["x", "y"]), ("b", "f8", [1.0])])


@pytest.mark.parametrize("damage", [lambda b: b"XXXX" + b[4:], lambda b: b[: len(b) // 2], lambda b: b[:6]])
def test_damaged_data_is_a_value_error(damage) -> None:
    data = encode([("task", "json", ["a", "b", "c"]), ("duration", "f8", [1.0, 2.0, 3.0])])
    with pytest.raises(ValueError):
        decode(damage(data))
