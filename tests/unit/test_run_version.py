"""A run's stored version record, built once for the poller, the operator and seeded stores.

The version's own columns (number, line, status) are what the ``runs`` table and the
warehouse are keyed on; they must say exactly what its payload says, and the payload must
give the run back.
"""

from __future__ import annotations

import dataclasses

import pytest

from gateway.core.runs import RunStatus, run_from_json, run_version
from tests.support.line_shift import RUN


@pytest.mark.parametrize("status", list(RunStatus))
def test_the_columns_say_what_the_payload_says(status: RunStatus) -> None:
    run = dataclasses.replace(RUN, status=status)
    version = run_version(run, 1_772_431_200_000_000)
    assert (version.ts_us, version.run_number, version.line, version.status) == (
        1_772_431_200_000_000,
        "R-L1-SHIFT",
        "L1",
        status.value,
    )
    assert (version.source, version.actor) == ("erp", None)
    assert run_from_json(version.payload) == run


def test_an_operators_version_names_the_operator() -> None:
    version = run_version(RUN, 5, source="operator", actor="kari")
    assert (version.source, version.actor) == ("operator", "kari")
    assert run_from_json(version.payload) == RUN
