"""The TUI's pure formatting: histogram, sparkline, ages and state badges."""

from __future__ import annotations

import pytest

from tui import render


def test_histogram_marks_t2_t1_and_qn_under_their_bins() -> None:
    weights = [240.0 + i % 5 for i in range(50)] + [221.0]  # one pack below T2 (222 g)
    bars, axis, scale = render.histogram(weights, qn=240.0, t1=231.0, t2=222.0, width=40)
    assert len(bars) == len(axis) == 40
    low, high = 221.0, 244.0
    step = (high - low) / 40

    def column(grams: float) -> int:
        return min(int((grams - low) / step), 39)

    assert axis[column(222.0)] == "2"
    assert axis[column(231.0)] == "1"
    assert axis[column(240.0)] == "Q"
    assert bars[0] != " ", "the underweight pack is drawn at the left edge"
    assert bars[column(231.0)] == " ", "no pack between T2 and T1"
    assert scale.startswith("221.0 g")
    assert scale.endswith("244.0 g")


def test_histogram_of_nothing_is_empty() -> None:
    assert render.histogram([], qn=240.0, t1=231.0, t2=222.0, width=40) == ("", "", "")


def test_histogram_of_identical_weights_without_limits_does_not_divide_by_zero() -> None:
    bars, axis, _ = render.histogram([500.0] * 3, qn=None, t1=None, t2=None, width=10)
    assert bars[0] == "█"
    assert axis.strip() == ""


def test_sparkline_scales_from_lowest_to_highest_and_keeps_the_newest() -> None:
    assert render.sparkline([1, 2, 3, 4, 5, 6, 7, 8], width=8) == "▁▂▃▄▅▆▇█"
    assert render.sparkline([0, 0, 9, 9], width=2) == "▅▅", "only the last two, both equal"
    assert render.sparkline([], width=5) == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (-3, "0s"), (42, "42s"), (600, "10m"), (7200, "2h"), (3 * 86400, "3d")],
)
def test_age(seconds: float | None, text: str) -> None:
    assert render.age(seconds) == text


@pytest.mark.parametrize(
    ("colour", "word", "symbol"),
    [("red", "RED", "■"), ("amber", "AMBER", "▲"), ("green", "GREEN", "●")],
)
def test_andon_is_a_word_and_a_symbol_as_well_as_a_colour(
    colour: str, word: str, symbol: str
) -> None:
    badge = render.andon(colour)
    assert word in badge.plain
    assert symbol in badge.plain


def test_unknown_states_are_shown_as_they_are() -> None:
    assert render.styled(render.LINK, "rebooting").plain == "rebooting"
    assert render.styled(render.LINK, None).plain == "-"


def test_worst_probe_and_labels_say_what_is_wrong_in_words() -> None:
    line = {
        "worst_probe": {"state": "high", "celsius": 6.5},
        "labels": {"state": "gap", "missing_count": 3},
    }
    assert render.worst_probe(line).plain == "▲6.5°C"
    assert render.label_status(line["labels"]).plain == "✗ GAP 3"
    assert render.label_status({"state": "ok", "last": 17}).plain == "✓ ok #17"
    assert render.worst_probe({"worst_probe": None}).plain == "-"


def test_the_product_on_the_line_is_the_one_whose_qn_is_set() -> None:
    line = {
        "run": {
            "products": [
                {"plu": "1", "description": "FILLETS 240G", "nominal_g": 240.0},
                {"plu": "2", "description": "FILLETS 400G", "nominal_g": 400.0},
            ]
        },
        "emark": {"qn_g": 400.0},
    }
    assert render.run_product(line) == "FILLETS 400G"
    line["emark"] = {"qn_g": None}
    assert render.run_product(line) == "2 products"
    assert render.run_product({"run": None}) == "-"


def test_limits_text() -> None:
    assert render.limits(None, 5.0) == "≤ 5.0°C"
    assert render.limits(-2.0, 5.0) == "-2.0..5.0°C"
    assert render.limits(-25.0, None) == "≥ -25.0°C"
    assert render.limits(None, None) == "no limits"


def test_outside_text_is_one_literal_line_of_bounded_length() -> None:
    assert render.clean("R[/]42") == "R[/]42"
    assert render.clean("\x1b[31mred\x1b[0m") == "␛[31mred␛[0m"
    assert render.clean("a\nb\tc\r\x00\x7f") == "a␊b␉c␍␀␡"
    assert render.clean("\u202eevil") == "<U+202E>evil"
    assert render.clean("x" * 600) == "x" * 499 + "…"
    assert render.clean("ATLANTIC SALMON 240G ℮ °C") == "ATLANTIC SALMON 240G ℮ °C"
    assert render.plain("[bold]B[/bold]").plain == "[bold]B[/bold]"
    assert render.plain(None).plain == "-"


def test_a_snapshot_is_cleaned_keys_and_values() -> None:
    cleaned = render.sanitized({"a\x1b": ["\x07", 1, None, {"k": "v\n"}], "n": 2.5})
    assert cleaned == {"a␛": ["␇", 1, None, {"k": "v␊"}], "n": 2.5}


def probe(**fields: object) -> dict[str, object]:
    return {"state": "ok", "celsius": 2.6, "age_s": 0.4, "interval_s": 1.0, "link": "up"} | fields


@pytest.mark.parametrize(
    ("fields", "stale_s", "old"),
    [
        ({}, None, None),
        ({"age_s": 3.9}, None, None),  # two missed polls and a second of the TUI's own
        ({"age_s": 4.5}, None, 4.5),
        ({"age_s": 600.0, "interval_s": None}, None, None),  # subscribed: unchanged is current
        ({"link": "down"}, None, 0.4),
        ({"link": "connecting", "interval_s": None}, None, 0.4),
        ({"link": "degraded"}, None, None),
        ({}, 35.0, 35.4),  # the gateway has not answered for 35 s: every reading is old
        ({"age_s": None}, 35.0, None),  # no reading at all: nothing to age
    ],
)
def test_a_probe_reading_is_old_when_its_device_or_gateway_is_silent(
    fields: dict[str, object], stale_s: float | None, old: float | None
) -> None:
    assert render.probe_age(probe(**fields), stale_s) == old


def test_an_old_reading_within_limits_is_not_shown_as_ok() -> None:
    assert render.probe_state(probe(), None).plain == "✓ ok"
    assert render.probe_state(probe(link="down"), None).plain == "? last ok"
    assert render.probe_state(probe(link="down", state="high"), None).plain == "▲ HIGH"
    line = {"worst_probe": probe(link="down", age_s=32.0)}
    assert render.worst_probe(line).plain == "?2.6°C 32s"
    assert render.worst_probe({"worst_probe": probe(state="")}).plain == "?2.6°C"


def test_probes_are_named_by_where_they_are() -> None:
    assert render.probe_name(probe(device="d", probe="P1", location="core")) == "core (P1)"
    assert render.probe_name(probe(device="d", probe="P1", location="")) == "d/P1"


def snapshot_with(devices: list[dict[str, str]]) -> dict[str, object]:
    return {"system": {"devices": devices}}


@pytest.mark.parametrize(
    ("devices", "stale", "badge"),
    [
        ([{"line": "L1", "state": "up"}], False, "● GREEN"),
        ([{"line": "L1", "state": "degraded"}], False, "● GREEN"),
        ([], False, "○ NO DATA"),
        ([{"line": "L2", "state": "up"}], False, "○ NO DATA"),  # another line's device
        (
            [{"line": "L1", "state": "down"}, {"line": "L1", "state": "disabled"}],
            False,
            "○ NO DATA",
        ),
        ([{"line": "L1", "state": "up"}], True, "? STALE"),
    ],
)
def test_a_line_with_no_working_device_is_not_green(
    devices: list[dict[str, str]], stale: bool, badge: str
) -> None:
    line = {"id": "L1", "andon": "green"}
    assert render.line_andon(snapshot_with(devices), line, stale).plain == badge


def test_a_red_line_stays_red_without_devices() -> None:
    line = {"id": "L1", "andon": "red"}
    assert render.line_andon(snapshot_with([]), line, stale=False).plain == "■ RED"


@pytest.mark.parametrize(
    ("occurrences", "shown"),
    [(None, ""), (1, ""), (2, "×2"), (600, "×600"), ("many", "")],
)
def test_an_occurrence_count_is_shown_only_when_the_alert_came_back(
    occurrences: object, shown: str
) -> None:
    assert render.occurrences({"occurrences": occurrences}) == shown


def test_the_action_the_gateway_appends_to_a_message_is_shown_apart() -> None:
    alert = {"message": "P1 above 5.0 °C. Action: Move the product to chill", "action": ""}
    assert render.alert_message(alert) == alert["message"], "no action: the message as sent"
    alert["action"] = "Move the product to chill"
    assert render.alert_message(alert) == "P1 above 5.0 °C"
    assert render.alert_action(alert).plain == "Action: Move the product to chill"
    assert render.alert_action({"message": "x"}).plain == ""


def test_a_ref_is_literal_and_a_missing_one_is_a_dash() -> None:
    assert render.alert_ref({"ref": "[b]1a2b3c"}).plain == "[b]1a2b3c"
    assert render.alert_ref({}).plain == "-"


@pytest.mark.parametrize(("last_10_min", "flood"), [(0, False), (10, False), (11, True)])
def test_flood_is_more_than_ten_raised_in_ten_minutes(last_10_min: int, flood: bool) -> None:
    load = {"last_10_min": last_10_min, "per_10_min": 1.25, "flood_pct": 0.7, "stale": 2}
    assert render.flooding(load) is flood
    assert ("FLOOD" in render.alarm_rate(load).plain) is flood
    assert render.alarm_rate(load).plain.startswith(f"alarms: {last_10_min} / 10 min")
    summary = render.alarm_summary(load).plain
    assert ("FLOOD" in summary) is flood
    assert "avg 1.25 / 10 min" in summary
    assert "flood 0.7 % of 10-min periods" in summary
    assert summary.endswith("stale 2")


def test_a_snapshot_without_alarm_figures_says_so() -> None:
    assert render.alarm_rate(None).plain == "alarms: -"
    assert not render.flooding(None)
    assert "no figures" in render.alarm_summary({}).plain
