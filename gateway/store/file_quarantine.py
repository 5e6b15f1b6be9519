"""Moving a damaged database, with its companion files, out of the way, and the alert that
says where it went."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from gateway.core.records import AlertRecord, Severity

log = logging.getLogger(__name__)


def quarantine_database(path: Path, quarantine_root: Path, reason: str) -> Path:
    """Move the database and its -wal/-shm together into a new folder under
    ``quarantine_root``, with the reason beside them; returns the moved database file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = quarantine_root / stamp
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            # Never move or delete a -wal on its own: that corrupts
            # (sqlite.org/howtocorrupt.html).
            shutil.move(source, folder / source.name)
    (folder / "REASON.txt").write_text(reason + "\n", encoding="utf-8")
    log.error("store %s is damaged (%s); moved to %s and started fresh", path, reason, folder)
    return folder / path.name


def quarantined_alert(path: Path, moved: Path, reason: str, ts_us: int) -> AlertRecord:
    """The alert naming where the damaged database ``path`` was moved."""
    return AlertRecord(
        ts_us=ts_us,
        alert_id=f"store.quarantined.{moved.parent.name}",
        rule="store_quarantined",
        subject=str(path),
        severity=Severity.MAJOR,
        state="raised",
        message=f"damaged database moved to {moved}; recording continues in a fresh store",
        detail={"file": str(moved), "reason": reason},
    )
