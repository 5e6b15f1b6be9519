"""What lets several ingest instances (and several commits in one) share the load, without
a broker or a database: PUBACKs released in arrival order (sync/ingest/puback_order.py),
the SQLSTATEs a batch transaction is run again on (sync/ingest/pg_retry.py), and the
settings and options that configure them (sync/ingest/settings.py, ``lineside ingest``).
"""

from __future__ import annotations

import logging

import psycopg
import pytest
from psycopg import errors

from gateway import logs
from gateway.cli import main
from gateway.commands.common import EXIT_CONFIG, EXIT_USAGE
from sync.ingest.mqtt_consumer import IngestSessionTakenOver
from sync.ingest.pg_retry import is_retried, retry_transaction, sqlstate_of
from sync.ingest.puback_order import ArrivalOrder
from sync.ingest.settings import IngestSettings
from sync.ingest.warehouse_records import WarehouseUnavailable


def test_pubacks_wait_for_every_earlier_arrival() -> None:
    order: ArrivalOrder[str] = ArrivalOrder()
    a, b, c, d = (order.arrived() for _ in range(4))
    assert order.done(c, "c") == []
    assert order.done(b, "b") == []
    assert order.waiting == 2
    assert order.done(a, "a") == ["a", "b", "c"]
    assert order.done(d, "d") == ["d"]
    assert order.waiting == 0


def test_an_arrival_is_released_once() -> None:
    order: ArrivalOrder[str] = ArrivalOrder()
    first = order.arrived()
    order.done(first, "x")
    with pytest.raises(ValueError, match="not waiting"):
        order.done(first, "x")
    with pytest.raises(ValueError, match="not waiting"):
        order.done(5, "never arrived")


def _unavailable(error: psycopg.Error) -> WarehouseUnavailable:
    try:
        raise WarehouseUnavailable("PostgreSQL: aborted") from error
    except WarehouseUnavailable as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (errors.SerializationFailure("could not serialize access"), True),
        (errors.DeadlockDetected("deadlock detected"), True),
        (errors.LockNotAvailable("could not obtain lock"), True),
        (errors.UniqueViolation("duplicate key"), False),
        (errors.AdminShutdown("terminating connection"), False),
        (errors.QueryCanceled("statement timeout"), False),
        (psycopg.OperationalError("connection lost"), False),
    ],
)
def test_only_aborts_between_concurrent_transactions_are_run_again(
    error: psycopg.Error, retried: bool
) -> None:
    assert is_retried(_unavailable(error)) is retried
    assert is_retried(error) is retried
    assert is_retried(RuntimeError("not a database error")) is False


def test_a_transaction_is_run_again_until_it_commits(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sync.ingest.warehouse")
    failures = [errors.DeadlockDetected("deadlock"), errors.SerializationFailure("serialize")]
    calls: list[int] = []

    def transaction() -> str:
        calls.append(1)
        if failures:
            raise _unavailable(failures.pop(0))
        return "committed"

    assert retry_transaction("batch b-1", transaction, wait_first_s=0, wait_max_s=0) == "committed"
    assert len(calls) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("batch b-1" in w for w in warnings)
    assert "[40P01]" in warnings[0]
    assert "[40001]" in warnings[1]


def test_after_the_last_attempt_the_batch_stays_unavailable() -> None:
    calls: list[int] = []

    def transaction() -> None:
        calls.append(1)
        raise _unavailable(errors.DeadlockDetected("deadlock"))

    with pytest.raises(WarehouseUnavailable) as raised:
        retry_transaction("batch b-2", transaction, attempts=4, wait_first_s=0, wait_max_s=0)
    assert len(calls) == 4
    assert sqlstate_of(raised.value) == "40P01"


def test_other_failures_are_not_run_again() -> None:
    calls: list[int] = []

    def transaction() -> None:
        calls.append(1)
        raise _unavailable(psycopg.OperationalError("server closed the connection"))

    with pytest.raises(WarehouseUnavailable):
        retry_transaction("batch b-3", transaction, wait_first_s=0, wait_max_s=0)
    assert len(calls) == 1


@pytest.mark.parametrize("size", [0, 33, -1])
def test_the_pool_size_is_bounded(size: int) -> None:
    with pytest.raises(ValueError, match=r"db_pool_size must be in 1\.\.32"):
        IngestSettings(db_pool_size=size)


def test_share_group_names_are_plain() -> None:
    assert IngestSettings(share_group="ingest_fleet-1").share_group == "ingest_fleet-1"
    for bad in ("", "a/b", "+", "#", "$share", "x" * 65, "fleet one"):
        with pytest.raises(ValueError, match="share_group"):
            IngestSettings(share_group=bad)


@pytest.fixture
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "configure_logging", lambda **_: None)


@pytest.mark.usefixtures("_no_logging_setup")
@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--share-group", "a/b"], "share_group 'a/b': use 1 to 64 of A-Z a-z 0-9 _ -"),
        (["--db-pool-size", "0"], "db_pool_size must be in 1..32"),
    ],
)
def test_the_command_refuses_bad_scale_out_options(
    capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    assert main(["ingest", "--no-http", *option]) == EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("_no_logging_setup")
def test_a_session_taken_over_ends_the_command_with_exit_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.ingest  # noqa: PLC0415

    async def taken_over(settings: IngestSettings) -> None:
        raise IngestSessionTakenOver(
            f"another ingest connected with the same client id ({settings.client_id}); "
            "give each instance its own --client-id"
        )

    monkeypatch.setattr(sync.ingest, "run_ingest", taken_over)
    code = main(["ingest", "--no-http", "--client-id", "lineside-ingest-2"])
    assert code == EXIT_CONFIG == 3
    assert "same client id (lineside-ingest-2)" in capsys.readouterr().err
