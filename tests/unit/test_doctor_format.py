"""``lineside doctor``'s report: one column for the check names, however long a device id."""

from __future__ import annotations

from gateway.doctor.findings import Finding, Report


def test_a_long_check_name_keeps_its_message_in_a_column() -> None:
    report = Report(
        findings=[
            Finding(check="config", status="ok", message="valid"),
            Finding(check="device tt-chill", status="ok", message="connected"),
            Finding(check="device scanner1", status="fail", message="down", fix="plug it in"),
        ],
        config_loaded=True,
    )
    lines = report.format().splitlines()
    assert lines[1] == "ok    device tt-chill  connected"
    columns = {
        line.index(word)
        for line, word in zip(lines[:3], ["valid", "connected", "down"], strict=True)
    }
    assert len(columns) == 1
    assert lines[3].index("fix:") == columns.pop()


def test_short_check_names_keep_the_usual_layout() -> None:
    report = Report(
        findings=[Finding(check="store", status="fail", message="full", fix="clean it")],
        config_loaded=True,
    )
    assert report.format().splitlines()[:2] == [
        "FAIL  store          full",
        "                     fix: clean it",
    ]
