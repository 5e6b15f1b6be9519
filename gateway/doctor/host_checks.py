"""The doctor's checks of this machine: the clock's synchronisation, the health endpoint."""

from __future__ import annotations

import ctypes

import httpx

from gateway.config import HealthSection
from gateway.doctor.findings import Finding
from gateway.doctor.probes import describe_error

TIME_ERROR = 5
"""``adjtimex(2)``'s answer when the kernel clock is not synchronised (STA_UNSYNC)."""


def clock_synchronised() -> bool | None:
    """Whether the kernel clock is NTP-synchronised; ``None`` when it cannot be told."""
    try:
        adjtimex = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    # A zeroed struct timex (modes = 0) only reads; 512 bytes is more than any ABI's size.
    buffer = ctypes.create_string_buffer(512)
    state = int(adjtimex(buffer))
    if state < 0:
        return None
    return state != TIME_ERROR


def check_clock() -> Finding:
    """Records carry this box's time: it must be synchronised."""
    synced = clock_synchronised()
    if synced is None:
        return Finding("clock", "warn", "cannot read the kernel's clock status on this system")
    if synced:
        return Finding("clock", "ok", "synchronised (kernel NTP status)")
    return Finding(
        "clock",
        "fail",
        "not synchronised: record timestamps, use-by checks and ℮ batches may be wrong",
        "enable time sync (`timedatectl set-ntp true` for systemd-timesyncd, or chrony) "
        "and make sure an NTP server is reachable from the line network",
    )


async def check_health(health: HealthSection, timeout_s: float) -> Finding:
    """``/readyz`` on the configured port."""
    host = "127.0.0.1" if health.host in ("0.0.0.0", "") else health.host  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{health.port}/readyz"
    try:
        async with httpx.AsyncClient(timeout=timeout_s + 5, trust_env=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return Finding(
            "health",
            "fail",
            f"{url} does not answer: {describe_error(exc)}",
            "see `journalctl -u lineside-gateway | grep health`: is the port taken?",
        )
    if response.status_code == 200:
        return Finding("health", "ok", f"{url}: ready")
    try:
        checks = response.json().get("checks", {})
    except ValueError:
        checks = {}
    failing = ", ".join(name for name, check in checks.items() if not check.get("ok"))
    return Finding(
        "health",
        "fail",
        f"{url}: {response.status_code}, not ready: {failing or response.text[:200]}",
        "see the findings above for each failing part",
    )


__all__ = ["TIME_ERROR", "check_clock", "check_health", "clock_synchronised"]
