"""The columnar encoding of the run history's attempts: every value comes back as it went in."""

from __future__ import annotations

import pytest

from bubbles.store._chunks import decode, encode


def test_round_trip_keeps_numbers_none_and_text() -> None:
    columns = [
        ("task", "json", ["a", "b", "ünï", "d"]),
        ("status", "json", ["succeeded", "failed", "succeeded", "succeeded"]),  # repeats: dictionary-encoded
        ("started_at", "f8", [1.5, None, 1795324282.7277205, -0.0]),
        ("attempt", "i8", [1, 2, None, 2**62]),
        ("rows_in", "i8", [None, None, None, None]),
        ("rows_out", "i8", [1, 2.5, None, 3]),  # a float in an int column: kept as it is
        ("huge", "i8", [2**70, 1, None, 0]),  # too big for int64: kept as it is
        ("smallest", "i8", [-(2**63), 1, None, 0]),  # the int64 that stands for None: kept as it is
        ("mixed", "json", [1, True, 1.0, 1]),  # equal as dict keys, kept apart
        ("error", "json", [None, "ValueError: x", None, None]),
    ]
    rows = decode(encode(columns), rows=4)
    assert len(rows) == 4
    for name, _, values in columns:
        assert [row[name] for row in rows] == values, name


def test_numpy_scalars_keep_their_values() -> None:
    import numpy as np

    rows = decode(encode([("rows_out", "i8", [np.int64(3), 2.5, None]), ("score", "json", [np.float64(0.5), "x", None])]), rows=3)
    assert [r["rows_out"] for r in rows] == [3, 2.5, None]
    assert [r["score"] for r in rows] == [0.5, "x", None]


def test_an_empty_chunk_and_one_row() -> None:
    assert decode(encode([("task", "json", []), ("duration", "f8", [])]), rows=0) == []
    assert decode(encode([("task", "json", ["only"]), ("duration", "f8", [0.25])]), rows=1) == [
        {"task": "only", "duration": 0.25}
    ]


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="'b' has 1 values, the first has 2"):
        encode([("a", "json", ["x", "y"]), ("b", "f8", [1.0])])


def _header_says(data: bytes, old: bytes, new: bytes) -> bytes:
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"XXXX" + b[4:],  # not a chunk
        lambda b: b[: len(b) // 2],  # cut short
        lambda b: b[:6],
        lambda b: _header_says(b, b'"n": 3', b'"n": 9'),  # a row count that is not the one written
        lambda b: _header_says(b, b'"f8"', b'"zz"'),  # an unknown kind of column
        lambda b: b[:-8] + b"\xff" * 8,  # a dictionary code out of range
    ],
)
def test_damaged_data_is_a_value_error(damage) -> None:
    data = encode([("duration", "f8", [1.0, 2.0, 3.0]), ("status", "json", ["ok", "ok", "ok"])])
    with pytest.raises(ValueError):
        decode(damage(data), rows=3)


def test_long_columns_of_distinct_and_repeated_text_round_trip() -> None:
    names = [f"task-{i}" for i in range(300)]
    statuses = ["succeeded" if i % 7 else "failed" for i in range(300)]
    mostly_same = ["w1"] * 40 + [f"w{i}" for i in range(260)]  # the first values repeat, the rest do not
    rows = decode(encode([("task", "json", names), ("status", "json", statuses), ("worker", "json", mostly_same)]), rows=300)
    assert [r["task"] for r in rows] == names
    assert [r["status"] for r in rows] == statuses
    assert [r["worker"] for r in rows] == mostly_same


@pytest.mark.parametrize(
    "values",
    [
        ["succeeded"] * 100,  # one repeated string
        [f"tâsk-{i}" for i in range(99)] + [""],  # distinct strings, an empty one among them
        [f"t{i}" for i in range(99)] + ["with\x00nul"],  # a NUL inside: kept as JSON
        [f"t{i}" for i in range(99)] + [7],  # not all strings: kept as JSON
        ["a"] * 99 + [None],
    ],
)
def test_every_text_layout_round_trips(values) -> None:
    assert [r["c"] for r in decode(encode([("c", "json", values)]), rows=len(values))] == values


def test_text_with_lone_surrogates_round_trips() -> None:
    """File names from os.listdir can carry surrogates; an error message quoting one must not sink a run's history."""
    bad = "bad \udcff name"
    for values in ([bad] * 70, [f"{bad} {i}" for i in range(70)], [bad, "x"] * 35):
        assert [r["c"] for r in decode(encode([("c", "json", values)]), rows=len(values))] == values
