"""The simulated packing line: its checkweighers, probes and the production run's label data
(pure: the scenario engine and the ERP simulator read the same values)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from gateway.core.codecs.gs1 import gtin_check_digit


@dataclass(frozen=True, slots=True)
class CheckweigherSpec:
    """A checkweigher and the product it weighs (weights in grams).

    ``tne_g`` comes from the TNE table (docs/reference/domain-rules.md §1.3), not computed here: the
    rules package owns that calculation; the simulator only needs consistent example values.
    """

    id: str
    nominal_g: float
    tne_g: float
    target_g: float
    sd_g: float
    tare_g: float
    tare_sd_g: float
    gtin_body: str
    """The 13 GTIN-14 data digits; the check digit is appended."""

    @property
    def t1_g(self) -> float:
        """Qn - TNE: at most 2.5 % of packs may be below it; also the reject setpoint."""
        return round(self.nominal_g - self.tne_g, 1)

    @property
    def t2_g(self) -> float:
        """Qn - 2 TNE: no pack may be below it."""
        return round(self.nominal_g - 2 * self.tne_g, 1)

    @property
    def gtin(self) -> str:
        """The GTIN-14 with its mod-10 check digit."""
        return self.gtin_body + str(gtin_check_digit(self.gtin_body))


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A temperature probe: its resting value and noise (°C)."""

    id: str
    description: str
    baseline_c: float
    noise_c: float


DEFAULT_CHECKWEIGHERS: Final = (
    # Qn 240 g: 200-300 g band, TNE 9 g (docs/reference/domain-rules.md §1.3 worked values: T1 231,
    # T2 222).
    CheckweigherSpec("CW1", 240.0, 9.0, 243.0, 1.5, 12.0, 0.2, "0501234500001"),
    # Qn 400 g: 300-500 g band, TNE 3 % = 12 g (T1 388, T2 376).
    CheckweigherSpec("CW2", 400.0, 12.0, 404.0, 2.0, 15.0, 0.2, "0501234500002"),
)
"""CW1 (salmon fillets 240 g, served over OPC UA) and CW2 (400 g, the Modbus scale)."""

DEFAULT_PROBES: Final = (
    ProbeSpec("P1", "line 1 product core", 2.5, 0.15),
    ProbeSpec("P2", "chill room air", 1.0, 0.2),
    ProbeSpec("P3", "dispatch chiller", 2.0, 0.15),
    ProbeSpec("TT1", "infeed product", 3.0, 0.2),
    ProbeSpec("TT2", "brine chiller", -1.5, 0.1),
    ProbeSpec("TT3", "blast freezer", -21.0, 0.4),
    ProbeSpec("TT4", "ice slurry tank", -0.5, 0.1),
)
"""Probes P1/P2 are served over OPC UA; TT1-TT4 and P3 by the Modbus simulator."""


@dataclass(frozen=True, slots=True)
class LineSpec:
    """The simulated line: its devices and the production run's label data."""

    checkweighers: tuple[CheckweigherSpec, ...] = DEFAULT_CHECKWEIGHERS
    probes: tuple[ProbeSpec, ...] = DEFAULT_PROBES
    batch_code: str = "B2501-SAL-07"
    pack_date: date = date(2025, 1, 6)
    use_by_days: int = 9
    """Glossary: use-by = pack date + 9 days as standard."""
    first_label_seq: int = 1
    drift_checkweigher: str = "CW1"
    """Checkweigher that drifts underweight, gets T2 packs and has the label gap."""
    excursion_probe: str = "P1"
    """Probe that goes above 5 °C in the temperature scripts."""

    def checkweigher(self, cw_id: str) -> CheckweigherSpec:
        """The checkweigher with id ``cw_id`` (``KeyError`` if there is none)."""
        for cw in self.checkweighers:
            if cw.id == cw_id:
                return cw
        raise KeyError(cw_id)

    def probe(self, probe_id: str) -> ProbeSpec:
        """The probe with id ``probe_id`` (``KeyError`` if there is none)."""
        for p in self.probes:
            if p.id == probe_id:
                return p
        raise KeyError(probe_id)
