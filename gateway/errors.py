"""The one exception tree of Lineside.

Library errors (sqlite3, asyncua, pymodbus, paho-mqtt, httpx) are translated into these
at the boundary that owns the library, with ``raise ... from exc`` so the cause is kept.
A library error never leaks out of its adapter, and never turns into ``None``.

    LinesideError
      ConfigError            the configuration file is unreadable or invalid
      StartupError           a folder, file or socket the gateway needs cannot be used
      StoreError             the local SQLite store
        StoreCorruptError      the database file is damaged (it is quarantined)
        StoreFullError         the store reached its size budget or the disk is full
        StoreIOError           the disk failed a read, write or fsync: fatal, restart
        SequenceError          the sequence reservation file cannot be trusted
        StoreUnavailableError  the store's folder cannot be written at start (also a
                               StartupError)
        RecordShedError        a device record was not queued: too many records pending
      DeviceError            a device adapter (carries the device id)
        DeviceConfigError      the device refuses the request as configured: no retry
        DeviceUnreachable      no connection, timeout, connection lost: retry with backoff
        DeviceBusy             the device asks to be asked later
        DeviceFailure          the device reports an internal failure: back off
        DeviceSecurityError    certificate or credential problems: no fallback
        DecodeError            a value could not be decoded: the sample is bad
"""

from __future__ import annotations


class LinesideError(Exception):
    """Base of every error Lineside raises on purpose."""


class ConfigError(LinesideError):
    """The configuration is invalid; ``problems`` lists each one for the operator."""

    def __init__(self, path: str, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(p.format(path) for p in problems)
        super().__init__(f"{len(problems)} problem(s) in {path}:\n{lines}")


class ConfigProblem:
    """One problem in a config file: where (key path), what value, and why."""

    __slots__ = ("location", "reason", "value")

    def __init__(self, location: str, value: object, reason: str) -> None:
        self.location = location
        self.value = value
        self.reason = reason

    def format(self, path: str) -> str:
        """Render as ``file: key.path: value ...: reason``."""
        shown = "(missing)" if self.value is _MISSING else repr(self.value)
        return f"{path}: {self.location}: value {shown}: {self.reason}"


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING: object = _Missing()
MISSING = _MISSING
"""Sentinel for a problem whose key is absent."""


class StartupError(LinesideError):
    """The gateway cannot start: a folder, file or socket it needs is read-only, full, taken
    or missing. The message names it; ``lineside run`` logs it as one line and exits 4
    (docs/configuration.md, "Exit codes")."""


class StoreError(LinesideError):
    """The local store failed."""


class StoreCorruptError(StoreError):
    """The database file is damaged; it is moved aside and a fresh one created."""


class StoreFullError(StoreError):
    """The store reached its size budget (``max_page_count``) or the disk is full."""


class StoreIOError(StoreError):
    """An I/O error on the store's disk. Not retried: the process exits and systemd restarts."""


class StoreInUseError(StoreError):
    """Another process has the store open (one writer per store: ``gateway/store_lock.py``)."""


class StoreUnavailableError(StoreError, StartupError):
    """The store's folder or files cannot be created or written at start (read-only file
    system, no space, no permission)."""


class SequenceError(StoreError):
    """The sequence reservation file is unreadable; refusing to risk reusing numbers."""


class RecordShedError(StoreError):
    """A device record was shed, not queued: ``store.max_pending_rows`` records were already
    waiting. It is counted (``records_shed`` event, ``intake.shed`` alert, metrics), so the
    future carrying this error needs no further report."""


class ControlSocketError(LinesideError):
    """The operator control socket cannot be set up as configured (its group, its mode)."""


class DeviceError(LinesideError):
    """A device adapter failed; ``device`` names the configured device id."""

    def __init__(self, device: str, message: str) -> None:
        self.device = device
        super().__init__(f"device {device}: {message}")


class DeviceConfigError(DeviceError):
    """The device rejects the request as configured (e.g. Modbus exceptions 01-03)."""


class DeviceUnreachable(DeviceError):
    """The device cannot be reached now (refused, timeout, lost, gateway path offline)."""


class DeviceBusy(DeviceError):
    """The device is busy and asks to be asked later (Modbus exceptions 05/06)."""


class DeviceFailure(DeviceError):
    """The device reports an internal failure (Modbus exception 04)."""


class DeviceSecurityError(DeviceError):
    """Certificates or credentials were refused; never retried without security."""


class DecodeError(DeviceError):
    """A value read from a device could not be decoded."""
