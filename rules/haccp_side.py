"""The state of one side (upper or lower limit) of one probe through an excursion."""

from __future__ import annotations

from decimal import Decimal

from rules.haccp_limits import RULE_LOWER, RULE_UPPER, US_PER_S, Excursion, Side

__all__ = ["LimitSide", "unobserved_note"]


class LimitSide:
    """Mutable state of one side (upper or lower) of one probe."""

    __slots__ = (
        "active",
        "beyond_us",
        "limit",
        "peak",
        "raised_us",
        "side",
        "start_us",
        "total_us",
        "unobserved_us",
    )

    def __init__(self, side: Side, limit: Decimal) -> None:
        self.side: Side = side
        self.limit = limit
        self.start_us: int | None = None
        self.peak = limit
        self.beyond_us = 0
        self.total_us = 0
        self.active = False
        self.raised_us: int | None = None
        self.unobserved_us = 0
        """Time of this excursion during which the gateway was down (see ``resume``)."""

    def beyond(self, value: Decimal) -> bool:
        return value > self.limit if self.side == "upper" else value < self.limit

    def back_inside(self, value: Decimal, hysteresis: Decimal) -> bool:
        if self.side == "upper":
            return value <= self.limit - hysteresis
        return value >= self.limit + hysteresis

    def clear_at(self, hysteresis: Decimal) -> Decimal:
        return self.limit - hysteresis if self.side == "upper" else self.limit + hysteresis

    def start(self, ts_us: int, value: Decimal) -> None:
        self.start_us = ts_us
        self.peak = value
        self.beyond_us = 0
        self.unobserved_us = 0

    def note(self, value: Decimal) -> None:
        self.peak = max(self.peak, value) if self.side == "upper" else min(self.peak, value)

    def end(self, end_us: int) -> Excursion:
        excursion = Excursion(
            side=self.side,
            limit_c=self.limit,
            start_us=end_us if self.start_us is None else self.start_us,
            end_us=end_us,
            beyond_s=self.beyond_us / US_PER_S,
            peak_c=self.peak,
            breached=self.active,
            raised_us=self.raised_us,
        )
        self.start_us = None
        self.beyond_us = 0
        self.active = False
        self.raised_us = None
        self.unobserved_us = 0
        return excursion

    @property
    def rule(self) -> str:
        """The rule id of a breach of this side."""
        return RULE_UPPER if self.side == "upper" else RULE_LOWER


def unobserved_note(unobserved_us: int) -> str:
    """A message tail for an excursion that spans a gateway restart."""
    if not unobserved_us:
        return ""
    return f"; began before a gateway restart, {unobserved_us / US_PER_S:g} s of it unobserved"
