"""Capped exponential backoff with full jitter, the one retry delay policy of Lineside.

Full jitter (a uniformly random delay between 0 and the capped exponential) spreads the
reconnects of many gateways after a broker or PLC restart, so they don't arrive as a storm
(docs/reference/peers.md: "reconnect storms"; AWS Architecture Blog, "Exponential Backoff and
Jitter").
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for successive retries: ``uniform(floor, min(maximum, initial * 2**n))``."""

    def __init__(
        self,
        *,
        initial: float = 0.5,
        maximum: float = 30.0,
        floor_fraction: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.floor_fraction = floor_fraction
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)

    def next_delay(self) -> float:
        """The delay before the next attempt; grows until ``maximum``."""
        cap = min(self.maximum, self.initial * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        # A small floor keeps a retry from ever becoming a busy loop.
        return self._rng.uniform(cap * self.floor_fraction, cap)

    def reset(self) -> None:
        """Back to the first delay, after a success."""
        self.attempt = 0
