"""``lineside dead-letter`` with the gateway stopped: ``list`` and ``show`` read the sync
quarantine from its store (read-only), as ``alerts`` does; ``requeue`` stays a gateway
command and says so."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from gateway.store.outbox import OutboxTable
from tests.support.cli_runs import lineside
from tests.support.uplink_harness import commit, pack, running_store

REASON = "conflict: the warehouse has another record at this seq"


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A config whose gateway is not running, and the seqs its store holds in quarantine."""
    folder = tmp_path_factory.mktemp("stopped")

    async def write() -> list[int]:
        async with running_store(folder) as store:
            seqs = await commit(store, [pack(i) for i in range(6)])
            await OutboxTable(store).quarantine(seqs[2:4], REASON)
            return seqs[2:4]

    quarantined = asyncio.run(write())
    config = folder / "gw.toml"
    config.write_text(
        '[gateway]\nid = "gw-test"\nsite = "test-site"\n'
        f'control_socket = "{folder / "control.sock"}"\n\n'
        f'[store]\npath = "{folder / "lineside.db"}"\n\n[[lines]]\nid = "L1"\n'
    )
    return config, quarantined


def _store_digest(config: Path) -> str:
    return hashlib.sha256((config.parent / "lineside.db").read_bytes()).hexdigest()


def test_list_reads_the_store_when_no_gateway_answers(stopped: tuple[Path, list[int]]) -> None:
    config, seqs = stopped
    before = _store_digest(config)
    done = lineside("dead-letter", "list", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert "read from its store" in done.stderr
    assert "2 record(s) in the sync quarantine" in done.stdout
    for seq in seqs:
        assert str(seq) in done.stdout
    assert REASON in done.stdout
    paged = lineside("dead-letter", "list", "-c", str(config), "--limit", "1")
    assert paged.returncode == 0, paged.stderr
    assert f"more after {seqs[0]} (--after)" in paged.stdout
    assert _store_digest(config) == before, "read-only"


def test_show_reads_the_record_from_the_store(stopped: tuple[Path, list[int]]) -> None:
    config, seqs = stopped
    done = lineside("dead-letter", "show", str(seqs[1]), "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert f"seq          {seqs[1]}" in done.stdout
    assert "stream       packs" in done.stdout
    assert REASON in done.stdout
    assert '"line": "L1"' in done.stdout
    missing = lineside("dead-letter", "show", "999999", "-c", str(config))
    assert missing.returncode == 1
    assert "record 999999 is not in the quarantine" in missing.stderr


def test_requeue_says_it_needs_the_running_gateway(stopped: tuple[Path, list[int]]) -> None:
    config, seqs = stopped
    done = lineside(
        "dead-letter", "requeue", str(seqs[0]), "-c", str(config),
        "--reason", "fixed", "--operator", "ann",
    )  # fmt: skip
    assert done.returncode == 1
    assert "cannot reach the gateway" in done.stderr
    assert "requeue is done by the running gateway" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_a_config_list_says_how_to_read_a_stopped_gateway(
    stopped: tuple[Path, list[int]],
) -> None:
    config, _seqs = stopped
    done = lineside("dead-letter", "list", "--socket", str(config.parent / "control.sock"))
    assert done.returncode == 1
    assert "with --config, list and show read a stopped gateway's store" in done.stderr
