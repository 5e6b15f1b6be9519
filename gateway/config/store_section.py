"""``[store]``: the local SQLite store."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gateway.config.base import StrictModel
from gateway.config.paths import ConfigPath


class StoreSection(StrictModel):
    """The local SQLite store: the device's single source of truth."""

    path: ConfigPath
    """Database file. Its directory also holds the sequence reservation and quarantine."""
    commit_interval_ms: int = Field(default=250, ge=5, le=5000)
    """Group commit: the longest a stored record waits before its transaction commits."""
    commit_max_rows: int = Field(default=2000, ge=1, le=100_000)
    """Group commit: a transaction commits as soon as this many records are pending."""
    max_pending_rows: int = Field(default=100_000, ge=1000)
    """Records held in memory waiting for the store (a slow or full disk, a flood of reads).

    Adapters that set their own pace (the TCP scanner, polls) wait once half of this is
    pending; beyond it device records are shed, counted and alerted (``gateway/shedding.py``).
    The default fits the systemd unit's ``MemoryMax=512M``: a pending record costs about
    1.6 KB at most (a label scan with its parsed GS1 fields; a pack about 450 B, a
    temperature 360 B, measured with tracemalloc), so 100 000 of them take at most about
    155 MiB next to the gateway's baseline of about 80 MiB, under half the limit, leaving
    room for allocator fragmentation and everything else. At a line's usual 20-50 records/s
    that still holds about an hour of a full disk."""
    max_size_mb: int = Field(default=2048, ge=4)
    """Size budget of the database file (SQLite ``max_page_count``)."""
    headroom_mb: int = Field(default=64, ge=1)
    """Disk space always left free next to the database (WAL, logs, the OS)."""
    quarantine_dir: ConfigPath | None = None
    """Where damaged database files are moved. Default: ``quarantine/`` beside the database."""

    @property
    def quarantine_path(self) -> Path:
        """The quarantine folder actually used."""
        return self.quarantine_dir or self.path.parent / "quarantine"
