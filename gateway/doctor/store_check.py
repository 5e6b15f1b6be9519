"""The doctor's store check: present, intact, within budget, with disk headroom."""

from __future__ import annotations

import shutil
import sqlite3
from typing import Any

from gateway.config import LinesideConfig
from gateway.doctor.findings import Finding


def check_store(config: LinesideConfig, snapshot: dict[str, Any] | None) -> list[Finding]:
    """Database present, intact, within budget, with disk headroom."""
    store = config.store
    path = store.path
    if not path.exists():
        return [
            Finding(
                "store",
                "fail",
                f"no database at {path}",
                "the gateway creates it on its first start (`systemctl start "
                "lineside-gateway`); check store.path and that /var/lib/lineside exists",
            )
        ]
    findings = []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            verdict = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        return [
            Finding(
                "store",
                "fail",
                f"cannot read {path}: {exc}",
                "run the doctor as root or a member of group lineside; a damaged file is "
                "moved to quarantine/ by `systemctl restart lineside-gateway`",
            )
        ]
    size_mb = pages * page_size / 2**20
    if verdict != ["ok"]:
        findings.append(
            Finding(
                "store",
                "fail",
                f"{path} is damaged: {'; '.join(verdict)}",
                "restart the gateway: it moves the damaged file to quarantine/ and records "
                f"on a fresh one; recover rows with `sqlite3 {path} .recover | sqlite3 "
                "recovered.db`",
            )
        )
    elif size_mb > 0.9 * store.max_size_mb:
        findings.append(
            Finding(
                "store",
                "warn",
                f"{path}: {size_mb:.0f} MiB of its {store.max_size_mb} MiB budget: oldest "
                "telemetry is being evicted",
                "raise store.max_size_mb if the disk allows, or get the uplink draining",
            )
        )
    else:
        findings.append(
            Finding("store", "ok", f"{path}: intact, {size_mb:.1f} of {store.max_size_mb} MiB")
        )
    free_mb = shutil.disk_usage(path.parent).free / 2**20
    if free_mb < store.headroom_mb:
        findings.append(
            Finding(
                "disk",
                "fail",
                f"{free_mb:.0f} MiB free beside {path} (headroom_mb = {store.headroom_mb})",
                "free space on that volume (old logs, journal: `journalctl --vacuum-size=`)",
            )
        )
    if snapshot is not None and snapshot["system"]["store"]["state"] != "ok":
        state = snapshot["system"]["store"]
        findings.append(
            Finding(
                "store",
                "fail",
                f"the gateway's store is {state['state']}: {state['pending']} records wait "
                "in memory",
                "free disk space or raise store.max_size_mb; it recovers by itself",
            )
        )
    quarantine = store.quarantine_path
    if quarantine.is_dir() and (damaged := sorted(p.name for p in quarantine.iterdir())):
        findings.append(
            Finding(
                "quarantine",
                "warn",
                f"{len(damaged)} damaged database(s) set aside in {quarantine}: "
                f"{', '.join(damaged[-3:])}",
                f"recover what you can with `sqlite3 {quarantine}/<time>/{path.name} "
                ".recover | sqlite3 recovered.db`, then remove the folder",
            )
        )
    return findings


__all__ = ["check_store"]
