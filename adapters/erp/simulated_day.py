"""The ERP simulator's data: a fish factory's day of production runs placed around ``now``,
and the rows an ERP export gets wrong (docs/reference/production-pipeline.md)."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo


def bad_rows() -> list[object]:
    """Rows of the kinds an ERP export gets wrong (served by :attr:`ErpFault.WRONG_TYPES`)."""
    return [
        "R-GARBAGE",  # a bare string where a run object belongs
        {"RunNumber": "", "Line": "L1", "Updated": "2026-01-05T06:00:00"},  # empty key
        {
            "RunNumber": "BAD-TYPES-1",
            "Line": ["L1"],
            "BatchCodes": 42,
            "Products": "Premium 120g",
            "RawMaterialKg": "lots",
            "PackDate": "yesterday",
            "ShelfLifeAdjust": "superchill",
            "Status": "Running",
            "Updated": "not a date",
        },
        {
            "RunNumber": "BAD-PRODUCT-1",
            "Line": "L1",
            "BatchCodes": ["NO-SAL-260103-A17"],
            "Description": "SALMON PORTIONS",
            "Products": [{"PLU": None, "NominalWeight": "heavy", "Tier": "Platinum"}],
            "Status": "Running",
            "Updated": "2026-01-05T06:00:00",
        },
    ]


# --------------------------------------------------------------------------------------
# The day's runs


def day_of_runs(now: datetime, tz: tzinfo) -> list[dict[str, object]]:
    """Five realistic runs on L1 and L2 around ``now`` (aware), ERP field names."""
    t0 = now.astimezone(tz).replace(second=0, microsecond=0)
    day = t0.strftime("%y%m%d")
    pack_date = t0.date().isoformat()

    def at(minutes: int) -> datetime:
        return t0 + timedelta(minutes=minutes)

    # Imported here: the simulators package imports this module.
    from adapters.simulators.scenario import LineSpec  # noqa: PLC0415

    line = LineSpec()
    salmon_batch = f"NO-SAL-{day}-A17"
    return [
        {
            # One batch, four products: the batch-centric run of the seed pipeline.
            "RunNumber": f"{day}-L1-01",
            "Line": "L1",
            "BatchCodes": [salmon_batch],
            "Description": "ATLANTIC SALMON FILLET PORTIONS SKIN ON",
            "Products": [
                _product("41012", "PREMIUM SALMON PORTION 120G", 120, "Premium", tare=8.5),
                _product("41024", "PREMIUM SALMON PORTIONS 2X120G 240G", 240, "Premium", tare=11),
                _product("42028", "GG SALMON FILLETS 280G", 280, "GG", tare=12),
                _product("49001", "SALMON FAMILY PACK", None, "GG", tare=18),
            ],
            "RawMaterialKg": 1850.0,
            "PackDate": pack_date,
            "ShelfLifeAdjust": 0,
            "PlannedStart": at(-300),
            "PlannedEnd": at(-90),
            "ActualStart": at(-295),
            "ActualEnd": at(-80),
            "Status": "Finished",
            "Updated": at(-79),
        },
        {
            "RunNumber": f"{day}-L2-01",
            "Line": "L2",
            "BatchCodes": [f"NO-COD-{day}-F09"],
            "Description": "FROZEN COD FILLETS GLAZED",
            "Products": [
                _product("53100", "GG COD FILLETS GLAZED 1KG", 1000, "GG", tare=22, glaze=8),
            ],
            "RawMaterialKg": 2400.0,
            "PackDate": pack_date,
            "ShelfLifeAdjust": 0,
            "PlannedStart": at(-120),
            "PlannedEnd": at(120),
            "ActualStart": at(-115),
            "ActualEnd": None,
            "Status": "Running",
            "Updated": at(-115),
        },
        {
            # The run on L1 now: what the simulated checkweighers and labeller pack
            # (adapters/simulators/scenario.py: CW1 Qn 240 g with its GTIN, CW2 400 g, the
            # line's batch code, use-by = pack date + 9 days).
            "RunNumber": f"{day}-L1-02",
            "Line": "L1",
            "BatchCodes": [line.batch_code],
            "Description": "ATLANTIC SALMON FILLETS SKIN ON",
            "Products": [
                _product(
                    "41240",
                    "PREMIUM SALMON FILLETS 240G",
                    240,
                    "Premium",
                    gtin=line.checkweigher("CW1").gtin,
                ),
                _product("42400", "GG SALMON FILLETS 400G", 400, "GG", tare=14),
            ],
            "RawMaterialKg": 1200.0,
            "PackDate": pack_date,
            "ShelfLifeAdjust": 0,
            "PlannedStart": at(-60),
            "PlannedEnd": at(150),
            "ActualStart": at(-50),
            "ActualEnd": None,
            "Status": "Running",
            "Updated": at(-50),
        },
        {
            # An exception run: several batch codes from the paperwork (seed pipeline).
            "RunNumber": f"{day}-L1-03",
            "Line": "L1",
            "BatchCodes": [salmon_batch, f"NO-SAL-{day}-A18", f"SC-SAL-{day}-B04"],
            "Description": "SIMPLY SALMON FAMILY PACK",
            "Products": [
                _product("49010", "SIMPLY SALMON FAMILY PACK", None, "Export", tare=18),
            ],
            "RawMaterialKg": 640.0,
            "PackDate": pack_date,
            "ShelfLifeAdjust": 0,
            "PlannedStart": at(180),
            "PlannedEnd": at(330),
            "ActualStart": None,
            "ActualEnd": None,
            "Status": "Planned",
            "Updated": at(-30),
        },
        {
            # Superchilled smoked salmon: pack date + 11 days.
            "RunNumber": f"{day}-L2-02",
            "Line": "L2",
            "BatchCodes": [f"SC-SAL-{day}-B05"],
            "Description": "SMOKED SALMON SLICES",
            "Products": [
                _product("61100", "PREMIUM SMOKED SALMON 100G", 100, "Premium", tare=9),
            ],
            "RawMaterialKg": 300.0,
            "PackDate": pack_date,
            "ShelfLifeAdjust": 2,
            "PlannedStart": at(150),
            "PlannedEnd": at(270),
            "ActualStart": None,
            "ActualEnd": None,
            "Status": "Planned",
            "Updated": at(-20),
        },
    ]


def _product(
    plu: str,
    description: str,
    nominal_g: int | None,
    tier: str,
    *,
    tare: float = 0.0,
    glaze: float = 0.0,
    gtin: str | None = None,
) -> dict[str, object]:
    """A product row; no nominal weight means catch weight (priced by each pack's weight)."""
    extra = {"GTIN": gtin} if gtin else {}
    return {
        **extra,
        "PLU": plu,
        "Description": description,
        "NominalWeight": nominal_g,
        "Tier": tier,
        # The ERP stores flags as 0/1 (seed pipeline: mixed int/str booleans).
        "CatchWeight": 1 if nominal_g is None else 0,
        "Tare": tare,
        "Glaze": glaze,
    }
