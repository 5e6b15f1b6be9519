"""``lineside doctor``: check a live installation and say what to fix.

Each check gives one :class:`Finding` (``ok``, ``warn`` or ``fail``) with, when it is not
ok, the fix in words an engineer at the line can act on:

* **config**: the file loads (strict validation, secrets resolved). Run from a shell, the
  ``{ credential = "NAME" }`` secrets are read from ``/etc/credstore`` (where the unit's
  ``LoadCredential=NAME`` finds them) unless ``$CREDENTIALS_DIRECTORY`` or
  ``--credentials`` says otherwise.
* **store**: the database exists, passes ``PRAGMA quick_check`` on a read-only connection
  (safe beside the running gateway: WAL readers never block the writer), is within its
  size budget, leaves ``headroom_mb`` free on its volume; quarantined files are reported.
* **gateway**: the service answers on its control socket (the live status).
* **devices**: with the gateway running, its own view of each link (state and last
  error). Only when it is not running does the doctor open a TCP connection to each
  device itself: many scanners and Modbus devices accept a single client, and a second
  one would disturb the gateway's.
* **uplink** and **erp**: the gateway's view, and a TCP connection to the broker, the
  ingest or the ERP (these accept many clients). The outbox backlog is reported too.
* **clock**: the kernel's NTP status (``adjtimex``): records are timestamped on this box,
  so an unsynchronised clock puts wrong times in the warehouse and the packer's records.
* **health**: ``/readyz`` answers 200, when ``[health]`` is configured.

The exit status is 0 when nothing failed (warnings allowed), 1 when a check failed and 3
when the config does not load.

The parts: :mod:`.diagnose` (the run of checks, the config), :mod:`.store_check`,
:mod:`.link_checks` (devices, uplink, ERP), :mod:`.host_checks` (clock, health),
:mod:`.probes` (TCP probes, errors in words), :mod:`.findings`.
"""

from __future__ import annotations

from gateway.doctor.diagnose import diagnose
from gateway.doctor.findings import Finding, Report

__all__ = ["Finding", "Report", "diagnose"]
