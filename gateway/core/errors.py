"""The one exception tree of Lineside.

Library errors (sqlite3, asyncua, pymodbus, paho-mqtt, httpx, psycopg) are translated into
these at the boundary that owns the library, with ``raise ... from exc`` so the cause is
kept. A library error never leaks out of its adapter, and never turns into ``None``. Every
error that crosses a boundary between parts of Lineside is a :class:`LinesideError`; where
callers also catch it as a built-in kind (``ValueError``, ``ConnectionError`` ...), it keeps
that base as well (shown in brackets).

The branch bases are defined here; a leaf is defined beside the code that raises it (its
module in brackets), so each part keeps its own errors and still hangs them on this tree::

    LinesideError
      ConfigError              the configuration file is unreadable or invalid
      StartupError             a folder, file or socket the gateway needs cannot be used
      StoreError               the local SQLite store
        StoreCorruptError        the database file is damaged (it is quarantined)
        StoreFullError           the store reached its size budget or the disk is full
        StoreIOError             the disk failed a read, write or fsync: fatal, restart
        StoreInUseError          another process has the store open
        StoreUnavailableError    the store's folder cannot be written at start (also a
                                 StartupError)
        SequenceError            the sequence reservation file cannot be trusted
        RecordShedError          a device record was not queued: too many records pending
      DeviceError              a device adapter (carries the device id)
        DeviceConfigError        the device refuses the request as configured: no retry
        DeviceUnreachable        no connection, timeout, connection lost: retry with backoff
        DeviceBusy               the device asks to be asked later
        DeviceFailure            the device reports an internal failure: back off
        DeviceSecurityError      certificate or credential problems: no fallback
        DecodeError              a value could not be decoded: the sample is bad
      RegisterDecodeError      registers cannot be decoded as the requested type [ValueError]
                               (gateway.core.codecs.registers; the Modbus adapter turns it
                               into a DecodeError)
      ErpError                 the ERP source (HTTP or SQL) could not do what was asked
        ErpUnavailable           transient: connection refused, timeout, lost: retry later
        ErpRefused               a guard, the login or the database refused: never retried
        ErpDataError             the ERP answered, but the response is garbage
      SyncError                the way to the warehouse: uplinks, wire protocol, ingest
        UplinkRefused            the broker refused the connection or the ack subscription
                                 [ConnectionError] (sync.mqtt_uplink)
        ProtocolError            a message that does not follow the sync contract
                                 [ValueError] (sync.protocol)
          IdempotencyKeyReused     a key reused for other content (sync.ingest.warehouse_records)
        SchemaViolation          a record that does not match its stream's schema
                                 [ValueError] (sync.record_schema)
        FactError                a record its typed fact row cannot hold faithfully
                                 [ValueError] (sync.ingest.facts)
        WarehouseError           the warehouse could not commit a batch
                                 (sync.ingest.warehouse_records)
          WarehouseUnavailable     transient (connection lost, locked, full): retry later
          SchemaTooNew             the warehouse is at a revision the code does not know
                                   (sync.ingest.migrations.runner)
        TokenFileError           the ingest's tokens file is unreadable [ValueError]
                                 (sync.ingest.auth)
        AckKeyFileError          the ingest's ack keys file is unreadable [ValueError]
                                 (sync.ingest.ack_keys)
        IngestSessionTakenOver   another ingest connected with the same MQTT client id:
                                 the ingest stops (exit 3) (sync.ingest.mqtt_consumer)
        SessionEndFailed         ``lineside ingest --end-session`` could not reach the broker
                                 or was refused (sync.ingest.session_end)
      ControlError             the operator control socket, on either side
        ControlSocketError       the socket cannot be set up as configured (group, mode)
        InvalidRequest           a request field the gateway refuses [ValueError]
                                 (gateway.api)
        CommandError             the gateway cannot carry out a command
                                 (gateway.control_commands)
        ControlClientError       a request not sent or its answer not understood
                                 [ValueError] (gateway.control_client)
        GatewayUnavailable       no gateway answers on the socket [ConnectionError]
                                 (gateway.api; the TUI's client raises it)
      CommandLineError         a ``lineside`` command cannot do what was asked: the message
                               goes to stderr, the command exits non-zero
        CommandFailed            ends a sub-command with a message and an exit code
                                 (gateway.commands.common)
        ReportError              the run is not in the store [LookupError] (gateway.report)
        AlertsUnavailable        neither the gateway nor the store could be read
                                 (gateway.alerts_command)
        DemoAlreadyRunning       another demo holds the demo folder [RuntimeError]
                                 (gateway.demo_site)
      CentralError             the central read side (central/) could not answer
                               (central.errors)
        WarehouseReadError       the warehouse cannot be reached or read
        NotFound                 no such run, batch code or serial [LookupError]
        Ambiguous                a run number of several gateways, none named [LookupError]
        BadRequest               a query parameter the read API cannot answer [ValueError]
                                 (central.api.problems)
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
        if self.value is NO_VALUE:  # a file that is no TOML has no key and no value to show
            return f"{path}: {self.location}: {self.reason}"
        shown = "(missing)" if self.value is _MISSING else repr(self.value)
        return f"{path}: {self.location}: value {shown}: {self.reason}"


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING: object = _Missing()
MISSING = _MISSING
"""Sentinel for a problem whose key is absent."""
NO_VALUE: object = object()
"""Sentinel for a problem about the file itself (its TOML syntax): no value is shown."""


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
    """Another process has the store open (one writer per store: ``gateway/store/lock.py``)."""


class StoreUnavailableError(StoreError, StartupError):
    """The store's folder or files cannot be created or written at start (read-only file
    system, no space, no permission)."""


class SequenceError(StoreError):
    """The sequence reservation file is unreadable; refusing to risk reusing numbers."""


class RecordShedError(StoreError):
    """A device record was shed, not queued: ``store.max_pending_rows`` records were already
    waiting. It is counted (``records_shed`` event, ``intake.shed`` alert, metrics), so the
    future carrying this error needs no further report."""


class ControlError(LinesideError):
    """The operator control socket, on the gateway's side or the client's; the base of
    every control error."""


class ControlSocketError(ControlError):
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


class ErpError(LinesideError):
    """The ERP source failed; the base of every ERP error.

    The HTTP and SQL sources translate library errors (psycopg, httpx ...) into these at
    their boundary, with ``raise ... from exc``.
    """


class ErpUnavailable(ErpError):
    """The ERP cannot be reached now (refused, timeout, connection lost): retry with backoff."""


class ErpRefused(ErpError):
    """A guard refused the query or login, or the ERP refused it: retrying cannot help."""


class ErpDataError(ErpError):
    """The ERP answered with something that is not a valid response (garbage)."""


class SyncError(LinesideError):
    """The way to the warehouse failed: an uplink, the wire protocol, or the ingest; the
    base of every sync error."""


class CommandLineError(LinesideError):
    """A ``lineside`` command cannot do what was asked; the base of every command error.
    Its message is for people: the command prints it on stderr and exits non-zero."""
