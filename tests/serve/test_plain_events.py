"""The plain-event path of ``POST /events`` gives the rows the contract's frames give, or steps aside."""

from __future__ import annotations

import math

import pytest

from leadml.serve.inputs import InvalidInput, check_events, contract_events, plain_events

STAMPS = [
    "2026-03-01T12:00:00Z", "2026-03-01T12:00:00+00:00", "2026-03-01T14:30:00+02:00", "2026-03-01T09:15:00-05:00",
    "2026-03-01 12:00", "2026-03-01T12:00", "2026-03-01", "2026-03-01T12:00:00.5Z", "2026-03-01T12:00:00.123456+01:00",
    "2026-03-01T12:00:00.123456789Z", "1999-12-31T23:59:59", "2262-04-11T23:47:16Z", "1677-09-21T00:12:44Z",
]  # fmt: skip


def _same(records: list[dict]) -> list[tuple]:
    """The rows of the plain path, checked equal to the contract's, types of the values included."""
    plain = plain_events(records)
    assert plain is not None, records
    through = contract_events(records, {})
    assert plain.rows == through.rows
    for (*_, ours), (*_, theirs) in zip(plain.rows, through.rows):
        assert [type(v) for v in ours.values()] == [type(v) for v in theirs.values()]
    return plain.rows


@pytest.mark.parametrize("stamp", STAMPS)
def test_one_event_reads_as_the_contract_reads_it(stamp):
    (row,) = _same([{"lead_id": " L-7 ", "timestamp": stamp, "event_type": " pricing_page ", "page": "/pricing"}])
    assert row[0] == "L-7" and row[2] == "pricing_page" and row[3] == {"page": "/pricing"}


def test_one_event_keeps_its_fields_as_they_came():
    (row,) = _same([{"lead_id": "9", "timestamp": STAMPS[0], "event_type": "email_click", "count": 3,
                     "score": 0.25, "first": True, "campaign": "spring", "gone": None, "nan": math.nan}])  # fmt: skip
    assert row[3] == {"count": 3, "score": 0.25, "first": True, "campaign": "spring"}
    assert type(row[3]["count"]) is int and type(row[3]["first"]) is bool


def test_a_batch_of_one_type_per_field_reads_as_the_contract_reads_it():
    records = [{"lead_id": f"L{k % 3}", "timestamp": STAMPS[k % len(STAMPS)], "event_type": "visit",
                "count": k, "share": k / 7, "ok": k % 2 == 0, "page": f"/p{k}"} for k in range(40)]  # fmt: skip
    rows = _same(records)
    assert [r[0] for r in rows] == [f"L{k % 3}" for k in range(40)]  # the request's order, not the contract's


@pytest.mark.parametrize(
    "records",
    [
        [{"lead_id": 7, "timestamp": STAMPS[0], "event_type": "visit"}],  # a number as the id
        [{"lead_id": "7", "timestamp": 1767268800000, "event_type": "visit"}],  # epoch milliseconds
        [{"lead_id": "7", "timestamp": "01/03/2026", "event_type": "visit"}],  # day/month: the contract refuses
        [{"lead_id": "7", "timestamp": STAMPS[0], "event_type": "  "}],  # a blank type: the contract refuses
        [{"lead_id": "7", "timestamp": STAMPS[0], "event_type": "visit", "tags": ["a"]}],  # nested
        [{"lead_id": "7", "timestamp": "2262-04-12T00:00:00Z", "event_type": "visit"}],  # past the ns range
        [{"lead_id": "1", "timestamp": STAMPS[0], "event_type": "visit", "n": 1},
         {"lead_id": "2", "timestamp": STAMPS[0], "event_type": "visit", "n": 2.5}],  # int and float: one float column
        [{"lead_id": "1", "timestamp": STAMPS[0], "event_type": "visit", "n": 1},
         {"lead_id": "2", "timestamp": STAMPS[0], "event_type": "visit"}],  # a field one record lacks
    ],
)  # fmt: skip
def test_any_other_batch_goes_through_the_contract(records):
    assert plain_events(records) is None
    try:
        expected = contract_events(records, {}).rows
    except InvalidInput as exc:
        with pytest.raises(InvalidInput) as raised:
            check_events(records)
        assert (raised.value.field, raised.value.reason) == (exc.field, exc.reason)
    else:
        assert check_events(records).rows == expected
