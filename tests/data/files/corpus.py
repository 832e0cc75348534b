"""A corpus of malformed inputs: each case is a file, how to read it, its good rows and its bad lines.

``rows`` is the number of good rows (or their ids, checked in order); ``bad`` lists the bad lines
as ``(line, column)``, ``column`` None for a line that is malformed as a whole. Every physical
line of each file is either a good row, the header, an empty line, or one of the bad lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    ids: list[int]
    bad: list[tuple[int, str | None]]
    options: dict[str, Any] = field(default_factory=dict)
    suffix: str = ".csv"


def _lines(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _many(n: int, bad_at: dict[int, str]) -> bytes:
    out = ["id,ts,amount"]
    for i in range(1, n + 1):
        out.append(bad_at.get(i, f"{i},2024-01-{i % 28 + 1:02d} 10:00:00,{i}.5"))
    return _lines(*out)


CSV = [
    Case("unclosed quote", _lines("id,name", '1,"open', "2,b", "3,c"), [2, 3], [(2, None)]),
    Case("unclosed quote mid file", _lines("id,name", "1,a", '2,"open', "3,c", '4,"x""y"'), [1, 3, 4], [(3, None)]),
    Case("text after a closing quote joins the value, as in Arrow", _lines("id,name", '1,"a"b', "2,b"), [1, 2], []),
    Case("too many and too few fields", _lines("id,name", "1,a,extra", "2", "3,c"), [3], [(2, None), (3, None)]),
    Case("bad integer in an inferred column", _many(300, {100: "100x,2024-01-01 10:00:00,1.5"}),
         [i for i in range(1, 301) if i != 100], [(101, "id")]),
    Case("impossible date in an inferred timestamp column", _many(300, {7: "7,2024-02-30 10:00:00,1.5"}),
         [i for i in range(1, 301) if i != 7], [(8, "ts")]),
    Case("bad value in a declared column", _lines("id,amount", "1,1.50", "2,oops", "3,2.25"), [1, 3], [(3, "amount")],
         {"schema": {"amount": "decimal(10,2)"}}),
    Case("undecodable bytes", b"id,name\n1,ok\n2,\xff\xfe\n3,fine\n", [1, 3], [(3, None)]),
    Case("empty lines are not rows", _lines("id,name", "1,a", "", "2,b", ""), [1, 2], []),
    Case("a quoted line break where records are lines", _lines("id,name", '1,"two', 'lines"', "2,b"), [2],
         [(2, None), (3, None)]),
    Case("a quoted line break allowed", _lines("id,name", '1,"two', 'lines"', "2,b"), [1, 2], [],
         {"newlines_in_values": True}),
    Case("unclosed quote to the end with line breaks allowed", _lines("id,name", "1,a", '2,"open', "3,c"), [1],
         [(3, None)], {"newlines_in_values": True}),
    Case("gzip with an unclosed quote", b"", [2, 3], [(2, None)], suffix=".csv.gz"),
]


def gzip_case_data() -> bytes:
    import gzip

    return gzip.compress(_lines("id,name", '1,"open', "2,b", "3,c"))


NDJSON = [
    Case("invalid JSON line", _lines('{"id": 1}', '{"id": 2', '{"id": 3}'), [1, 3], [(2, None)], suffix=".ndjson"),
    Case("not an object", _lines('{"id": 1}', "[1, 2]", '"text"', '{"id": 4}'), [1, 4], [(2, None), (3, None)],
         suffix=".ndjson"),
    Case("value does not fit the declared type", _lines('{"id": 1, "n": 5}', '{"id": 2, "n": "five"}', '{"id": 3, "n": 7}'),
         [1, 3], [(2, None)], {"schema": {"id": "int64", "n": "int64"}}, suffix=".ndjson"),
    Case("type changes after the first block", _lines(*[f'{{"id": {i}, "n": {i}}}' for i in range(1, 41)],
                                                      '{"id": 41, "n": "forty-one"}'),
         list(range(1, 41)), [(41, None)], suffix=".ndjson"),
    Case("blank lines are not records", _lines('{"id": 1}', "", '{"id": 2}'), [1, 2], [], suffix=".ndjson"),
]
