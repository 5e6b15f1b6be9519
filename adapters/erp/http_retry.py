"""How the ERP HTTP source retries one request: which failures are worth another attempt,
how long to wait (the server's ``Retry-After``, else the house backoff) and when the poll's
deadline leaves no time for it."""

from __future__ import annotations

import asyncio

from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from gateway.core.backoff import Backoff


class _Transient(Exception):
    """One attempt failed in a way another attempt may not: 429, 5xx, timeout, lost link.

    Internal to the ERP HTTP source: its retry loop turns the last one into :class:`ErpUnavailable`.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryAfterWait(wait_base):
    """A tenacity wait: the server's ``Retry-After`` when it gave one, else jittered backoff.

    Honouring ``Retry-After`` is what RFC 9110 §10.2.3 (and RFC 6585 §4 for 429) asks of a
    client; without it, the capped exponential backoff with jitter of
    :class:`gateway.core.backoff.Backoff` spreads the retries of many gateways.

    Args:
        backoff: the backoff used when the server did not say how long to wait.
    """

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        """The delay before the next attempt."""
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        # Advance the backoff either way, so a later failure without Retry-After still
        # waits longer than the one before it.
        delay = self.backoff.next_delay()
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return delay


class StopAtDeadline(stop_base):
    """Stop retrying when the next wait would end after the poll's deadline.

    Sleeping into the deadline would only turn an honest "ERP asks to wait N s" into a
    vague timeout, so the poll gives up at once with the server's answer.
    """

    def __init__(self, deadline: asyncio.Timeout) -> None:
        self.deadline = deadline
        self.tripped = False

    def __call__(self, retry_state: RetryCallState) -> bool:
        when = self.deadline.when()
        if when is None:
            return False
        remaining = when - asyncio.get_running_loop().time()
        self.tripped = retry_state.upcoming_sleep >= remaining
        return self.tripped
