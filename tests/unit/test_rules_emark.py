"""The ℮ average system: TNE table, T1/T2, batch evaluation and the tracker."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.records import PackEvent, Severity
from rules.emark import (
    BatchRecord,
    EmarkTracker,
    InspectionBatch,
    batch_subject,
    declared_net,
    limits,
    net_for_emark,
    tne_g,
)
from rules.model import Finding, Product, RunContext, Tier

D = Decimal
T0 = 1_714_543_200_000_000  # 2024-05-01T06:00:00Z
S = 1_000_000  # one second in µs


# -- TNE table ---------------------------------------------------------------------------

KNOWN = [
    # (Qn, TNE, T1, T2)
    ("125", "5.7", "119.3", "113.6"),
    ("200", "9", "191", "182"),
    ("250", "9", "241", "232"),
    ("400", "12", "388", "376"),
    ("500", "15", "485", "470"),
    ("1000", "15", "985", "970"),
    ("1500", "22.5", "1477.5", "1455"),
    ("12000", "150", "11850", "11700"),
    ("20000", "200", "19800", "19600"),
]


@pytest.mark.parametrize(("qn", "tne", "t1", "t2"), KNOWN, ids=[k[0] + "g" for k in KNOWN])
def test_known_limits(qn: str, tne: str, t1: str, t2: str) -> None:
    lim = limits(D(qn))
    assert (lim.qn, lim.tne, lim.t1, lim.t2) == (D(qn), D(tne), D(t1), D(t2))


EDGES = [
    # every band edge of SI 2006/1258 Sch 5, and the first 0.1 g step above it
    ("5", "0.5"),  # 9 % of 5 = 0.45 → up to 0.5
    ("50", "4.5"),  # 9 % of 50 = 4.5 exactly
    ("50.1", "4.5"),  # fixed 4.5 g
    ("100", "4.5"),
    ("100.1", "4.6"),  # 4.5 % of 100.1 = 4.5045 → up to 4.6
    ("200", "9.0"),  # 4.5 % of 200 = 9
    ("200.1", "9"),  # fixed 9 g
    ("300", "9"),
    ("300.1", "9.1"),  # 3 % of 300.1 = 9.003 → 9.1
    ("500", "15"),  # 3 % of 500
    ("500.1", "15"),  # fixed 15 g
    ("1000", "15"),
    ("1000.1", "15.1"),  # 1.5 % of 1000.1 = 15.0015 → 15.1
    ("10000", "150"),  # 1.5 % of 10 000
    ("10000.1", "150"),  # fixed 150 g (GB only)
    ("15000", "150"),
    ("15000.1", "150.1"),  # 1 % of 15 000.1 = 150.001 → 150.1
    ("15020", "150.2"),  # the float pitfall: naive doubles give 150.3
    ("25000", "250"),
]


@pytest.mark.parametrize(("qn", "tne"), EDGES, ids=[e[0] + "g" for e in EDGES])
def test_band_edges(qn: str, tne: str) -> None:
    assert tne_g(D(qn)) == D(tne)


WORKED = [
    # domain-rules §1.3 worked table (TNE / T1 / T2, g)
    ("100", "4.5", "95.5", "91.0"),
    ("125", "5.7", "119.3", "113.6"),
    ("150", "6.8", "143.2", "136.4"),
    ("200", "9.0", "191.0", "182.0"),
    ("240", "9.0", "231.0", "222.0"),
    ("250", "9.0", "241.0", "232.0"),
    ("300", "9.0", "291.0", "282.0"),
    ("340", "10.2", "329.8", "319.6"),
    ("400", "12.0", "388.0", "376.0"),
    ("454", "13.7", "440.3", "426.6"),
    ("500", "15.0", "485.0", "470.0"),
    ("1000", "15.0", "985.0", "970.0"),
    ("2000", "30.0", "1970.0", "1940.0"),
]


@pytest.mark.parametrize(("qn", "tne", "t1", "t2"), WORKED, ids=[w[0] + "g" for w in WORKED])
def test_worked_table(qn: str, tne: str, t1: str, t2: str) -> None:
    lim = limits(D(qn))
    assert (str(lim.tne), str(lim.t1), str(lim.t2)) == (tne, t1, t2)


@pytest.mark.parametrize(
    "qn", ["4.9", "0", "-1", "25000.1", "30000"], ids=["4.9g", "0g", "neg", "25000.1g", "30kg"]
)
def test_out_of_range_raises(qn: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        tne_g(D(qn))
    with pytest.raises(ValueError, match="outside"):
        limits(D(qn))


@pytest.mark.parametrize(
    ("qn", "error"),
    [(D("NaN"), ValueError), (D("Infinity"), ValueError), (250.0, TypeError), (True, TypeError)],
    ids=["nan", "inf", "float", "bool"],
)
def test_bad_types_raise(qn: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        tne_g(qn)  # type: ignore[arg-type]


def test_int_accepted() -> None:
    assert tne_g(250) == D(9)  # type: ignore[arg-type]


_BANDS_TENTHS = [
    # (upper bound in tenths of a gram or None, (numerator, denominator) of % or None, g×10)
    (500, (9, 100), None),
    (1000, None, 45),
    (2000, (45, 1000), None),
    (3000, None, 90),
    (5000, (3, 100), None),
    (10000, None, 150),
    (100000, (15, 1000), None),
    (150000, None, 1500),
    (None, (1, 100), None),
]


def _reference_tne_tenths(q10: int) -> int:
    """An independent implementation in integer tenths of a gram (ceil by floor division)."""
    for upper, pct, fixed in _BANDS_TENTHS:
        if upper is None or q10 <= upper:
            if fixed is not None:
                return fixed
            assert pct is not None
            num, den = pct
            return -(-q10 * num // den)
    raise AssertionError


def test_every_tenth_of_a_gram_matches_integer_reference() -> None:
    previous = Decimal(0)
    for q10 in range(50, 250_001):
        tne = tne_g(Decimal(q10).scaleb(-1))
        assert tne == Decimal(_reference_tne_tenths(q10)).scaleb(-1), q10
        assert tne >= previous, q10
        previous = tne


tenths = st.integers(min_value=50, max_value=250_000).map(lambda i: Decimal(i).scaleb(-1))


@given(tenths)
def test_t2_below_t1_below_qn(qn: Decimal) -> None:
    lim = limits(qn)
    assert lim.t2 < lim.t1 < lim.qn
    assert lim.t1 == qn - lim.tne
    assert lim.t2 == qn - 2 * lim.tne
    assert lim.tne == lim.tne.quantize(Decimal("0.1"))


@given(tenths, tenths)
@settings(max_examples=300)
def test_tne_monotone(a: Decimal, b: Decimal) -> None:
    lo, hi = sorted((a, b))
    assert tne_g(lo) <= tne_g(hi)


# -- net weight --------------------------------------------------------------------------


def product(
    qn: str | None = "250", *, plu: str = "10120", catch: bool = False, **kw: object
) -> Product:
    return Product(
        plu=plu,
        nominal_g=None if qn is None else D(qn),
        tier=Tier.PREMIUM,
        catch_weight=catch,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("net", "expected"),
    [(239.7, "239.700"), (0.1 + 0.2, "0.300"), (250.0, "250.000"), (250.0004, "250.000")],
    ids=["repr", "float-noise", "whole", "sub-mg"],
)
def test_net_for_emark(net: float, expected: str) -> None:
    assert str(net_for_emark(net, product(tare_g=D(20), glaze_pct=D(10)))) == expected


@pytest.mark.parametrize(
    ("gross", "tare", "glaze", "expected"),
    [
        (1000.0, "20", "0", "980.000"),
        (1000.0, "20", "10", "882.000"),
        (D("520.5"), "20.5", "4", "480.000"),
    ],
    ids=["tare-only", "tare-and-glaze", "decimal-gross"],
)
def test_declared_net(gross: float | Decimal, tare: str, glaze: str, expected: str) -> None:
    spec = product("500", tare_g=D(tare), glaze_pct=D(glaze))
    assert str(declared_net(gross, spec)) == expected


def test_declared_net_rejects_bad_glaze() -> None:
    with pytest.raises(ValueError, match="glaze"):
        declared_net(1000.0, product(glaze_pct=D(100)))


# -- inspection batch ---------------------------------------------------------------------


def new_batch(qn: str = "250", **kw: int | None) -> InspectionBatch:
    args: dict[str, int | None] = {"batch_seconds": 3600, "min_packs": 10}
    args.update(kw)
    return InspectionBatch(
        line="L1",
        run_number="R42",
        plu="10120",
        qn=D(qn),
        start_us=T0,
        **args,  # type: ignore[arg-type]
    )


def feed(batch: InspectionBatch, weights: list[str], start: int = 0) -> list[Finding]:
    out: list[Finding] = []
    for i, w in enumerate(weights, start=start):
        out.extend(batch.add(D(w), T0 + i * S, f"cw1#{i}"))
    return out


def test_subject_format() -> None:
    assert batch_subject("L1", "R42", "10120", T0) == "L1/R42/10120/2024-05-01T06:00:00Z"
    assert new_batch().subject == "L1/R42/10120/2024-05-01T06:00:00Z"


def test_known_batch_gives_exact_record() -> None:
    batch = new_batch()
    findings = feed(batch, ["253"] * 39 + ["240"])  # one pack below T1 (241): 2.5 %, allowed
    assert findings == []
    record, closing = batch.close(T0 + 3600 * S)
    assert closing == []
    assert record == BatchRecord(
        line="L1",
        run_number="R42",
        plu="10120",
        qn=D(250),
        tne=D(9),
        t1=D(241),
        t2=D(232),
        start_us=T0,
        end_us=T0 + 3600 * S,
        n=40,
        mean=D("252.67"),  # 252.675 rounded down: the record never overstates the mean
        sd=D("2.06"),  # sqrt(169/40) = 2.0555
        below_t1=1,
        below_t2=0,
        verdict="pass",
        reasons=(),
        rejected=0,
    )
    assert str(record.mean) == "252.67"
    assert record.subject == "L1/R42/10120/2024-05-01T06:00:00Z"


def test_ten_pack_batch_stats() -> None:
    batch = new_batch()
    feed(batch, ["252", "254", "250", "248", "256", "251", "253", "249", "255", "252"])
    record, _ = batch.close(T0 + 10 * S)
    assert (record.n, record.mean, record.sd) == (10, D("252.00"), D("2.58"))  # s² = 20/3


def test_one_pack_has_no_sd() -> None:
    batch = new_batch()
    feed(batch, ["251"])
    record, _ = batch.close(T0 + S)
    assert (record.n, record.mean, record.sd, record.verdict) == (1, D("251.00"), D(0), "pass")


def test_pack_below_t2_raised_at_once_naming_it() -> None:
    batch = new_batch()
    findings = feed(batch, ["252", "251", "231.9"])  # T2 = 232
    assert [(f.rule, f.active, f.severity) for f in findings] == [
        ("emark_t2", True, Severity.CRITICAL)
    ]
    t2 = findings[0]
    assert t2.subject == "L1/R42/10120/2024-05-01T06:00:00Z"
    assert t2.line == "L1"
    assert t2.ts_us == T0 + 2 * S
    assert t2.detail["pack_id"] == "cw1#2"
    assert t2.detail["net_g"] == "231.900"
    assert "cw1#2" in t2.message
    assert "231.900" in t2.message
    # exactly at T2 is not below it
    assert batch.add(D("232"), T0 + 3 * S, "cw1#3") == []
    record, closing = batch.close(T0 + 4 * S)
    closing_t2 = [f for f in closing if f.rule == "emark_t2"]
    assert [(f.active, f.detail["below_t2"]) for f in closing_t2] == [(False, 1)]
    assert (record.below_t2, record.below_t1, record.verdict) == (1, 2, "fail")
    assert any("T2" in r for r in record.reasons)


@pytest.mark.parametrize(
    ("bad", "active"), [(2, False), (3, True)], ids=["2-of-100-pass", "3-of-100-fail"]
)
def test_share_below_t1(bad: int, active: bool) -> None:
    batch = new_batch()
    weights = ["252"] * (100 - bad) + ["240"] * bad  # 240 < T1 241, > T2 232
    findings = feed(batch, weights)
    t1 = [f for f in findings if f.rule == "emark_t1"]
    if active:
        assert [(f.active, f.severity, f.ts_us) for f in t1] == [
            (True, Severity.CRITICAL, T0 + 99 * S)  # 3/100 = 3 % > 2.5 %
        ]
        assert t1[0].detail["below_t1"] == 3
        assert t1[0].detail["final"] is False
    else:
        assert t1 == []
    record, closing = batch.close(T0 + 100 * S)
    assert record.below_t1 == bad
    assert record.verdict == ("fail" if active else "pass")
    closing_t1 = [f for f in closing if f.rule == "emark_t1"]
    if active:
        # reported with the final counts, then cleared: the closed batch is paperwork now
        assert [(f.active, f.detail["final"]) for f in closing_t1] == [(True, True), (False, True)]
        assert "3 of 100" in closing_t1[0].message
        assert record.reasons == (
            "3 of 100 packs (3.00 %) below T1 241.0 g, more than 2.5 % (rule 2)",
        )
    else:
        assert closing_t1 == []


def test_t1_share_clears_when_diluted() -> None:
    batch = new_batch()
    findings = feed(batch, ["240"] + ["252"] * 9)  # 1/10 at the 10th pack
    assert [(f.rule, f.active) for f in findings] == [("emark_t1", True)]
    findings = feed(batch, ["252"] * 30, start=10)  # 1/40 = 2.5 %: within
    # While above 2.5 % each pack reports the live share; then the clear.
    assert [(f.rule, f.active) for f in findings] == [("emark_t1", True)] * 29 + [
        ("emark_t1", False)
    ]
    assert [f.value for f in findings[:3]] == [round(100 / 11, 2), round(100 / 12, 2), 7.69]
    assert all(f.deadband == 0.5 for f in findings)
    assert findings[-1].ts_us == T0 + 39 * S
    record, closing = batch.close(T0 + 40 * S)
    assert closing == []
    assert record.verdict == "pass"


def test_running_mean_warning_then_cleared() -> None:
    batch = new_batch()
    assert feed(batch, ["249"] * 9) == []  # below Qn but fewer than min_packs
    findings = feed(batch, ["249"], start=9)
    assert [(f.rule, f.active, f.severity) for f in findings] == [
        ("emark_mean", True, Severity.WARNING)
    ]
    # Still below: the live mean again, for the alert book to publish if it moved enough.
    [again] = feed(batch, ["249.5"], start=10)
    assert (again.rule, again.active, again.value) == ("emark_mean", True, 249.045)
    assert again.deadband == 0.9  # a tenth of the TNE (Qn 250 g: TNE 9 g)
    findings = feed(batch, ["260.5"], start=11)  # Σ = 3000 over 12 packs: exactly Qn
    assert [(f.rule, f.active, f.severity) for f in findings] == [
        ("emark_mean", False, Severity.WARNING)
    ]
    assert findings[0].subject == "L1/R42/10120/2024-05-01T06:00:00Z"
    record, closing = batch.close(T0 + 12 * S)
    assert closing == []
    assert (record.mean, record.verdict) == (D("250.00"), "pass")


def test_low_batch_mean_at_close() -> None:
    batch = new_batch()
    feed(batch, ["249.999"] + ["250"] * 9)
    record, closing = batch.close(T0 + 10 * S)
    assert [(f.rule, f.active, f.severity) for f in closing] == [
        ("emark_mean", False, Severity.WARNING),
        ("emark_mean_batch", True, Severity.CRITICAL),
        ("emark_mean_batch", False, Severity.CRITICAL),
    ]
    assert closing[1].message == "batch mean 249.999 g is below Qn 250 g over 10 packs (℮ rule 1)"
    assert closing[1].detail["mean_g"] == "249.99"
    assert record.mean == D("249.99")  # 249.9999 rounded down
    assert record.verdict == "fail"
    assert record.reasons == ("mean 249.999 g below Qn 250 g (rule 1)",)


def test_nothing_stays_active_after_close() -> None:
    batch = new_batch()
    findings = feed(batch, ["230"] * 5 + ["249"] * 5)  # T2 packs, low mean, T1 share
    assert {f.rule for f in findings if f.active} == {"emark_t2", "emark_mean", "emark_t1"}
    record, closing = batch.close(T0 + 10 * S)
    last: dict[str, bool] = {}
    for f in findings + closing:
        last[f.rule] = f.active
        assert f.subject == batch.subject
    assert last == {
        "emark_t2": False,
        "emark_mean": False,
        "emark_t1": False,
        "emark_mean_batch": False,
    }
    assert [f.rule for f in closing if f.active] == ["emark_mean_batch", "emark_t1"]
    assert record.verdict == "fail"
    assert len(record.reasons) == 3


def test_min_packs_is_configurable() -> None:
    batch = new_batch(min_packs=3)
    findings = feed(batch, ["249", "249", "249"])
    assert [(f.rule, f.active) for f in findings] == [("emark_mean", True)]


def test_closed_and_empty_batches() -> None:
    batch = new_batch()
    with pytest.raises(ValueError, match="no packs"):
        batch.close(T0)
    feed(batch, ["250"])
    batch.close(T0 + S)
    with pytest.raises(ValueError, match="closed"):
        batch.add(D(250), T0 + 2 * S, "x")
    with pytest.raises(ValueError, match="closed"):
        batch.close(T0 + 2 * S)


@pytest.mark.parametrize(
    "kw",
    [{"batch_seconds": 0}, {"batch_max_packs": 0}, {"min_packs": 0}],
    ids=["seconds", "max-packs", "min-packs"],
)
def test_bad_batch_settings(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        new_batch("250", **kw)


# -- tracker -------------------------------------------------------------------------------


def run_ctx(run_number: str = "R42", *products: Product) -> RunContext:
    return RunContext(
        run_number=run_number,
        line="L1",
        batch_codes=("B1",),
        species="salmon",
        products=products or (product(),),
        pack_date=None,
    )


def pack(i: int, net: float, ts_us: int, accepted: bool | None = True) -> PackEvent:
    return PackEvent(
        ts_us=ts_us, line="L1", device="cw1", net_g=net, pack_counter=i, accepted=accepted
    )


def test_tracker_rolls_over_after_the_window() -> None:
    tracker = EmarkTracker(batch_seconds=60, min_packs=10)
    run, spec = run_ctx(), product()
    assert tracker.observe(pack(1, 251.0, T0), run, spec, T0).closed_records == ()
    assert tracker.observe(pack(2, 253.0, T0 + 30 * S), run, spec, T0 + 30 * S).closed_records == ()
    result = tracker.observe(pack(3, 252.0, T0 + 60 * S), run, spec, T0 + 60 * S)
    assert len(result.closed_records) == 1
    first = result.closed_records[0]
    assert (first.start_us, first.end_us, first.n, first.mean) == (T0, T0 + 60 * S, 2, D("252.00"))
    (open_batch,) = tracker.open_batches()
    assert (open_batch.start_us, open_batch.n) == (T0 + 60 * S, 1)
    assert open_batch.subject == "L1/R42/10120/2024-05-01T06:01:00Z"
    # the line stops: tick closes at the window end, not at the tick
    result = tracker.tick(T0 + 500 * S)
    assert [(r.start_us, r.end_us, r.n) for r in result.closed_records] == [
        (T0 + 60 * S, T0 + 120 * S, 1)
    ]
    assert tracker.open_batches() == ()


def test_tracker_default_window_is_one_hour() -> None:
    tracker = EmarkTracker()
    run, spec = run_ctx(), product()
    tracker.observe(pack(1, 251.0, T0), run, spec, T0)
    late = T0 + 3600 * S - 1
    assert tracker.observe(pack(2, 251.0, late), run, spec, late).closed_records == ()
    hour = T0 + 3600 * S
    assert len(tracker.observe(pack(3, 251.0, hour), run, spec, hour).closed_records) == 1


def test_tracker_closes_at_max_packs() -> None:
    tracker = EmarkTracker(batch_max_packs=3)
    run, spec = run_ctx(), product()
    results = [tracker.observe(pack(i, 251.0, T0 + i * S), run, spec, T0 + i * S) for i in range(4)]
    assert [len(r.closed_records) for r in results] == [0, 0, 1, 0]
    assert results[2].closed_records[0].n == 3
    assert results[2].closed_records[0].end_us == T0 + 2 * S


@pytest.mark.parametrize("change", ["run", "product"])
def test_tracker_rolls_over_on_changeover(change: str) -> None:
    tracker = EmarkTracker()
    run, spec = run_ctx(), product()
    tracker.observe(pack(1, 251.0, T0), run, spec, T0)
    run2 = run_ctx("R43") if change == "run" else run
    spec2 = product("500", plu="10200") if change == "product" else spec
    ts = T0 + 10 * S
    result = tracker.observe(pack(2, 502.0, ts), run2, spec2, ts)
    assert [(r.run_number, r.plu, r.n, r.end_us) for r in result.closed_records] == [
        ("R42", "10120", 1, ts)
    ]
    (open_batch,) = tracker.open_batches()
    assert (open_batch.run_number, open_batch.plu) == (run2.run_number, spec2.plu)


@pytest.mark.parametrize(
    "spec",
    [product("250", catch=True), product(None), product("26000"), product("4")],
    ids=["catch-flag", "no-nominal", "above-25kg", "below-5g"],
)
def test_tracker_excludes_products_outside_the_average_system(spec: Product) -> None:
    tracker = EmarkTracker(min_packs=1)
    run = run_ctx("R42", spec)
    for i in range(5):
        result = tracker.observe(pack(i, 1.0, T0 + i * S), run, spec, T0 + i * S)
        assert result.findings == ()
        assert result.closed_records == ()
    assert tracker.open_batches() == ()
    assert tracker.close_all(T0 + 10 * S).closed_records == ()


def test_tracker_t2_finding_and_rejected_packs() -> None:
    tracker = EmarkTracker()
    run, spec = run_ctx(), product()
    # the checkweigher rejected this one: it is not released, so it is no rule-3 breach
    rejected = tracker.observe(pack(1, 200.0, T0, accepted=False), run, spec, T0)
    assert rejected.findings == ()
    result = tracker.observe(pack(2, 200.0, T0 + S, accepted=None), run, spec, T0 + S)
    assert [(f.rule, f.detail["pack_id"], f.detail["net_g"]) for f in result.findings] == [
        ("emark_t2", "cw1#2", "200.000")
    ]
    (record,) = tracker.close_line("L1", T0 + 2 * S).closed_records
    assert (record.n, record.rejected, record.below_t2, record.verdict) == (1, 1, 1, "fail")


def test_tracker_close_all() -> None:
    tracker = EmarkTracker()
    run, spec = run_ctx(), product()
    tracker.observe(pack(1, 251.0, T0), run, spec, T0)
    (record,) = tracker.close_all(T0 + 5 * S).closed_records
    assert (record.n, record.end_us) == (1, T0 + 5 * S)
    assert tracker.open_batches() == ()


def test_batch_counts_match_fraction_arithmetic() -> None:
    weights = ["250.1", "249.9", "251.3", "248.7", "250.0", "252.2", "247.8", "250.4"]
    batch = new_batch(min_packs=100)
    feed(batch, weights)
    record, _ = batch.close(T0 + 9 * S)
    exact = sum((Fraction(w) for w in weights), Fraction(0)) / len(weights)
    assert record.mean == Decimal(exact.numerator) / exact.denominator
