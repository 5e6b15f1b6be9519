"""Which PostgreSQL failures of a batch's transaction are tried again at once, and how.

Several ingest instances (and several threads of one) commit concurrently. PostgreSQL may
then abort a transaction that did nothing wrong: a deadlock it broke (``40P01``), a
serialisation failure (``40001``), a lock not granted in time (``55P03``). The same
transaction run again a moment later commits, so the whole batch transaction is retried
here, on the warehouse's thread, with capped exponential waits and full jitter (two
transactions that collided must not collide again in step). After the last attempt the
failure stays what it was mapped to, :class:`~sync.ingest.warehouse_records.WarehouseUnavailable`:
the caller retries later and nothing is acknowledged.

Everything else (a lost connection, a full disk) is not retried here: the caller's own,
slower retry handles those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import psycopg
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

logger = logging.getLogger("sync.ingest.warehouse")

T = TypeVar("T")

RETRIED_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
"""serialization_failure, deadlock_detected, lock_not_available."""
ATTEMPTS = 6
WAIT_FIRST_S = 0.05
WAIT_MAX_S = 2.0


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, or of the one a warehouse error was raised from."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, psycopg.Error):
            return cause.sqlstate
        cause = cause.__cause__
    return None


def is_retried(exc: BaseException) -> bool:
    """Whether a transaction that failed with ``exc`` is run again at once."""
    return sqlstate_of(exc) in RETRIED_SQLSTATES


def retry_transaction(
    what: str,
    fn: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    wait_first_s: float = WAIT_FIRST_S,
    wait_max_s: float = WAIT_MAX_S,
) -> T:
    """``fn()`` (one whole transaction), run again on :data:`RETRIED_SQLSTATES`; the last
    failure is raised as it was."""

    def log_retry(state: RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        logger.warning(
            "%s: transaction aborted by PostgreSQL [%s] (attempt %d of %d); retrying in %.2f s",
            what,
            sqlstate_of(exc) if exc is not None else None,
            state.attempt_number,
            attempts,
            state.upcoming_sleep,
        )

    retrying = Retrying(
        retry=retry_if_exception(is_retried),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=wait_first_s, max=wait_max_s),
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(fn)


__all__ = ["RETRIED_SQLSTATES", "is_retried", "retry_transaction", "sqlstate_of"]
