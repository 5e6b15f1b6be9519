"""Tests for the pure GS1 element-string codec (gateway.core.codecs.gs1)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.codecs.gs1 import (
    GS,
    REASONS,
    Gs1Label,
    Gs1Rejection,
    encode_element_string,
    gtin_check_digit,
    parse_gs1,
)

TODAY = date(2025, 6, 1)
GTIN = "09501101530003"  # GS1's example GTIN-13 9501101530003 as GTIN-14
GTIN_B = "09506000134352"  # domain-rules 4.3 example
GTIN_VM = "95012345678903"  # indicator digit 9: variable-measure trade item

# --------------------------------------------------------------------------------------------
# check digits


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        pytest.param("950110153000", 3, id="ean13-9501101530003"),
        pytest.param("0950110153000", 3, id="gtin14-09501101530003"),
        # "095011015300" drops the last data 0, so it is a different number (-> 7).
        pytest.param("095011015300", 7, id="gtin13-0950110153007"),
        pytest.param("123456789012", 8, id="ean13-1234567890128"),
        pytest.param("0950600013435", 2, id="gtin14-09506000134352"),
        pytest.param("400638133393", 1, id="ean13-4006381333931"),
        pytest.param("03600029145", 2, id="upca-036000291452"),
        pytest.param("9638507", 4, id="gtin8-96385074"),
        pytest.param("9501234567890", 3, id="gtin14-95012345678903"),
        pytest.param("10614141123456789", 7, id="sscc-106141411234567897"),
        pytest.param("0000000000000", 0, id="all-zero"),
    ],
)
def test_gtin_check_digit_known_values(digits: str, expected: int) -> None:
    assert gtin_check_digit(digits) == expected


@pytest.mark.parametrize("bad", ["", "12a4", "\uff11\uff12\uff13", " 123"])
def test_gtin_check_digit_rejects_non_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="digits"):
        gtin_check_digit(bad)


# --------------------------------------------------------------------------------------------
# encode_element_string


def test_encode_inserts_separator_only_after_variable_fields_not_last() -> None:
    encoded = encode_element_string(
        [("01", GTIN), ("10", "LOT1"), ("17", "250630"), ("3922", "1299"), ("21", "S1")]
    )
    assert encoded == f"]C101{GTIN}10LOT1{GS}17250630" + f"39221299{GS}21S1"


def test_encode_custom_separator_and_no_symbology() -> None:
    encoded = encode_element_string([("10", "A"), ("21", "B")], separator="<GS>", symbology="")
    assert encoded == "10A<GS>21B"


def test_encode_empty_and_bad_ai() -> None:
    assert encode_element_string([]) == "]C1"
    with pytest.raises(ValueError, match="application identifier"):
        encode_element_string([("1", "x")])
    with pytest.raises(ValueError, match="application identifier"):
        encode_element_string([("01A", "x")])


# --------------------------------------------------------------------------------------------
# valid samples

VALID = [
    pytest.param(
        f"]C101{GTIN}31030003851511060010LOT42{GS}21SN-0001",
        {},
        {
            "symbology": "]C1",
            "gtin": GTIN,
            "net_weight_kg": Decimal("0.385"),
            "best_before": date(2011, 6, 30),
            "use_by": None,
            "batch": "LOT42",
            "serial": "SN-0001",
        },
        id="gs1-128-all-common",
    ),
    pytest.param(
        f"]e001{GTIN_VM}3102001234392201599{GS}1525060910B7",
        {},
        {
            "symbology": "]e0",
            "gtin": GTIN_VM,
            "net_weight_kg": Decimal("12.34"),
            "price": Decimal("15.99"),
            "best_before": date(2025, 6, 9),
            "batch": "B7",
        },
        id="databar-expanded-weight-price",
    ),
    pytest.param(
        f"]d2{GS}01{GTIN}11250528132505291725061021X1",
        {},
        {
            "symbology": "]d2",
            "production_date": date(2025, 5, 28),
            "pack_date": date(2025, 5, 29),
            "use_by": date(2025, 6, 10),
            "serial": "X1",
        },
        id="datamatrix-leading-gs-prod-pack-dates",
    ),
    pytest.param(
        f"]Q301{GTIN}10ABC|21XYZ|3920250",
        {"separators": ["|"]},
        {"symbology": "]Q3", "batch": "ABC", "serial": "XYZ", "price": Decimal(250)},
        id="qr-pipe-substitute",
    ),
    pytest.param(
        f"01{GTIN}10L1<GS>21S1<GS>3103000500",
        {"separators": ["<GS>"]},
        {"symbology": None, "batch": "L1", "serial": "S1", "net_weight_kg": Decimal("0.500")},
        id="no-prefix-angle-gs-substitute",
    ),
    pytest.param(
        f"{{GS}}01{GTIN}10L2{{GS}}17260100",
        {"separators": ["{GS}", "|"]},
        {"symbology": None, "batch": "L2", "use_by": date(2026, 1, 31)},
        id="brace-gs-substitute-leading",
    ),
    pytest.param(
        f"{GS}01{GTIN}",
        {},
        {"symbology": None, "gtin": GTIN, "batch": None, "price": None},
        id="leading-gs-no-prefix-gtin-only",
    ),
    pytest.param(
        f"]C101{GTIN}10LOT9\r\n",
        {},
        {"batch": "LOT9"},
        id="trailing-crlf-trimmed",
    ),
    pytest.param(
        b"]C10109501101530003172502001524020011240229",
        {},
        {
            "use_by": date(2025, 2, 28),
            "best_before": date(2024, 2, 29),
            "production_date": date(2024, 2, 29),
        },
        id="bytes-day00-feb-and-leap-day",
    ),
    pytest.param(
        f"01{GTIN}1312040015751231",
        {},
        {"pack_date": date(2012, 4, 30), "best_before": date(2075, 12, 31)},
        id="day00-pack-date-century-plus-50",
    ),
    pytest.param(
        "17760101",
        {},
        {"use_by": date(1976, 1, 1)},
        id="century-window-51-ahead-is-previous-century",
    ),
    pytest.param(
        "1799123110X",
        {},
        {"use_by": date(1999, 12, 31), "batch": "X"},
        id="century-window-yy99",
    ),
    pytest.param(
        f"01{GTIN}3100000042",
        {},
        {"net_weight_kg": Decimal(42)},
        id="3100-no-decimals",
    ),
    pytest.param(
        f"01{GTIN}3105123456",
        {},
        {"net_weight_kg": Decimal("1.23456")},
        id="3105-five-decimals",
    ),
    pytest.param(
        f"01{GTIN}3929123456789012345",
        {},
        {"price": Decimal("123456.789012345")},
        id="3929-fifteen-digits-nine-decimals",
    ),
    pytest.param(
        f"]C101{GTIN}{GS}3103000385{GS}{GS}10A",
        {},
        {"net_weight_kg": Decimal("0.385"), "batch": "A"},
        id="redundant-gs-after-fixed-fields",
    ),
    pytest.param(
        f"]C110!\"%&'()*+,-./:;<=>?_{GS}21{'9' * 20}{GS}",
        {},
        {"batch": "!\"%&'()*+,-./:;<=>?_", "serial": "9" * 20},
        id="charset82-specials-max-len-trailing-gs",
    ),
    pytest.param(
        f"01{GTIN}10A{GS}01{GTIN}",
        {},
        {"gtin": GTIN, "elements": (("01", GTIN), ("10", "A"))},
        id="identical-duplicate-kept-once",
    ),
]


@pytest.mark.parametrize(("raw", "kwargs", "expected"), VALID)
def test_parse_valid_samples(
    raw: str | bytes, kwargs: dict[str, object], expected: dict[str, object]
) -> None:
    result = parse_gs1(raw, today=TODAY, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Gs1Label), result
    assert result.raw == (raw if isinstance(raw, bytes) else raw.encode())
    for field, value in expected.items():
        assert getattr(result, field) == value, field


def test_parse_elements_in_order_raw_values() -> None:
    raw = f"]C101{GTIN}3103000385{GS}10L{GS}392012"
    result = parse_gs1(raw, today=TODAY)
    assert isinstance(result, Gs1Label)
    assert result.elements == (("01", GTIN), ("3103", "000385"), ("10", "L"), ("3920", "12"))


@pytest.mark.parametrize(
    ("today", "yymmdd", "expected"),
    [
        pytest.param(date(2025, 1, 1), "750101", date(2075, 1, 1), id="2025+50-same-century"),
        pytest.param(date(2025, 1, 1), "760101", date(1976, 1, 1), id="2025+51-previous"),
        pytest.param(date(2070, 1, 1), "200101", date(2120, 1, 1), id="2070-50-next"),
        pytest.param(date(2070, 1, 1), "210101", date(2021, 1, 1), id="2070-49-same"),
        pytest.param(date(1999, 12, 31), "000229", date(2000, 2, 29), id="1999-to-2000"),
        pytest.param(date(2000, 1, 1), "990100", date(1999, 1, 31), id="2000-to-1999-day00"),
    ],
)
def test_century_sliding_window(today: date, yymmdd: str, expected: date) -> None:
    result = parse_gs1(f"17{yymmdd}", today=today)
    assert isinstance(result, Gs1Label), result
    assert result.use_by == expected


def test_space_substitute_separator() -> None:
    result = parse_gs1(f"01{GTIN}21S 10B \r\n", today=TODAY, separators=[" ", ""])
    assert isinstance(result, Gs1Label), result
    assert result.elements == (("01", GTIN), ("21", "S"), ("10", "B"))


# --------------------------------------------------------------------------------------------
# invalid samples

INVALID = [
    pytest.param("", {}, "empty", id="empty-str"),
    pytest.param(b"", {}, "empty", id="empty-bytes"),
    pytest.param("\r\n", {}, "empty", id="only-crlf"),
    pytest.param("]C1", {}, "empty", id="only-symbology"),
    pytest.param(f"]d2{GS}{GS}\n", {}, "empty", id="only-separators"),
    pytest.param(b"\xff\xfe0109501101530003", {}, "not_text", id="not-utf8"),
    pytest.param(b"10LOT\xc3", {}, "not_text", id="truncated-utf8"),
    pytest.param("10LOTé", {}, "non_ascii", id="non-ascii-str"),
    pytest.param("10LOT\u00e9".encode(), {}, "non_ascii", id="non-ascii-utf8-bytes"),
    pytest.param("10\ud800", {}, "non_ascii", id="lone-surrogate"),
    pytest.param(f"01{GTIN}\x0010A", {}, "control_character", id="nul"),
    pytest.param(f"\t01{GTIN}", {}, "control_character", id="leading-tab"),
    pytest.param("10A\r\n21B", {}, "control_character", id="crlf-in-middle"),
    pytest.param("10A\x1c21B", {}, "control_character", id="fs-not-configured"),
    pytest.param("10A\x7f", {}, "control_character", id="del"),
    pytest.param(f"]C0{GTIN}", {}, "unsupported_symbology", id="plain-code128"),
    pytest.param("]E09501101530003", {}, "unsupported_symbology", id="ean13"),
    pytest.param(f"]J101{GTIN}", {}, "unsupported_symbology", id="dotcode"),
    pytest.param("]", {}, "unsupported_symbology", id="lone-bracket"),
    pytest.param("00106141411234567897", {}, "unknown_ai", id="sscc-00"),
    pytest.param(f"01{GTIN}16250101", {}, "unknown_ai", id="sell-by-16"),
    pytest.param(f"01{GTIN}3106000100", {}, "unknown_ai", id="3106"),
    pytest.param(f"01{GTIN}3930840123", {}, "unknown_ai", id="3930-currency-price"),
    pytest.param(f"01{GTIN}99INTERNAL", {}, "unknown_ai", id="99"),
    pytest.param(f"01{GTIN}31A", {}, "unknown_ai", id="31-then-letter"),
    pytest.param(f"01{GTIN}XYZ", {}, "trailing_garbage", id="letters-after-fixed"),
    pytest.param(f" 01{GTIN}", {}, "trailing_garbage", id="leading-space"),
    pytest.param(f"01{GTIN}1X", {}, "trailing_garbage", id="digit-then-letter"),
    pytest.param(f"]C1(01){GTIN}", {}, "trailing_garbage", id="hri-parentheses"),
    pytest.param("0109501", {}, "truncated", id="short-gtin"),
    pytest.param("01", {}, "truncated", id="ai-only"),
    pytest.param(f"01{GTIN}1", {}, "truncated", id="one-digit-ai"),
    pytest.param(f"01{GTIN}310", {}, "truncated", id="three-digit-of-310n"),
    pytest.param(f"01{GTIN}10", {}, "truncated", id="batch-empty-at-end"),
    pytest.param(f"10{GS}21X", {}, "truncated", id="batch-empty-before-gs"),
    pytest.param(f"0109501{GS}10A", {}, "truncated", id="gs-inside-gtin"),
    pytest.param("01095011|10A", {"separators": ["|"]}, "truncated", id="sub-inside-gtin"),
    pytest.param("17250", {}, "truncated", id="short-date"),
    pytest.param(f"10{'A' * 21}{GS}21X", {}, "too_long", id="batch-21"),
    pytest.param(f"21{'1' * 21}", {"separators": ["|"]}, "missing_separator", id="serial-21"),
    pytest.param(f"10A{GS}21{'S' * 25}", {}, "too_long", id="serial-25-at-end-with-gs"),
    pytest.param(f"3922{'1' * 16}{GS}10A", {}, "too_long", id="price-16"),
    pytest.param(
        f"01{GTIN}10LOT12345678901234567821SERIAL",
        {},
        "missing_separator",
        id="batch-runs-into-serial-no-gs",
    ),
    pytest.param(
        f"]C1{GS}01{GTIN}10LOT12345678901234567821SERIAL",
        {},
        "missing_separator",
        id="leading-fnc1-only-no-inner-gs",
    ),
    pytest.param("01095011015300A3", {}, "bad_numeric", id="letter-in-gtin"),
    pytest.param(f"01{GTIN}3103000A85", {}, "bad_numeric", id="letter-in-weight"),
    pytest.param(f"01{GTIN}39221A{GS}10X", {}, "bad_numeric", id="letter-in-price"),
    pytest.param("1725O601", {}, "bad_numeric", id="letter-o-in-date"),
    pytest.param("3922129910ABC", {}, "bad_numeric", id="price-runs-into-batch"),
    pytest.param("10LOT 1", {}, "bad_character", id="space-in-batch"),
    pytest.param("10LOT|1", {}, "bad_character", id="unconfigured-pipe"),
    pytest.param("21SN#1", {}, "bad_character", id="hash-in-serial"),
    pytest.param("10LOT~", {}, "bad_character", id="tilde"),
    pytest.param("0109501101530004", {}, "bad_check_digit", id="gtin-check"),
    pytest.param("0195012345678904", {}, "bad_check_digit", id="gtin-vm-check"),
    pytest.param("17251301", {}, "bad_date", id="month-13"),
    pytest.param("17250001", {}, "bad_date", id="month-00"),
    pytest.param("15250231", {}, "bad_date", id="feb-31"),
    pytest.param("11250229", {}, "bad_date", id="feb-29-non-leap"),
    pytest.param("13250132", {}, "bad_date", id="jan-32"),
    pytest.param("17250431", {}, "bad_date", id="apr-31"),
    pytest.param(f"10A{GS}10B", {}, "duplicate_ai", id="two-batches"),
    pytest.param(f"01{GTIN}01{GTIN_B}", {}, "duplicate_ai", id="two-gtins"),
    pytest.param(f"01{GTIN}31030003853102000039", {}, "duplicate_ai", id="310n-family"),
    pytest.param(f"3922199{GS}3923199", {}, "duplicate_ai", id="392n-family"),
]


@pytest.mark.parametrize(("raw", "kwargs", "reason"), INVALID)
def test_parse_invalid_samples(raw: str | bytes, kwargs: dict[str, object], reason: str) -> None:
    result = parse_gs1(raw, today=TODAY, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Gs1Rejection), result
    assert result.reason == reason, result.detail
    assert result.reason in REASONS
    assert result.detail
    assert isinstance(result.raw, bytes)


def test_rejection_detail_names_ai_and_position() -> None:
    result = parse_gs1(f"]C101{GTIN}16250101", today=TODAY)
    assert isinstance(result, Gs1Rejection)
    assert "(16)" in result.detail
    assert "position 20" in result.detail

    result = parse_gs1("0109501101530004", today=TODAY)
    assert isinstance(result, Gs1Rejection)
    assert "(01)" in result.detail
    assert "expected 3" in result.detail


def test_date_out_of_calendar_is_rejected_not_raised() -> None:
    result = parse_gs1("17000101", today=date(9999, 1, 1))
    assert isinstance(result, Gs1Rejection)
    assert result.reason == "bad_date"
    result = parse_gs1("17990101", today=date(1, 1, 1))
    assert isinstance(result, Gs1Rejection)
    assert result.reason == "bad_date"


def test_raw_is_preserved_for_rejections() -> None:
    data = b"\xff\x1d01"
    result = parse_gs1(data, today=TODAY)
    assert isinstance(result, Gs1Rejection)
    assert result.raw == data


# --------------------------------------------------------------------------------------------
# round trip


def test_round_trip_example() -> None:
    elements = [
        ("01", GTIN_VM),
        ("3103", "001250"),
        ("3922", "899"),
        ("15", "250700"),
        ("10", "HADDOCK-7"),
        ("21", "000123"),
        ("11", "250530"),
    ]
    for sep, symbology in [(GS, "]C1"), ("|", "]Q3"), ("{GS}", ""), (GS, "]e0")]:
        raw = encode_element_string(elements, separator=sep, symbology=symbology)
        result = parse_gs1(raw, today=TODAY, separators=[sep])
        assert isinstance(result, Gs1Label), result
        assert result.elements == tuple(elements)
        assert result.symbology == (symbology or None)
        assert result.net_weight_kg == Decimal("1.250")
        assert result.price == Decimal("8.99")
        assert result.best_before == date(2025, 7, 31)
        assert result.production_date == date(2025, 5, 30)


CSET82 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!\"%&'()*+,-./:;<=>?_"
digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def gtins(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet="0123456789", min_size=13, max_size=13))
    return body + str(gtin_check_digit(body))


@st.composite
def yymmdds(draw: st.DrawFn) -> str:
    d = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
    day = 0 if draw(st.booleans()) else d.day
    return f"{d.year % 100:02d}{d.month:02d}{day:02d}"


@st.composite
def valid_elements(draw: st.DrawFn) -> list[tuple[str, str]]:
    pool: dict[str, st.SearchStrategy[tuple[str, str]]] = {
        "01": gtins().map(lambda v: ("01", v)),
        "10": st.text(alphabet=CSET82, min_size=1, max_size=20).map(lambda v: ("10", v)),
        "21": st.text(alphabet=CSET82, min_size=1, max_size=20).map(lambda v: ("21", v)),
        "11": yymmdds().map(lambda v: ("11", v)),
        "13": yymmdds().map(lambda v: ("13", v)),
        "15": yymmdds().map(lambda v: ("15", v)),
        "17": yymmdds().map(lambda v: ("17", v)),
        "310": st.tuples(
            st.integers(0, 5), st.text(alphabet="0123456789", min_size=6, max_size=6)
        ).map(lambda t: (f"310{t[0]}", t[1])),
        "392": st.tuples(
            st.integers(0, 9), st.text(alphabet="0123456789", min_size=1, max_size=15)
        ).map(lambda t: (f"392{t[0]}", t[1])),
    }
    keys = draw(st.lists(st.sampled_from(sorted(pool)), min_size=1, max_size=9, unique=True))
    return [draw(pool[k]) for k in keys]


@given(
    elements=valid_elements(),
    sep=st.sampled_from([GS, "|", "{GS}"]),
    symbology=st.sampled_from(["]C1", "]e0", "]d2", "]Q3", ""]),
    leading_gs=st.booleans(),
    trailer=st.sampled_from(["", "\r\n", "\r", "\n", " "]),
    as_bytes=st.booleans(),
    today=st.dates(min_value=date(2000, 1, 1), max_value=date(2049, 12, 31)),
)
def test_round_trip_property(
    elements: list[tuple[str, str]],
    sep: str,
    symbology: str,
    leading_gs: bool,
    trailer: str,
    as_bytes: bool,
    today: date,
) -> None:
    text = encode_element_string(elements, separator=sep, symbology=symbology)
    if leading_gs:
        text = text[: len(symbology)] + GS + text[len(symbology) :]
    text += trailer
    raw: str | bytes = text.encode() if as_bytes else text
    result = parse_gs1(raw, today=today, separators=[sep])
    assert isinstance(result, Gs1Label), result
    assert result.elements == tuple(elements)
    assert result.raw == text.encode()
    assert result.symbology == (symbology or None)
    values = dict(elements)
    assert result.gtin == values.get("01")
    assert result.batch == values.get("10")
    assert result.serial == values.get("21")
    for ai, value in elements:
        if ai.startswith("310"):
            assert result.net_weight_kg == Decimal(int(value)) / 10 ** int(ai[3])
        if ai.startswith("392"):
            assert result.price == Decimal(int(value)) / 10 ** int(ai[3])
    for ai, field in [("11", "production_date"), ("13", "pack_date"), ("15", "best_before")]:
        got = getattr(result, field)
        if ai in values:
            assert got is not None
            assert got.strftime("%y%m")[:4] == values[ai][:4]
            if values[ai][4:] != "00":
                assert got.day == int(values[ai][4:])
        else:
            assert got is None


# --------------------------------------------------------------------------------------------
# fuzz: never raises, always one of the two types


def _check_result(result: object) -> None:
    assert isinstance(result, Gs1Label | Gs1Rejection)
    assert isinstance(result.raw, bytes)
    if isinstance(result, Gs1Rejection):
        assert result.reason in REASONS
        assert result.reason != "internal_error", result.detail
        assert result.detail


any_today = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
separator_lists = st.lists(st.text(max_size=4), max_size=3)


@settings(max_examples=500)
@given(data=st.binary(max_size=200), today=any_today, separators=separator_lists)
def test_fuzz_binary_never_raises(data: bytes, today: date, separators: list[str]) -> None:
    result = parse_gs1(data, today=today, separators=separators)
    _check_result(result)
    assert result.raw == data


@settings(max_examples=500)
@given(text=st.text(max_size=200), today=any_today, separators=separator_lists)
def test_fuzz_text_never_raises(text: str, today: date, separators: list[str]) -> None:
    _check_result(parse_gs1(text, today=today, separators=separators))


gs1ish = st.text(alphabet="0123456789" * 4 + "]Cedq13AZaz|{}<>GS%\x1d\r\n ", max_size=80)


@settings(max_examples=1000)
@given(text=gs1ish, today=any_today, separators=st.sampled_from([(), ("|",), ("<GS>", "{GS}")]))
def test_fuzz_gs1_like_text_never_raises(
    text: str, today: date, separators: tuple[str, ...]
) -> None:
    result = parse_gs1(text, today=today, separators=separators)
    _check_result(result)
    if isinstance(result, Gs1Label):
        assert result.elements
        assert len({ai for ai, _ in result.elements}) == len(result.elements)
