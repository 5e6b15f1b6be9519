"""The central reader's pieces that need no warehouse: opening errors, value forms, the
breach durations of the run summary."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from central import db as conv
from central.errors import CentralError, WarehouseReadError
from central.reader import WarehouseReader
from central.summary import breach_seconds
from gateway.core.errors import LinesideError


def test_a_missing_warehouse_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseReadError) as caught:
        WarehouseReader.open(str(tmp_path / "none.db"))
    assert isinstance(caught.value, CentralError)
    assert isinstance(caught.value, LinesideError)


def test_an_unreachable_postgres_is_a_read_error() -> None:
    # Port 1 on the loopback: refused at once, nothing listens there.
    with pytest.raises(WarehouseReadError):
        WarehouseReader.open("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")


def test_values_come_back_in_one_form_from_either_database() -> None:
    moment = datetime(2026, 12, 1, 6, 0, 0, 123456, tzinfo=UTC)
    assert conv.ts("2026-12-01T06:00:00.123456Z") == moment
    assert conv.ts(moment) == moment
    assert conv.from_us(conv.to_us(moment)) == moment
    assert conv.day("2026-12-11") == date(2026, 12, 11)
    assert conv.day("261211") is None
    assert conv.decimal_text(Decimal("236.50")) == "236.50"
    assert conv.compact_json('{"b": 1, "a": [1, 2]}') == '{"a":[1,2],"b":1}'
    assert conv.compact_json({"b": 1, "a": 2.5}) == '{"a":2.5,"b":1}'


def test_breaches_last_from_raise_to_clear_and_an_open_one_to_the_end() -> None:
    s = 1_000_000
    alerts = (
        {"ts_us": 10 * s, "rule": "haccp_upper", "subject": "p/P1", "state": "raised"},
        {"ts_us": 70 * s, "rule": "haccp_upper", "subject": "p/P1", "state": "cleared"},
        {"ts_us": 100 * s, "rule": "haccp_upper", "subject": "p/P1", "state": "raised"},
    )
    assert breach_seconds(alerts, 130 * s) == 90.0
    assert breach_seconds(alerts, None) == 60.0
    assert breach_seconds((), None) == 0.0
